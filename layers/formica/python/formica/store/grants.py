"""Attempt capabilities: what one attempt's helpers may move, granted by a secret stored only as a hash.

A runner that holds no credentials (the SHELL sandbox, a container's dependency and artifact
helpers) cannot sign its own S3 URLs, and a URL signed in advance with a Lambda's temporary
credentials dies with them, within hours, whatever its own expiry says. So each attempt gets a
capability instead: a random secret (``fgc_`` + 256 bits) whose sha256 is stored here with its scope
(one attempt: its organisation, request, task, step, what it may read and write) and its expiry (the
attempt's deadline plus a margin). The runner exchanges it through the API's grants route for
URLs signed at that moment (``formica.runners.grants``).

Item (docs/architecture.md): ``pk=GRANT#{sha256(secret)}``, ``sk=GRANT``, the scope as attributes,
``expires_at`` (epoch seconds) for TTL. Since TTL may lag by days, expiry is also checked on every
exchange.

A capability with the ``live_log`` right also carries a count on its item: ``live_next``, the byte
offset its next chunk must start at, and ``live_used``, the chunks taken so far. Each chunk is
taken by one conditional update (``take_live_chunk``), so chunks are contiguous and their number
bounded whoever holds the secret; and no chunk may end past ``live_max_bytes`` (the log cap), so
neither is their size in all.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from formica.store.dynamo import DynamoTable, is_conditional_failure
from formica.store.schema import grant_pk

CAPABILITY_PREFIX = "fgc_"
GRANT_SK = "GRANT"
CAPABILITY_MAX_CHARS = 100
"""A capability is 47 characters; anything longer is refused before a read."""


class GrantStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while reading or writing a capability."""


class GrantRight(StrEnum):
    """What a capability may be exchanged for."""

    DOWNLOAD = "download"
    """Presigned GETs of the artifacts of the task's dependencies."""
    UPLOAD = "upload"
    """One presigned POST limited to the task's own artifact prefix."""
    CANCEL = "cancel"
    """A presigned GET of the request's cancel marker (404 until the job is cancelled)."""
    LIVE_LOG = "live_log"
    """A presigned PUT per chunk of the attempt's running log, under its own live prefix: each chunk
    continues the last, holds at most ``live_chunk_max_bytes``, and at most ``live_chunks`` of them."""


def new_capability() -> str:
    """A fresh capability: the recognisable prefix and 256 bits of randomness, URL-safe."""
    return CAPABILITY_PREFIX + secrets.token_urlsafe(32)


def hash_capability(capability: str) -> str:
    """The stored form of a capability: hex sha256 of its text."""
    return hashlib.sha256(capability.encode("utf-8")).hexdigest()


