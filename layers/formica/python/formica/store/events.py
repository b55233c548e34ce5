"""Lifecycle events out and deliveries in: the EventBridge bus and the delivery queue (SQS).

Every request and task state change is put on the stack's bus (``source: formica``, detail-type
``Job State Change`` / ``Task State Change``); a rule sends them to the delivery queue that the
notify function consumes. A webhook delivery that failed goes back on that queue with a delay.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

EVENT_SOURCE = "formica"
JOB_STATE_CHANGE = "Job State Change"
TASK_STATE_CHANGE = "Task State Change"
PUT_EVENTS_MAX = 10
"""PutEvents takes at most 10 entries per call."""
SQS_DELAY_MAX_SECONDS = 900
"""SQS's longest DelaySeconds."""


class EventPublishError(RuntimeError):
    """An event could not be put on the bus (some or all entries)."""


class DeliveryQueueError(RuntimeError):
    """A message could not be sent to the delivery queue."""


@dataclass(frozen=True)
class BusEvent:
    """One event for the bus: its detail-type and its detail (JSON-ready)."""

    detail_type: str
    detail: Mapping[str, Any]


class EventPublisher(ABC):
    """Port: put lifecycle events on the bus."""

    @abstractmethod
    def publish(self, events: Sequence[BusEvent]) -> None:
        """Put ``events`` on the bus; raises EventPublishError when any entry failed."""


class EventBridgePublisher(EventPublisher):
    """Adapter: EventBridge PutEvents on ``bus_name``. ``client`` defaults to the process's."""

    def __init__(self, bus_name: str, client: Any | None = None) -> None:
        self._bus = bus_name
        self._client_override = client

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("events")

    def publish(self, events: Sequence[BusEvent]) -> None:
        for start in range(0, len(events), PUT_EVENTS_MAX):
            entries = [
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": event.detail_type,
                    "Detail": json.dumps(event.detail, separators=(",", ":")),
                    "EventBusName": self._bus,
                }
                for event in events[start : start + PUT_EVENTS_MAX]
            ]
            try:
                response = self._client.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise EventPublishError(
                    f"could not put {len(entries)} events on {self._bus!r}: {exc}"
                ) from exc
            failed = int(response.get("FailedEntryCount", 0))
            if failed:
                codes = sorted(
                    {str(e.get("ErrorCode")) for e in response.get("Entries", []) if e.get("ErrorCode")}
                )
                raise EventPublishError(
                    f"{failed} of {len(entries)} events refused by {self._bus!r}: {codes}"
                )


class DeliveryQueue(ABC):
    """Port: send a message to the delivery queue, now or after a delay."""

    @abstractmethod
    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> None:
        """Send ``body`` (JSON) visible after ``delay_seconds``; raises DeliveryQueueError."""


class SqsDeliveryQueue(DeliveryQueue):
    """Adapter: SQS SendMessage on ``queue_url``. ``client`` defaults to the process's."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self._url = queue_url
        self._client_override = client

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("sqs")

    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> None:
        delay = max(0, min(int(delay_seconds), SQS_DELAY_MAX_SECONDS))
        try:
            self._client.send_message(QueueUrl=self._url, MessageBody=json.dumps(body), DelaySeconds=delay)
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryQueueError(f"could not send to the delivery queue: {exc}") from exc
