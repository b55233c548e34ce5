"""`formica dev`'s MESSAGING reply consumer, in-process on moto.

In AWS, Launch subscribes the messaging_reply function to each reply queue it uses (an SQS event
source mapping) and SQS invokes it. Locally ``LocalReplyPoller`` is that subscription: Launch's
``subscribe`` registers the reply queue with it (``runtime.messaging.use_in_process_subscriptions``),
and it hands each registered queue's messages to the function's handler, as SQS would. Request
queues are never read here: they are the replier's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from formica.local.notify import LocalNotifyPoller
from formica.local.pollers import PollingThread
from formica.runtime.messaging import use_in_process_subscriptions
from formica.store.aws import get_client
from formica.store.messages import ReplySubscriptions


class LocalReplyPoller(ReplySubscriptions, PollingThread):
    """The reply queues Launch subscribed, each drained into the messaging_reply handler."""

    def __init__(self, sqs: Any) -> None:
        super().__init__(
            name="formica-messaging", failure_message="messaging reply poll failed", idle_wait=0.2
        )
        self._sqs = sqs
        self._queues: dict[str, LocalNotifyPoller] = {}
        self._lock = threading.Lock()

    def subscribe(self, queue_arn: str) -> None:
        with self._lock:
            if queue_arn in self._queues:
                return
            url = self._sqs.get_queue_url(QueueName=queue_arn.rpartition(":")[2])["QueueUrl"]
            self._queues[queue_arn] = LocalNotifyPoller(
                url, self._sqs, wait_seconds=0, function="messaging_reply"
            )

    def poll_once(self) -> int:
        """Drain each subscribed queue once; returns how many messages were handed over."""
        with self._lock:
            pollers = list(self._queues.values())
        return sum(poller.poll_once(0) for poller in pollers)

    def poll_pass(self) -> int:
        return self.poll_once()


@contextlib.contextmanager
def local_messaging() -> Iterator[LocalReplyPoller]:
    """MESSAGING replies for `formica dev` (moto running, its endpoint in the settings): a
    ``LocalReplyPoller`` receives the subscribed reply queues until the block ends."""
    poller = LocalReplyPoller(get_client("sqs"))
    use_in_process_subscriptions(poller)
    poller.start()
    try:
        yield poller
    finally:
        poller.stop()
        use_in_process_subscriptions(None)