class AttemptGrantItem(BaseModel):
    """A stored capability: the scope of one attempt, everything but the secret."""

    model_config = ConfigDict(frozen=True)

    secret_hash: str
    org: str
    request_id: str
    task_type: str
    step: int
    rights: tuple[GrantRight, ...]
    expires_at: datetime
    created_at: datetime
    execution: str | None = None
    """The execution whose cancel marker ``CANCEL`` reads."""
    dependencies: tuple[str, ...] = ()
    """Task types whose artifacts ``DOWNLOAD`` lists."""
    upload_prefix: str | None = None
    """The key prefix ``UPLOAD`` may write under (trailing slash included)."""
    max_bytes: int = 0
    """The largest file one upload may carry."""
    metadata: tuple[str, ...] = ()
    """``x-amz-meta-*`` names an upload may set (any value)."""
    live_prefix: str | None = None
    """Where ``LIVE_LOG`` writes the attempt's chunks (``store.logs.live_prefix``)."""
    live_chunks: int = 0
    """How many chunks ``LIVE_LOG`` may write."""
    live_chunk_max_bytes: int = 0
    """The largest chunk ``LIVE_LOG`` may write."""
    live_max_bytes: int = 0
    """The offset no chunk may end past: the log cap, so whoever holds the secret writes at most
    that much in all (0: a capability minted before the bound was recorded; its chunk size and
    count bound it)."""

    def allows(self, right: GrantRight) -> bool:
        return right in self.rights

    def is_active(self, now: datetime) -> bool:
        return now < self.expires_at

    def to_item(self) -> dict[str, Any]:
        scope = self.model_dump_json(exclude={"secret_hash"})
        return {
            "pk": {"S": grant_pk(self.secret_hash)},
            "sk": {"S": GRANT_SK},
            "kind": {"S": "GRANT"},
            "org": {"S": self.org},
            "request_id": {"S": self.request_id},
            "scope": {"S": scope},
            "expires_at": {"N": str(int(self.expires_at.timestamp()) + 1)},
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> AttemptGrantItem:
        scope = json.loads(item["scope"]["S"])
        return cls.model_validate({**scope, "secret_hash": item["pk"]["S"].removeprefix("GRANT#")})


class GrantRepository(ABC):
    """Port: where capabilities' scopes are kept (the fake is in tests/fakes)."""

    @abstractmethod
    def create(self, scope: AttemptGrantItem) -> None:
        """Store a capability's scope under its hash; ``GrantStoreError`` when it cannot."""

    @abstractmethod
    def find_active(self, capability: str, *, now: datetime | None = None) -> AttemptGrantItem | None:
        """The unexpired scope of this capability, or None (unknown, malformed or expired)."""

    @abstractmethod
    def take_live_chunk(self, scope: AttemptGrantItem, *, start: int, end: int) -> bool:
        """Count one chunk ``[start, end)`` of the attempt's live log against ``scope``: True when it
        starts where the last one ended (0 for the first) and ``scope.live_chunks`` are not spent,
        else False and nothing changes. ``GrantStoreError`` when the count cannot be read or written."""


def is_capability(capability: str) -> bool:
    """Whether the text can be a capability at all (checked before any read)."""
    return capability.startswith(CAPABILITY_PREFIX) and len(capability) <= CAPABILITY_MAX_CHARS


class DynamoGrantRepository(DynamoTable, GrantRepository):
    """Adapter: attempt capabilities in the single table."""

    def create(self, scope: AttemptGrantItem) -> None:
        """Store a capability's scope under its hash (a new secret never meets an existing item)."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=scope.to_item(),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise GrantStoreError("a capability with this hash already exists") from exc
            raise GrantStoreError(
                f"could not store a capability: {exc.response.get('Error', {}).get('Code')}"
            ) from exc
        except BotoCoreError as exc:
            raise GrantStoreError("could not store a capability") from exc

    def find_active(self, capability: str, *, now: datetime | None = None) -> AttemptGrantItem | None:
        """The unexpired scope of this capability, or None (unknown, malformed or expired)."""
        if not is_capability(capability):
            return None
        secret_hash = hash_capability(capability)
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": grant_pk(secret_hash)}, "sk": {"S": GRANT_SK}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise GrantStoreError("could not read a capability") from exc
        raw = response.get("Item")
        if raw is None:
            return None
        scope = AttemptGrantItem.from_item(raw)
        if not hmac.compare_digest(scope.secret_hash, secret_hash):
            return None
        return scope if scope.is_active(now or datetime.now(UTC)) else None

    def take_live_chunk(self, scope: AttemptGrantItem, *, start: int, end: int) -> bool:
        """One conditional update: the chunk continues the last one and the count is not spent."""
        try:
            return self._update_if(
                Key={"pk": {"S": grant_pk(scope.secret_hash)}, "sk": {"S": GRANT_SK}},
                UpdateExpression="SET live_next = :end ADD live_used :one",
                ConditionExpression=(
                    "attribute_exists(pk) "
                    "AND (live_next = :start OR (attribute_not_exists(live_next) AND :start = :zero)) "
                    "AND ((attribute_not_exists(live_used) AND :zero < :max) OR live_used < :max)"
                ),
                ExpressionAttributeValues={
                    ":start": {"N": str(start)},
                    ":end": {"N": str(end)},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":max": {"N": str(scope.live_chunks)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise GrantStoreError("could not count a live log chunk") from exc
