"""Signed cursors for Query pagination: DynamoDB's LastEvaluatedKey as base64url JSON plus an HMAC.

A cursor is ``{payload}.{mac}``: ``payload`` the base64url JSON of the LastEvaluatedKey (string
attributes only), ``mac`` the base64url HMAC-SHA256 of it under the deployment's cursor key. A
cursor the API did not issue (forged, tampered with, signed with another key) is refused before it
reaches DynamoDB, and a genuine one is bound to the partition it came from: decoding checks the key
attribute that names the partition, so another organisation's cursor, or another listing's, is
refused too. Every refusal is ``InvalidCursorError`` (the API's 400 naming ``next_token``).

The key (``cursor_signer``): with ``FORMICA_CURSOR_KEY_SECRET`` set (the stack sets it on the API
function to the secret it creates), the text of that Secrets Manager secret, read once per process
on first use; without it (``formica dev``, tests) 32 random bytes per process, so a restart
invalidates earlier cursors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from formica.settings import SettingsError, get_settings
from formica.store.secrets import SecretsManagerStore, SecretStore, SecretStoreError

T = TypeVar("T")

MAX_CURSOR_CHARS = 2048
CURSOR_KEY_MIN_CHARS = 32
"""The shortest secret text accepted as a cursor key (the stack generates 64 characters)."""
_MAC_CONTEXT = b"formica-cursor-v1\x00"

logger = logging.getLogger(__name__)


class InvalidCursorError(ValueError):
    """The cursor is malformed, was not issued by this deployment, or belongs to another listing."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: its records and the cursor of the next page (None on the last)."""

    records: list[T] = field(default_factory=list)
    next_token: str | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


class CursorSigner:
    """Signs LastEvaluatedKeys into cursors and opens them again, with one HMAC-SHA256 key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a cursor key has at least 16 bytes")
        self._key = key

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, _MAC_CONTEXT + payload.encode("ascii"), hashlib.sha256).digest()

    def encode(self, last_evaluated_key: dict[str, Any] | None) -> str | None:
        """The cursor for a low-level LastEvaluatedKey (string attributes only), or None."""
        if not last_evaluated_key:
            return None
        plain = {name: value["S"] for name, value in last_evaluated_key.items()}
        payload = _b64(json.dumps(plain, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        return f"{payload}.{_b64(self._mac(payload))}"

    def decode(
        self, cursor: str | None, *, partition_attribute: str, partition_value: str
    ) -> dict[str, Any] | None:
        """The ExclusiveStartKey for ``cursor``; InvalidCursorError unless this deployment issued it
        for this partition."""
        if cursor is None or cursor == "":
            return None
        if len(cursor) > MAX_CURSOR_CHARS:
            raise InvalidCursorError("next_token is too long")
        payload, dot, mac = cursor.partition(".")
        if not dot or not payload.isascii() or not mac.isascii():
            raise InvalidCursorError("next_token is not a cursor this API issued")
        try:
            signature = _unb64(mac)
        except (ValueError, binascii.Error):
            signature = b""
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise InvalidCursorError(
                "next_token is not a cursor this API issued (or it was issued before the key changed): "
                "list again without it"
            )
        try:
            plain = json.loads(_unb64(payload))
        except (ValueError, binascii.Error, UnicodeError) as exc:  # signed, so only if the key leaked
            raise InvalidCursorError("next_token is not a cursor this API issued") from exc
        if not isinstance(plain, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in plain.items()
        ):
            raise InvalidCursorError("next_token is not a cursor this API issued")
        if plain.get(partition_attribute) != partition_value:
            raise InvalidCursorError("next_token belongs to another listing")
        return {name: {"S": value} for name, value in plain.items()}


_signer: CursorSigner | None = None
_signer_lock = threading.Lock()


def cursor_signer(store: SecretStore | None = None) -> CursorSigner:
    """The process's signer, built on first use: the deployment's key from Secrets Manager when
    ``FORMICA_CURSOR_KEY_SECRET`` is set (read through ``store``, by default the AWS adapter), else a
    random key for this process. Raises SecretStoreError when the secret cannot be used."""
    global _signer  # noqa: PLW0603 - one process-wide key, like the cached clients and settings
    signer = _signer
    if signer is not None:
        return signer
    with _signer_lock:
        if _signer is None:
            _signer = CursorSigner(_process_key(store))
        return _signer


def reset_cursor_signer() -> None:
    """Forget the process's signer (tests; the next listing reads the key again)."""
    global _signer  # noqa: PLW0603
    with _signer_lock:
        _signer = None


def _process_key(store: SecretStore | None) -> bytes:
    try:
        secret_id = get_settings().cursor_key_secret
    except SettingsError:  # a process without a table (unit tests of a repository) has no secret either
        secret_id = None
    if not secret_id:
        logger.info("pagination cursors signed with a random key of this process (no cursor key secret)")
        return secrets.token_bytes(32)
    text = (store or SecretsManagerStore()).secret_string(secret_id)
    if len(text) < CURSOR_KEY_MIN_CHARS:
        raise SecretStoreError(
            f"the cursor key secret has {len(text)} characters; at least {CURSOR_KEY_MIN_CHARS} are needed"
        )
    return text.encode("utf-8")


def encode_cursor(
    last_evaluated_key: dict[str, Any] | None, signer: CursorSigner | None = None
) -> str | None:
    """The signed cursor for a low-level LastEvaluatedKey, or None (``signer``: the process's)."""
    if not last_evaluated_key:
        return None
    return (signer or cursor_signer()).encode(last_evaluated_key)


def decode_cursor(
    cursor: str | None,
    *,
    partition_attribute: str,
    partition_value: str,
    signer: CursorSigner | None = None,
) -> dict[str, Any] | None:
    """The ExclusiveStartKey for ``cursor``; raises InvalidCursorError unless it is this partition's."""
    if cursor is None or cursor == "":
        return None
    return (signer or cursor_signer()).decode(
        cursor, partition_attribute=partition_attribute, partition_value=partition_value
    )
