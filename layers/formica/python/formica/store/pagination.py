"""Opaque cursors for Query pagination: DynamoDB's LastEvaluatedKey, base64url-encoded JSON.

A cursor is bound to the partition it came from: decoding checks the key attribute that names the
partition, so a cursor crafted for another organisation's partition is refused, never followed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

MAX_CURSOR_CHARS = 2048


class InvalidCursorError(ValueError):
    """The pagination cursor is malformed or does not belong to this listing."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: its records and the cursor of the next page (None on the last)."""

    records: list[T] = field(default_factory=list)
    next_token: str | None = None


def encode_cursor(last_evaluated_key: dict[str, Any] | None) -> str | None:
    """The opaque cursor for a low-level LastEvaluatedKey (string attributes only), or None."""
    if not last_evaluated_key:
        return None
    plain: dict[str, str] = {}
    for name, value in last_evaluated_key.items():
        plain[name] = value["S"]
    raw = json.dumps(plain, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    cursor: str | None, *, partition_attribute: str, partition_value: str
) -> dict[str, Any] | None:
    """The ExclusiveStartKey for ``cursor``; raises InvalidCursorError unless it is this partition's."""
    if cursor is None or cursor == "":
        return None
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursorError("next_token is too long")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidCursorError("next_token is not a cursor this API issued") from exc
    if not isinstance(plain, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in plain.items()
    ):
        raise InvalidCursorError("next_token is not a cursor this API issued")
    if plain.get(partition_attribute) != partition_value:
        raise InvalidCursorError("next_token belongs to another listing")
    return {name: {"S": value} for name, value in plain.items()}
