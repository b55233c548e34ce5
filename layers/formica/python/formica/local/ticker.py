"""`formica dev`'s stand-in for EventBridge: cron fires and the PENDING sweep, in-process.

In AWS, EventBridge Scheduler fires each definition's schedule and an EventBridge rule runs the
sweep every minute, both invoking the scheduler function. Locally the very same schedules live in
moto (the API creates them through ``formica.store.schedules``, as in AWS), and ``LocalTicker``
reads them and plays EventBridge's part: every tick it fires each enabled schedule's slots that came
due since the previous tick, with the input EventBridge would send (the scheduled time substituted),
then runs the sweep. The clock is injectable, so tests move time by hand and call ``tick()``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from formica.api.services import reset_services
from formica.jobs.cron import CronError, parse_cron
from formica.local.pollers import PollingThread
from formica.runtime import get_runtime, handle_event, reset_runtime
from formica.runtime.scheduling import sweep
from formica.settings import get_settings, reset_settings
from formica.store.aws import get_client
from formica.store.schedules import SCHEDULED_TIME, CronSchedule, fire_input, schedule_store_from_settings

logger = logging.getLogger(__name__)

LOCAL_GROUP = "formica-local"
LOCAL_ACCOUNT = "123456789012"
MAX_CATCH_UP = 5
"""At most this many missed slots per schedule are fired after a pause (a laptop that slept)."""

Clock = Callable[[], datetime]
Fire = Callable[[dict[str, Any]], Any]
Sweep = Callable[[datetime], Any]
ScheduleSource = Callable[[], list[CronSchedule]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def fire_event(schedule: CronSchedule, slot: datetime) -> dict[str, Any]:
    """The event EventBridge Scheduler sends for ``slot``: the schedule's input, time substituted."""
    text = json.dumps(fire_input(schedule)).replace(
        SCHEDULED_TIME, slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    event: dict[str, Any] = json.loads(text)
    return event


@dataclass(frozen=True)
class TickReport:
    fired: list[tuple[str, str, datetime]]  # (org, job_type, slot)
    swept: bool


class LocalTicker(PollingThread):
    """Fires due cron slots and runs the sweep, once per ``tick()`` (or on a thread every ``interval``)."""

    def __init__(
        self,
        *,
        schedules: ScheduleSource,
        fire: Fire,
        sweep: Sweep,
        clock: Clock = utc_now,
        interval: float = 1.0,
        sweep_every: float = 2.0,
    ) -> None:
        super().__init__(
            name="formica-ticker",
            failure_message="scheduler tick failed",
            idle_wait=interval,
            error_wait=interval,
        )
        self._schedules = schedules
        self._fire = fire
        self._sweep = sweep
        self._clock = clock
        self.sweep_every = sweep_every
        self._last: datetime | None = None
        self._last_sweep: datetime | None = None

    @property
    def interval(self) -> float:
        """Seconds between the thread's ticks."""
        return self.idle_wait

    def tick(self) -> TickReport:
        """Fire every slot in (previous tick, now] of every enabled schedule; sweep when it is time.

        The first tick only starts the clock: slots before the ticker existed are not fired.
        """
        now = self._clock()
        previous, self._last = self._last, now
        fired: list[tuple[str, str, datetime]] = []
        if previous is not None and now > previous:
            for schedule in self._schedules():
                for slot in self._slots(schedule, previous, now):
                    self._fire(fire_event(schedule, slot))
                    fired.append((schedule.org, schedule.job_type, slot))
        swept = False
        if self._last_sweep is None or (now - self._last_sweep).total_seconds() >= self.sweep_every:
            self._last_sweep = now
            self._sweep(now)
            swept = True
        return TickReport(fired=fired, swept=swept)

    def _slots(self, schedule: CronSchedule, after: datetime, until: datetime) -> list[datetime]:
        try:
            expression = parse_cron(schedule.cron_trigger)
        except CronError as exc:
            logger.warning("schedule skipped", extra={"job_type": schedule.job_type, "error": str(exc)})
            return []
        return expression.fire_times_between(after, until, limit=MAX_CATCH_UP)

    def poll_pass(self) -> int:
        """The thread's pass: one tick, then ``interval`` seconds' rest (it never reports work waiting)."""
        self.tick()
        return 0


@contextlib.contextmanager
def local_scheduling(region: str, *, interval: float = 1.0, clock: Clock = utc_now) -> Iterator[LocalTicker]:
    """Cron schedules and the sweep for `formica dev` (moto running, its endpoint in the settings).

    Sets the three ``FORMICA_SCHEDULE*`` settings (restored on exit) so the API creates schedules
    in moto's EventBridge Scheduler, creates the schedule group, and runs a ``LocalTicker`` that
    fires them through the scheduler function's own logic (``formica.runtime.handle_event``).
    """
    values = {
        "FORMICA_SCHEDULE_GROUP": LOCAL_GROUP,
        "FORMICA_SCHEDULER_ROLE_ARN": f"arn:aws:iam::{LOCAL_ACCOUNT}:role/formica-local-scheduler",
        "FORMICA_SCHEDULER_FUNCTION_ARN": (
            f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:formica-scheduler"
        ),
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    _forget_cached_settings(reset_settings, reset_runtime)
    try:
        get_client("scheduler").create_schedule_group(Name=LOCAL_GROUP)
        store = schedule_store_from_settings(get_settings())
        if store is None:  # pragma: no cover - the settings were just set
            raise RuntimeError("the local schedule settings did not take")
        ticker = LocalTicker(
            schedules=store.list_enabled,
            fire=lambda event: handle_event(event, get_runtime()),
            sweep=lambda now: sweep(get_runtime(), now=now),
            clock=clock,
            interval=interval,
        )
        ticker.start()
        try:
            yield ticker
        finally:
            ticker.stop()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _forget_cached_settings(reset_settings, reset_runtime)


def _forget_cached_settings(*resets: Callable[[], None]) -> None:
    for reset in (*resets, reset_services):
        reset()
