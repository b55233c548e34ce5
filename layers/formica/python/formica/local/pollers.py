"""The background loop of `formica dev`'s stand-ins for AWS's pollers.

EventBridge Scheduler, the SQS event source mappings and the reply subscriptions are each played
locally by a class that does one pass of the work on demand (tests call it by hand) and, under
`formica dev`, repeats it on a daemon thread. ``PollingThread`` is that thread, written once: start,
stop, the pause between passes, and a failed pass logged without ending the loop.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

logger = logging.getLogger(__name__)


class PollingThread(ABC):
    """Repeats ``poll_pass()`` on a daemon thread named ``name`` from ``start()`` until ``stop()``.

    After a pass that handled nothing the loop waits ``idle_wait`` seconds (0 for a pass that
    long-polls by itself); after one that handled something it goes again at once. A pass that
    raises is logged with ``failure_message`` and followed by ``error_wait`` seconds, so the loop
    outlives one bad pass without spinning on it.
    """

    def __init__(self, *, name: str, failure_message: str, idle_wait: float, error_wait: float = 1.0) -> None:
        self.thread_name = name
        self.failure_message = failure_message
        self.idle_wait = idle_wait
        self.error_wait = error_wait
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def poll_pass(self) -> int:
        """One pass of the work; returns how many things it handled (0: nothing was waiting)."""

    def start(self) -> None:
        """Run the loop on a daemon thread (a no-op when it already runs)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handled = self.poll_pass()
            except Exception:  # the loop outlives one bad pass; the cause is logged
                logger.exception(self.failure_message, extra={"poller": self.thread_name})
                self._stop.wait(self.error_wait)
                continue
            if not handled and self.idle_wait:
                self._stop.wait(self.idle_wait)

    def stop(self, timeout: float = 10.0) -> None:
        """End the loop after the pass in progress, waiting up to ``timeout`` seconds for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
