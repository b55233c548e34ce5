"""`formica dev`'s lifecycle events: the bus, the delivery queue and its consumer, in-process.

In AWS the walk puts each state change on the stack's EventBridge bus, a rule sends it to the
delivery queue (SQS, with a dead-letter queue) and SQS invokes the notify function. Locally the same
bus, rule and queues live in moto (moto's EventBridge delivers to an SQS target), and
``LocalNotifyPoller`` plays Lambda's event-source mapping: it receives the queue's messages and
runs ``functions/notify``'s handler on each, as SQS would. moto's queue honours DelaySeconds on
receive, so webhook retries arrive after their backoff (``FORMICA_WEBHOOK_BACKOFF_SECONDS``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

from formica.api.services import reset_services
from formica.local.lambda_dispatch import LocalLambdaContext, load_handler
from formica.local.pollers import PollingThread
from formica.runtime import reset_runtime
from formica.settings import reset_settings
from formica.store.aws import get_client
from formica.store.events import EVENT_SOURCE

logger = logging.getLogger(__name__)

LOCAL_BUS = "formica-local"
LOCAL_QUEUE = "formica-local-deliveries"
LOCAL_DLQ = "formica-local-deliveries-dlq"
LIFECYCLE_RULE = "formica-lifecycle-to-deliveries"
MAX_RECEIVE_COUNT = 5
"""A message that failed this many receives goes to the dead-letter queue (as in the stack)."""
LIFECYCLE_PATTERN = {"source": [EVENT_SOURCE], "detail-type": ["Job State Change", "Task State Change"]}
"""The rule's event pattern: every lifecycle event of the bus (the stack's rule is the same)."""


def create_event_plumbing(
    events: Any, sqs: Any, *, bus: str = LOCAL_BUS, queue: str = LOCAL_QUEUE, dlq: str = LOCAL_DLQ
) -> str:
    """Create the bus, the delivery queue with its dead-letter queue, and the rule between them;
    returns the delivery queue's URL. ``events`` and ``sqs`` are boto3 clients (moto)."""
    dlq_url = sqs.create_queue(QueueName=dlq)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)})
    queue_url = sqs.create_queue(QueueName=queue, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.create_event_bus(Name=bus)
    events.put_rule(Name=LIFECYCLE_RULE, EventBusName=bus, EventPattern=json.dumps(LIFECYCLE_PATTERN))
    events.put_targets(
        Rule=LIFECYCLE_RULE, EventBusName=bus, Targets=[{"Id": "deliveries", "Arn": queue_arn}]
    )
    return str(queue_url)


class LocalNotifyPoller(PollingThread):
    """Receives a queue's messages and runs a function's handler on each batch, as an SQS event
    source mapping does: the notify function on the delivery queue, or ``function`` on another."""

    def __init__(self, queue_url: str, sqs: Any, *, wait_seconds: int = 1, function: str = "notify") -> None:
        # The receive itself waits up to ``wait_seconds``, so the thread goes again at once.
        super().__init__(name="formica-notify", failure_message="delivery poll failed", idle_wait=0.0)
        self.queue_url = queue_url
        self._sqs = sqs
        self._wait = wait_seconds
        self._function = function
        self._queue_arn = ""

    def poll_once(self, wait_seconds: int | None = None) -> int:
        """Receive up to 10 messages and hand them to the handler; returns how many were received.
        Messages the handler reports in ``batchItemFailures`` stay on the queue (SQS redelivers them)."""
        received = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self._wait if wait_seconds is None else wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return 0
        if not self._queue_arn:
            self._queue_arn = self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": self._queue_arn,
            }
            for m in received
        ]
        function_name = "formica-" + self._function.replace("_", "-")
        answer = load_handler(self._function)(
            {"Records": records}, LocalLambdaContext(function_name=function_name)
        )
        failed = {item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])}
        for record in records:
            if record["messageId"] not in failed:
                self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"])
        return len(records)

    def poll_pass(self) -> int:
        return self.poll_once()


@contextlib.contextmanager
def local_notifications() -> Iterator[LocalNotifyPoller]:
    """Lifecycle events and their deliveries for `formica dev` (moto running, its endpoint in the
    settings): creates the plumbing, sets ``FORMICA_EVENT_BUS_NAME`` and ``FORMICA_NOTIFY_QUEUE_URL``
    (restored on exit) and runs a ``LocalNotifyPoller`` until the block ends."""
    queue_url = create_event_plumbing(get_client("events"), get_client("sqs"))
    values = {"FORMICA_EVENT_BUS_NAME": LOCAL_BUS, "FORMICA_NOTIFY_QUEUE_URL": queue_url}
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    _forget_cached_settings()
    poller = LocalNotifyPoller(queue_url, get_client("sqs"))
    poller.start()
    try:
        yield poller
    finally:
        poller.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _forget_cached_settings()


def _forget_cached_settings() -> None:
    for reset in (reset_settings, reset_runtime, reset_services):
        reset()
