"""Deliveries: one item per (event, webhook) and per (final state, notify channel) under the
request's partition.

``REQ#{request_id}`` / ``HOOK#{delivery_id}``: the channel (webhook, email, slack), where it goes,
what it sends, its status and how many attempts it took. The id is derived from the event's id
and the target, so an event delivered twice by EventBridge or SQS creates one delivery; each
attempt is claimed with a conditional update on the attempt count, so a redelivered queue message
never sends an attempt twice.

While PENDING, a delivery is in gsi2 ``DELIVERIES#PENDING`` / ``{updated_at}#{request_id}#{delivery_id}``
(its last activity first: created, claimed, settled with a retry queued, queued again by the sweep);
settled DELIVERED or FAILED it leaves the index, and a SKIPPED one never enters it. So the minute sweep
finds, with one Query on the sort key, the deliveries whose attempt was lost in a crash
(``formica.runtime.notify.repair_lost_deliveries``).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from formica.store.dynamo import DynamoTable
from formica.store.schema import request_pk

DELIVERY_SK_PREFIX = "HOOK#"
PENDING_DELIVERIES = "DELIVERIES#PENDING"
"""gsi2pk of a delivery while it is PENDING."""


def pending_sk(at: str, request_id: str, delivery_id: str) -> str:
    """gsi2sk of a PENDING delivery whose last activity was at ``at``."""
    return f"{at}#{request_id}#{delivery_id}"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    """Not sent yet, or failed and waiting for its next attempt."""
    DELIVERED = "DELIVERED"
    """The receiver answered 2xx."""
    FAILED = "FAILED"
    """Every attempt failed, or the URL is refused (egress guard, not http(s))."""
    SKIPPED = "SKIPPED"
    """Never sent: the channel is not set up here (no email sender, no SlackWebhookURL config)."""


class DeliveryChannel(StrEnum):
    WEBHOOK = "webhook"
    """A job's or task's ``webhook``: the lifecycle event JSON, signed."""
    EMAIL = "email"
    """``notify.email``: one message to its recipients (SES; the outbox folder under `formica dev`)."""
    SLACK = "slack"
    """``notify.slack``: one message to the SlackWebhookURL config's incoming webhook."""


class DeliveryStoreError(RuntimeError):
    """The deliveries could not be read or written."""


