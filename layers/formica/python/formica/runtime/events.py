"""Lifecycle events: every request and task state change put on the stack's EventBridge bus.

The walk calls ``publish_transition`` after each committed step, ``publish_job_state`` where a
request changes state outside a step (a cancel, a fatal end). Publishing never fails the walk: a
refused or unanswered PutEvents is logged with the events' ids and counted (``events_not_published``),
and the step stands. The detail carries formicary's lifecycle-event fields, plus ``sequence`` (the
walk step that produced it) so a receiver can order events that arrive out of order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from formica.engine.walk import JobState, TaskUpdate, Transition
from formica.runtime.deps import Runtime
from formica.store.events import JOB_STATE_CHANGE, TASK_STATE_CHANGE, BusEvent, EventPublishError
from formica.store.requests import JobRequestItem

logger = logging.getLogger(__name__)

JOB_EVENT_TYPE = "JobExecutionLifecycleEvent"
TASK_EVENT_TYPE = "TaskExecutionLifecycleEvent"

_lost = [0]
_lost_lock = threading.Lock()


def events_not_published() -> int:
    """How many events this process failed to publish (also in each failure's log line)."""
    return _lost[0]


def job_event(request: JobRequestItem, state: JobState, sequence: int, *, created_at: str) -> BusEvent:
    """The ``Job State Change`` event of ``request`` entering ``state`` at walk step ``sequence``."""
    detail: dict[str, Any] = {
        **_common(request, sequence, created_at),
        "id": f"{request.request_id}-{sequence:06d}-job-{state}",
        "event_type": JOB_EVENT_TYPE,
        "job_state": str(state),
    }
    if state.is_final and request.error_code:
        detail["error_code"] = request.error_code
    return BusEvent(JOB_STATE_CHANGE, detail)


def task_event(request: JobRequestItem, update: TaskUpdate, sequence: int, *, created_at: str) -> BusEvent:
    """The ``Task State Change`` event of one task record's new state at walk step ``sequence``."""
    detail: dict[str, Any] = {
        **_common(request, sequence, created_at),
        "id": f"{request.request_id}-{sequence:06d}-task-{update.seq}-{update.task_state}",
        "event_type": TASK_EVENT_TYPE,
        "task_type": update.task_type,
        "task_execution_id": f"{request.request_id}-{update.seq}",
        "task_state": str(update.task_state),
        "exit_code": update.exit_code,
    }
    if update.error_code:
        detail["error_code"] = update.error_code
    return BusEvent(TASK_STATE_CHANGE, detail)


def _common(request: JobRequestItem, sequence: int, created_at: str) -> dict[str, Any]:
    return {
        "source": "formica",
        "created_at": created_at,
        "sequence": sequence,
        "organization_id": request.org,
        "user_id": request.user_id,
        "job_request_id": request.request_id,
        "job_type": request.job_type,
        "job_execution_id": request.execution_name or "",
        "job_priority": request.job_priority,
    }


def publish_transition(
    runtime: Runtime, before: JobRequestItem, transition: Transition, sequence: int
) -> None:
    """Publish what one committed step changed: its task records' new states, then the request's
    state when it changed (``before`` is the request as it was before the step)."""
    now = runtime.now_iso()
    events = [task_event(before, update, sequence, created_at=now) for update in transition.task_updates]
    # Admission made the request STARTED in the slot's transaction; the walk's first decision is
    # where it is reported, so STARTED comes before the first task's events.
    first_decision = before.decision is None and transition.job_state == JobState.STARTED
    if transition.job_state != before.job_state or first_decision:
        after = before.model_copy(
            update={
                "error_code": transition.error_code or before.error_code,
                "job_state": transition.job_state,
            }
        )
        events.append(job_event(after, transition.job_state, sequence, created_at=now))
    _publish(runtime, events)


def publish_job_state(runtime: Runtime, request: JobRequestItem, state: JobState) -> None:
    """Publish ``request`` entering ``state`` outside a walk step (cancelled, failed fatally)."""
    _publish(runtime, [job_event(request, state, request.step, created_at=runtime.now_iso())])


def _publish(runtime: Runtime, events: list[BusEvent]) -> None:
    publisher = runtime.events
    if publisher is None or not events:
        return
    try:
        publisher.publish(events)
    except EventPublishError as exc:
        with _lost_lock:
            _lost[0] += len(events)
            lost = _lost[0]
        logger.warning(
            "lifecycle events not published",
            extra={
                "event_ids": [_event_id(e.detail) for e in events],
                "events_not_published": lost,
                "error": str(exc),
            },
        )


def _event_id(detail: Mapping[str, Any]) -> str:
    return str(detail.get("id", ""))
