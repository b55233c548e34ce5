"""Triggers' state: the starts counted per rate-limit window, and the events that were dropped.

Items (docs/architecture.md), all under the organisation's partition of the job type, with a TTL:
- rate window ``pk=ORG#{org}#TRIGGERS#{job_type}``, ``sk=RATE#{trigger}#{window_start}``, ``starts``:
  one conditional ADD per start (``starts < :max``), so racing events never pass the limit;
- dropped event ``pk`` the same, ``sk=DROP#{at}#{trigger}#{event_id}``: trigger, reason, event id,
  the params it would have had, kept ``DROPPED_TTL_SECONDS``.
A trigger's deduplication keys are idempotency records (``store.idempotency``), key
``T#{job_type}#{trigger}#{sha256(dedup_key)}``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.store.dynamo import DynamoTable

DROPPED_TTL_SECONDS = 7 * 24 * 3600
"""How long a dropped event stays listed."""
MAX_DROPPED_LISTED = 100
"""The most dropped events one listing returns (newest first)."""


class TriggerStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while counting or recording a trigger's events."""


def triggers_pk(org: str, job_type: str) -> str:
    return f"ORG#{org}#TRIGGERS#{job_type}"


def dedup_idempotency_key(job_type: str, trigger: str, dedup_key: str) -> str:
    """The idempotency key of a trigger's rendered dedup_key (hashed: it is event text)."""
    digest = hashlib.sha256(dedup_key.encode("utf-8")).hexdigest()
    return f"T#{job_type}#{trigger}#{digest}"


@dataclass(frozen=True)
class DroppedEventItem:
    """An event a trigger did not start a request for because its rate limit was reached."""

    org: str
    job_type: str
    trigger: str
    reason: str
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds"))
    params: dict[str, Any] = field(default_factory=dict)


class TriggerRepository(DynamoTable):
    """Adapter: rate windows and dropped events in the single table."""

    def take_start(
        self,
        org: str,
        job_type: str,
        trigger: str,
        *,
        limit: int,
        window_seconds: float,
        now: float | None = None,
    ) -> bool:
        """Count one start in the current window unless ``limit`` starts were counted already.

        Windows are fixed intervals from the epoch; a window's item expires one window after it ends.
        """
        moment = now if now is not None else time.time()
        width = max(1, int(window_seconds))
        start = int(moment) // width * width
        try:
            return self._update_if(
                Key={"pk": {"S": triggers_pk(org, job_type)}, "sk": {"S": f"RATE#{trigger}#{start:012d}"}},
                UpdateExpression="ADD starts :one SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(starts) OR starts < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    ":expires": {"N": str(start + 2 * width)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise TriggerStoreError("could not count a trigger's start") from exc

    def record_dropped(self, event: DroppedEventItem, *, now: float | None = None) -> None:
        """Keep a dropped event, listed by ``list_dropped`` for ``DROPPED_TTL_SECONDS``."""
        moment = int(now if now is not None else time.time())
        item = {
            "pk": {"S": triggers_pk(event.org, event.job_type)},
            "sk": {"S": f"DROP#{event.at}#{event.trigger}#{event.event_id}"},
            "kind": {"S": "TRIGGER_DROPPED"},
            "org": {"S": event.org},
            "job_type": {"S": event.job_type},
            "trigger": {"S": event.trigger},
            "reason": {"S": event.reason},
            "event_id": {"S": event.event_id},
            "at": {"S": event.at},
            "params_json": {"S": json.dumps(event.params, sort_keys=True)},
            "expires_at": {"N": str(moment + DROPPED_TTL_SECONDS)},
        }
        try:
            self._put_if_absent(item)
        except (ClientError, BotoCoreError) as exc:
            raise TriggerStoreError("could not record a dropped event") from exc

    def list_dropped(self, org: str, job_type: str, *, now: float | None = None) -> list[DroppedEventItem]:
        """The job type's dropped events, newest first (at most ``MAX_DROPPED_LISTED``; not expired)."""
        moment = now if now is not None else time.time()
        try:
            items, _ = self._query_prefix_items(triggers_pk(org, job_type), "DROP#")
        except (ClientError, BotoCoreError) as exc:
            raise TriggerStoreError("could not list dropped events") from exc
        events = [
            DroppedEventItem(
                org=item["org"]["S"],
                job_type=item["job_type"]["S"],
                trigger=item["trigger"]["S"],
                reason=item["reason"]["S"],
                event_id=item["event_id"]["S"],
                at=item["at"]["S"],
                params=json.loads(item["params_json"]["S"]),
            )
            for item in items
            if int(item["expires_at"]["N"]) >= moment
        ]
        return sorted(events, key=lambda event: event.at, reverse=True)[:MAX_DROPPED_LISTED]


# -- the organisations' trigger queues ------------------------------------------------------------

ORG_TAG = "formica:org"
TOPIC_TAG = "formica:topic"
"""A trigger queue says whose it is by these two tags (the stack sets them on the queues it creates;
an operator sets them on a queue they list and grant)."""


@dataclass(frozen=True)
class TriggerQueue:
    """A queue whose messages reach the queue triggers of ``org`` naming ``topic``."""

    url: str
    org: str
    topic: str


class TriggerQueueDirectory:
    """Adapter: which organisation and topic a queue serves, read from its tags (cached per queue,
    as tags are set once when the queue is made). ``client`` defaults to the process's SQS client."""

    def __init__(self, client: Any | None = None) -> None:
        self._client_override = client
        self._owners: dict[str, TriggerQueue | None] = {}

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start, as store.dynamo

        return get_client("sqs")

    def by_arn(self, queue_arn: str) -> TriggerQueue | None:
        """The queue of an SQS record's ``eventSourceARN`` (None: not a trigger queue)."""
        if queue_arn not in self._owners:
            parts = queue_arn.split(":")
            if len(parts) != 6:
                return None
            try:
                url = self._client.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])[
                    "QueueUrl"
                ]
            except (ClientError, BotoCoreError) as exc:
                raise TriggerStoreError("could not find a trigger queue") from exc
            self._owners[queue_arn] = self._owner(str(url))
        return self._owners[queue_arn]

    def tagged(self) -> list[TriggerQueue]:
        """Every queue of the account that carries both tags (`formica dev` polls these)."""
        try:
            urls = self._client.list_queues().get("QueueUrls", [])
        except (ClientError, BotoCoreError) as exc:
            raise TriggerStoreError("could not list queues") from exc
        found = [self._owner(str(url)) for url in urls]
        return [queue for queue in found if queue is not None]

    def _owner(self, url: str) -> TriggerQueue | None:
        try:
            tags = self._client.list_queue_tags(QueueUrl=url).get("Tags", {})
        except (ClientError, BotoCoreError) as exc:
            raise TriggerStoreError("could not read a trigger queue's tags") from exc
        org, topic = tags.get(ORG_TAG), tags.get(TOPIC_TAG)
        return TriggerQueue(url, org, topic) if org and topic else None
