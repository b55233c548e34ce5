"""The one background loop of `formica dev`'s pollers: passes, pauses, a failed pass, stop."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from formica.local.pollers import PollingThread


class ScriptedPoller(PollingThread):
    """Answers each pass from a script (a count, or an exception to raise), then idles."""

    def __init__(self, script: list[int | Exception], *, idle_wait: float, error_wait: float = 0.01) -> None:
        super().__init__(
            name="formica-test-poller",
            failure_message="test poll failed",
            idle_wait=idle_wait,
            error_wait=error_wait,
        )
        self.script = script
        self.passes: list[float] = []
        self.threads: set[str] = set()
        self.script_done = threading.Event()

    def poll_pass(self) -> int:
        self.passes.append(time.monotonic())
        self.threads.add(threading.current_thread().name)
        if not self.script:
            self.script_done.set()
            return 0
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def test_a_failed_pass_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    # Given a poller whose second pass raises
    poller = ScriptedPoller([1, RuntimeError("queue gone"), 2], idle_wait=0.01)
    caplog.set_level(logging.ERROR, logger="formica.local.pollers")
    # When it runs on its thread until the script is done
    poller.start()
    try:
        assert poller.script_done.wait(5.0)
    finally:
        poller.stop()
    # Then the failure was logged with its cause and the passes after it still ran
    failures = [r for r in caplog.records if r.getMessage() == "test poll failed"]
    assert len(failures) == 1
    assert failures[0].exc_info is not None and "queue gone" in str(failures[0].exc_info[1])
    assert failures[0].__dict__["poller"] == "formica-test-poller"
    assert len(poller.passes) >= 4
    assert poller.threads == {"formica-test-poller"}


def test_an_idle_pass_waits_and_a_busy_one_goes_again_at_once() -> None:
    # Given two busy passes, then nothing to do, with a long idle pause
    poller = ScriptedPoller([3, 3], idle_wait=30.0)
    poller.start()
    try:
        assert poller.script_done.wait(5.0)
        time.sleep(0.2)
    finally:
        started = time.monotonic()
        poller.stop()
        stopped_in = time.monotonic() - started
    # Then the busy passes ran back to back, the idle one waited (no fourth pass), and stop()
    # cut the pause short rather than waiting it out
    assert len(poller.passes) == 3
    assert stopped_in < 5.0


def test_start_twice_runs_one_thread_and_stop_ends_it() -> None:
    poller = ScriptedPoller([], idle_wait=0.01)
    poller.start()
    first = poller._thread
    poller.start()
    assert poller._thread is first
    assert poller.script_done.wait(5.0)
    poller.stop()
    assert poller._thread is None
    assert first is not None and not first.is_alive()
    count = len(poller.passes)
    time.sleep(0.05)
    assert len(poller.passes) == count
