"""Idempotency records: one key of an organisation maps to the first request made with it.

Item (docs/architecture.md): ``pk=ORG#{org}#IDEM#{key}``, ``sk=IDEM``, ``request_id``, and the TTL
attribute ``expires_at`` (epoch seconds; absent for keys that never expire, such as user_key).
The claim is one conditional put, so two racing submissions agree on a single request id.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.store.dynamo import DynamoTable, is_conditional_failure
from formica.store.schema import idempotency_pk

IDEM_SK = "IDEM"
DEFAULT_TTL_SECONDS = 24 * 60 * 60


class IdempotencyStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while reading or writing an idempotency record."""


class IdempotencyRepository(DynamoTable):
    """Adapter: idempotency records in the single table. ``client`` defaults to the process's client."""

    def claim(
        self,
        org: str,
        key: str,
        request_id: str,
        *,
        ttl_seconds: int | None = DEFAULT_TTL_SECONDS,
        now: float | None = None,
    ) -> str:
        """Bind ``key`` to ``request_id`` unless it is bound already; returns the bound request id.

        The caller owns the key when the returned id is its own. An expired record (TTL passed but
        not yet swept by DynamoDB) counts as absent. ``ttl_seconds=None`` never expires.
        """
        moment = int(now if now is not None else time.time())
        item: dict[str, Any] = {
            "pk": {"S": idempotency_pk(org, key)},
            "sk": {"S": IDEM_SK},
            "kind": {"S": "IDEMPOTENCY"},
            "org": {"S": org},
            "request_id": {"S": request_id},
            "created_at": {"N": str(moment)},
        }
        if ttl_seconds is not None:
            item["expires_at"] = {"N": str(moment + ttl_seconds)}
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(moment)}},
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise IdempotencyStoreError("could not claim idempotency key") from exc
        except BotoCoreError as exc:
            raise IdempotencyStoreError("could not claim idempotency key") from exc
        else:
            return request_id
        existing = self.get(org, key, now=moment)
        # Gone between our put and our read (expired and swept): the next claim will take it.
        return (
            existing
            if existing is not None
            else self.claim(org, key, request_id, ttl_seconds=ttl_seconds, now=now)
        )

    def get(self, org: str, key: str, *, now: float | None = None) -> str | None:
        """The request id bound to ``key`` (None when absent or expired)."""
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": idempotency_pk(org, key)}, "sk": {"S": IDEM_SK}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise IdempotencyStoreError("could not read idempotency key") from exc
        item = response.get("Item")
        if item is None:
            return None
        moment = now if now is not None else time.time()
        if "expires_at" in item and int(item["expires_at"]["N"]) < moment:
            return None
        request_id: str = item["request_id"]["S"]
        return request_id

    def release(self, org: str, key: str, request_id: str) -> None:
        """Unbind ``key`` if it is still bound to ``request_id`` (a submission that failed)."""
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"pk": {"S": idempotency_pk(org, key)}, "sk": {"S": IDEM_SK}},
                ConditionExpression="request_id = :id",
                ExpressionAttributeValues={":id": {"S": request_id}},
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise IdempotencyStoreError("could not release idempotency key") from exc
        except BotoCoreError as exc:
            raise IdempotencyStoreError("could not release idempotency key") from exc