class WebhookDeliveryItem(BaseModel):
    """One delivery of one lifecycle event: to a webhook, or a notify channel's message."""

    request_id: str
    delivery_id: str
    org: str
    event: str
    """What it reports: ``JOB COMPLETED`` or ``TASK build COMPLETED``."""
    url: str
    """A webhook's URL; for a notify channel ``email:`` or ``slack:`` and its recipients (never the
    Slack webhook URL, a secret read from the configs at each attempt)."""
    channel: DeliveryChannel = DeliveryChannel.WEBHOOK
    recipients: list[str] = Field(default_factory=list)
    """A notify channel's recipients (addresses, or Slack channels and users)."""
    outbox_file: str | None = None
    """The ``.eml`` file an email was written to (the local outbox); None elsewhere."""
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    body: str
    """The event JSON, exactly as signed and sent; a notify channel's message as composed."""
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_result: str | None = None
    """The last attempt's HTTP status or error."""
    created_at: str
    updated_at: str

    def to_item(self) -> dict[str, Any]:
        return {
            "pk": {"S": request_pk(self.request_id)},
            "sk": {"S": DELIVERY_SK_PREFIX + self.delivery_id},
            "data": {"S": self.model_dump_json()},
            "status": {"S": str(self.status)},
            "attempts": {"N": str(self.attempts)},
            **(
                {
                    "gsi2pk": {"S": PENDING_DELIVERIES},
                    "gsi2sk": {"S": pending_sk(self.updated_at, self.request_id, self.delivery_id)},
                }
                if self.status == DeliveryStatus.PENDING
                else {}
            ),
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> WebhookDeliveryItem:
        data = json.loads(item["data"]["S"])
        data["status"] = item["status"]["S"]
        data["attempts"] = int(item["attempts"]["N"])
        if "last_result" in item:
            data["last_result"] = item["last_result"]["S"]
        if "updated_at" in item:
            data["updated_at"] = item["updated_at"]["S"]
        if "outbox_file" in item:
            data["outbox_file"] = item["outbox_file"]["S"]
        return cls.model_validate(data)


class DeliveryRepository(DynamoTable):
    """Webhook deliveries in the single table."""

    def _key(self, request_id: str, delivery_id: str) -> dict[str, Any]:
        return {"pk": {"S": request_pk(request_id)}, "sk": {"S": DELIVERY_SK_PREFIX + delivery_id}}

    def create(self, delivery: WebhookDeliveryItem) -> bool:
        """Record a new delivery; False when this event's delivery to that target exists already."""
        try:
            return self._put_if_absent(delivery.to_item())
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryStoreError(f"could not record delivery {delivery.delivery_id!r}: {exc}") from exc

    def get(self, request_id: str, delivery_id: str) -> WebhookDeliveryItem | None:
        try:
            found = self._client.get_item(
                TableName=self._table, Key=self._key(request_id, delivery_id), ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryStoreError(f"could not read delivery {delivery_id!r}: {exc}") from exc
        return None if found is None else WebhookDeliveryItem.from_item(found)

    def claim_attempt(self, request_id: str, delivery_id: str, attempt: int, now: str) -> bool:
        """Take attempt number ``attempt`` (1-based) of a PENDING delivery; False when it was taken
        (a redelivered message) or the delivery is no longer PENDING."""
        try:
            return self._update_if(
                Key=self._key(request_id, delivery_id),
                UpdateExpression="SET attempts = :n, updated_at = :now, gsi2pk = :index, gsi2sk = :since",
                ConditionExpression="attempts = :previous AND #status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":n": {"N": str(attempt)},
                    ":previous": {"N": str(attempt - 1)},
                    ":pending": {"S": str(DeliveryStatus.PENDING)},
                    ":now": {"S": now},
                    ":index": {"S": PENDING_DELIVERIES},
                    ":since": {"S": pending_sk(now, request_id, delivery_id)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryStoreError(f"could not claim attempt of {delivery_id!r}: {exc}") from exc

    def settle_attempt(
        self,
        request_id: str,
        delivery_id: str,
        attempt: int,
        *,
        status: DeliveryStatus,
        result: str,
        now: str,
        outbox_file: str | None = None,
    ) -> bool:
        """Record how attempt ``attempt`` went (the status stays PENDING when another follows) and,
        for an email written to the local outbox, the file's name. Settled, it leaves gsi2."""
        update = "SET #status = :status, last_result = :result, updated_at = :now"
        values = {
            ":n": {"N": str(attempt)},
            ":status": {"S": str(status)},
            ":result": {"S": result[:500]},
            ":now": {"S": now},
        }
        if outbox_file is not None:
            update += ", outbox_file = :file"
            values[":file"] = {"S": outbox_file}
        if status == DeliveryStatus.PENDING:
            update += ", gsi2pk = :index, gsi2sk = :since"
            values[":index"] = {"S": PENDING_DELIVERIES}
            values[":since"] = {"S": pending_sk(now, request_id, delivery_id)}
        else:
            update += " REMOVE gsi2pk, gsi2sk"
        try:
            return self._update_if(
                Key=self._key(request_id, delivery_id),
                UpdateExpression=update,
                ConditionExpression="attempts = :n",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryStoreError(f"could not record attempt of {delivery_id!r}: {exc}") from exc

    def list_for_request(self, request_id: str) -> list[WebhookDeliveryItem]:
        """Every delivery of the request, oldest event first."""
        try:
            items, _ = self._query_prefix_items(request_pk(request_id), DELIVERY_SK_PREFIX)
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryStoreError(f"could not list deliveries of {request_id!r}: {exc}") from exc
        deliveries = [WebhookDeliveryItem.from_item(item) for item in items]
        return sorted(deliveries, key=lambda d: (d.created_at, d.delivery_id))

    def idle_pending(self, *, before: str, max_items: int = 100) -> list[WebhookDeliveryItem]:
        """PENDING deliveries whose last activity was before ``before``, oldest first (gsi2,
        eventually consistent: the caller's writes are conditional on what it read)."""
        try:
            items = self._gsi2_items(PENDING_DELIVERIES, max_items=max_items, sort_below=before)
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryStoreError(f"could not list pending deliveries: {exc}") from exc
        return [WebhookDeliveryItem.from_item(item) for item in items]

    def mark_requeued(self, delivery: WebhookDeliveryItem, now: str) -> bool:
        """The sweep takes a lost delivery to queue its next attempt again: its last activity
        becomes ``now``. False when it moved on since it was read (claimed, settled, or taken by
        another sweep), so one lost attempt is queued again once."""
        since = pending_sk(now, delivery.request_id, delivery.delivery_id)
        return self._repair(delivery, "SET updated_at = :now, gsi2sk = :since", {":since": {"S": since}}, now)

    def give_up_lost(self, delivery: WebhookDeliveryItem, result: str, now: str) -> bool:
        """Settle FAILED a delivery whose last attempt was claimed and never recorded; False when it
        moved on since it was read."""
        return self._repair(
            delivery,
            "SET #status = :failed, last_result = :result, updated_at = :now REMOVE gsi2pk, gsi2sk",
            {":failed": {"S": str(DeliveryStatus.FAILED)}, ":result": {"S": result[:500]}},
            now,
        )

    def _repair(self, delivery: WebhookDeliveryItem, update: str, values: dict[str, Any], now: str) -> bool:
        seen = pending_sk(delivery.updated_at, delivery.request_id, delivery.delivery_id)
        try:
            return self._update_if(
                Key=self._key(delivery.request_id, delivery.delivery_id),
                UpdateExpression=update,
                ConditionExpression="#status = :pending AND attempts = :n AND gsi2sk = :seen",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    **values,
                    ":pending": {"S": str(DeliveryStatus.PENDING)},
                    ":n": {"N": str(delivery.attempts)},
                    ":seen": {"S": seen},
                    ":now": {"S": now},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryStoreError(f"could not repair delivery {delivery.delivery_id!r}: {exc}") from exc
