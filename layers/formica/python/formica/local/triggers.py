"""`formica dev`'s S3 and queue triggers, in-process on moto.

In AWS, S3 sends object-created events of the buckets the operator lists to EventBridge, a rule
routes them to the S3 events queue, and SQS invokes the trigger_s3 function; each trigger queue
(tagged ``formica:org`` and ``formica:topic``) invokes the trigger_queue function. Locally the same
rule and queue live in moto (moto's S3 puts an EventBridge event for a bucket whose notification
configuration enables EventBridge, and its rule delivers to the SQS target), and
``LocalTriggerPoller`` plays the event source mappings: it turns EventBridge on for every bucket but
Formica's own, and hands each queue's messages to the function's handler, as SQS would.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from formica.api.services import reset_services
from formica.local.notify import MAX_RECEIVE_COUNT, LocalNotifyPoller
from formica.local.pollers import PollingThread
from formica.runtime import reset_runtime
from formica.runtime.triggers import S3_OBJECT_CREATED, forget_org_triggers
from formica.settings import get_settings, reset_settings
from formica.store.aws import get_client
from formica.store.triggers import TriggerQueueDirectory

S3_EVENTS_QUEUE = "formica-local-s3-events"
S3_EVENTS_DLQ = "formica-local-s3-events-dlq"
S3_EVENTS_RULE = "formica-s3-object-created"
S3_EVENTS_PATTERN = {"source": ["aws.s3"], "detail-type": [S3_OBJECT_CREATED]}
"""The rule's event pattern on the default bus (the stack's rule is the same)."""
REFRESH_SECONDS = 2.0
"""How often the poller looks for new buckets and trigger queues."""


def create_s3_event_plumbing(events: Any, sqs: Any) -> str:
    """The S3 events queue with its dead-letter queue, and the default bus's rule to it; returns
    the queue's URL. ``events`` and ``sqs`` are boto3 clients (moto)."""
    dlq_url = sqs.create_queue(QueueName=S3_EVENTS_DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)})
    queue_url = sqs.create_queue(QueueName=S3_EVENTS_QUEUE, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name=S3_EVENTS_RULE, EventPattern=json.dumps(S3_EVENTS_PATTERN))
    events.put_targets(Rule=S3_EVENTS_RULE, Targets=[{"Id": "s3-events", "Arn": queue_arn}])
    return str(queue_url)


class LocalTriggerPoller(PollingThread):
    """Hands the S3 events queue's and the trigger queues' messages to their functions' handlers."""

    def __init__(self, s3_queue_url: str, *, own_bucket: str, sqs: Any, s3: Any) -> None:
        super().__init__(name="formica-triggers", failure_message="trigger poll failed", idle_wait=0.5)
        self._sqs = sqs
        self._s3 = s3
        self._own_bucket = own_bucket
        self._s3_events = LocalNotifyPoller(s3_queue_url, sqs, wait_seconds=0, function="trigger_s3")
        self._queues: dict[str, LocalNotifyPoller] = {}
        self._enabled: set[str] = set()
        self._refreshed = 0.0

    def poll_once(self) -> int:
        """One round: refresh buckets and queues when due, then drain each queue once; returns how
        many messages were handed over."""
        if time.monotonic() - self._refreshed >= REFRESH_SECONDS:
            self.refresh()
        # A definition uploaded a moment ago counts at once (the functions keep listings ~30 s).
        forget_org_triggers()
        taken = self._s3_events.poll_once(0)
        for poller in list(self._queues.values()):
            taken += poller.poll_once(0)
        return taken

    def refresh(self) -> None:
        """Turn EventBridge notifications on for new buckets; pick up new trigger queues."""
        self._refreshed = time.monotonic()
        for bucket in self._s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            if name == self._own_bucket or name in self._enabled:
                continue
            self._s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
            self._enabled.add(name)
        for queue in TriggerQueueDirectory(self._sqs).tagged():
            if queue.url not in self._queues:
                self._queues[queue.url] = LocalNotifyPoller(
                    queue.url, self._sqs, wait_seconds=0, function="trigger_queue"
                )

    def poll_pass(self) -> int:
        return self.poll_once()


@contextlib.contextmanager
def local_triggers(org: str) -> Iterator[LocalTriggerPoller]:
    """S3 and queue triggers for `formica dev` (moto running, its endpoint in the settings): every
    bucket but Formica's own is granted to ``org`` (``FORMICA_TRIGGER_BUCKETS``, restored on exit),
    and a ``LocalTriggerPoller`` runs until the block ends."""
    queue_url = create_s3_event_plumbing(get_client("events"), get_client("sqs"))
    key = "FORMICA_TRIGGER_BUCKETS"
    saved = os.environ.get(key)
    os.environ[key] = json.dumps({"*": [org]})
    _forget_cached_settings()
    poller = LocalTriggerPoller(
        queue_url, own_bucket=get_settings().bucket_name, sqs=get_client("sqs"), s3=get_client("s3")
    )
    poller.start()
    try:
        yield poller
    finally:
        poller.stop()
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved
        _forget_cached_settings()


def _forget_cached_settings() -> None:
    for reset in (reset_settings, reset_runtime, reset_services):
        reset()
