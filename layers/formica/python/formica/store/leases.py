"""Worker leases: which worker holds a queued attempt (a WEBSOCKET task's), by a secret lease id.

A worker that received an attempt holds a lease id (``fgl_`` + 256 random bits, shown once); the
table keeps only its sha256, as capabilities are kept (``store.grants``):

- ``LEASE#{sha256(lease)}`` / ``LEASE``: org, request_id, step, the queue name and the message's
  receipt (so the API can extend or delete it), ``expires_at`` for TTL;
- ``REQ#{request_id}`` / ``WORKER#{step:010d}``: the attempt's current lease (``lease_hash``) and
  ``lease_state`` (LEASED, then DONE). A new lease of the same attempt (the message came back after
  its holder stopped heartbeating) replaces it, so the earlier holder's heartbeat and report are
  refused; the one report that counts is the conditional update LEASED -> DONE.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.store.dynamo import DynamoTable

LEASE_PREFIX = "fgl_"
LEASED = "LEASED"
DONE = "DONE"


class LeaseStoreError(RuntimeError):
    """DynamoDB refused or did not answer."""


def new_lease() -> str:
    """A fresh lease id: a recognisable prefix and 256 bits of randomness, URL-safe."""
    return LEASE_PREFIX + secrets.token_urlsafe(32)


def hash_lease(lease: str) -> str:
    """The stored form of a lease id: hex sha256 of its text."""
    return hashlib.sha256(lease.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LeaseItem:
    """A stored lease: the attempt it holds and the message that carries it."""

    lease_hash: str
    org: str
    request_id: str
    step: int
    queue: str
    receipt: str
    expires_at: int


class LeaseRepository(DynamoTable):
    """The leases of queued worker attempts."""

    @staticmethod
    def _attempt_key(request_id: str, step: int) -> dict[str, Any]:
        return {"pk": {"S": f"REQ#{request_id}"}, "sk": {"S": f"WORKER#{step:010d}"}}

    def grant(self, item: LeaseItem) -> bool:
        """Store the lease and make it the attempt's current one; False when the attempt was already
        reported (DONE)."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": f"LEASE#{item.lease_hash}"},
                    "sk": {"S": "LEASE"},
                    "org": {"S": item.org},
                    "request_id": {"S": item.request_id},
                    "step": {"N": str(item.step)},
                    "queue": {"S": item.queue},
                    "receipt": {"S": item.receipt},
                    "expires_at": {"N": str(item.expires_at)},
                },
            )
            return self._update_if(
                Key=self._attempt_key(item.request_id, item.step),
                UpdateExpression="SET lease_hash = :h, lease_state = :leased, expires_at = :e",
                ConditionExpression="attribute_not_exists(lease_state) OR lease_state = :leased",
                ExpressionAttributeValues={
                    ":h": {"S": item.lease_hash},
                    ":leased": {"S": LEASED},
                    ":e": {"N": str(item.expires_at)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise LeaseStoreError(f"could not store a lease of request {item.request_id}: {exc}") from exc

    def get(self, lease: str) -> LeaseItem | None:
        """The lease a worker presents, or None when unknown."""
        lease_hash = hash_lease(lease)
        try:
            answer = self._client.get_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"LEASE#{lease_hash}"}, "sk": {"S": "LEASE"}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise LeaseStoreError(f"could not read a lease: {exc}") from exc
        item = answer.get("Item")
        if item is None:
            return None
        return LeaseItem(
            lease_hash=lease_hash,
            org=item["org"]["S"],
            request_id=item["request_id"]["S"],
            step=int(item["step"]["N"]),
            queue=item["queue"]["S"],
            receipt=item["receipt"]["S"],
            expires_at=int(item["expires_at"]["N"]),
        )

    def is_current(self, item: LeaseItem) -> bool:
        """True while this lease is the attempt's current one and the attempt is not reported."""
        try:
            answer = self._client.get_item(
                TableName=self.table_name,
                Key=self._attempt_key(item.request_id, item.step),
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise LeaseStoreError(f"could not read the lease of request {item.request_id}: {exc}") from exc
        stored: dict[str, Any] = answer.get("Item") or {}
        holder = str(stored.get("lease_hash", {}).get("S", ""))
        state = str(stored.get("lease_state", {}).get("S", ""))
        return holder == item.lease_hash and state == LEASED

    def finish(self, item: LeaseItem) -> bool:
        """Mark the attempt reported by this lease's holder; False when the lease is no longer the
        current one or the attempt was reported already (one report wins)."""
        try:
            return self._update_if(
                Key=self._attempt_key(item.request_id, item.step),
                UpdateExpression="SET lease_state = :done",
                ConditionExpression="lease_hash = :h AND lease_state = :leased",
                ExpressionAttributeValues={
                    ":h": {"S": item.lease_hash},
                    ":leased": {"S": LEASED},
                    ":done": {"S": DONE},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise LeaseStoreError(f"could not finish a lease of request {item.request_id}: {exc}") from exc
