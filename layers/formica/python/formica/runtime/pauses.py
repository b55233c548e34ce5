"""PAUSE_JOB: a paused job waits on a task token, at no cost, until it is resumed.

- ``await_resume`` (the Launch Lambda, for an AWAIT_RESUME decision): gives the request's
  max_concurrency slot back; the token Launch recorded waits until a resume or the state's timeout
  (the task's ``pause_time``: a resume by itself; the walk decides, ``formica.engine.walk``).
- ``resume_request`` (the API's ``POST .../resume``): once per pause (a conditional put), the
  resume answers the token (``go_on``: a max_concurrency slot taken again, or queued for the next
  free one; then recorded, committed, SendTaskSuccess); the walk goes on at the paused task's
  on_completed task.
"""

from __future__ import annotations

import logging
from typing import Any

from formica.engine.walk import AttemptResult, JobState, WaitKind
from formica.runtime.deps import Runtime
from formica.runtime.scheduling import give_slot_back, go_on
from formica.store.requests import JobRequestItem, RequestNotFoundError, now_iso

logger = logging.getLogger(__name__)

RESUMED_BY = "ResumedBy"
"""The resume's result names who resumed (the walk notes it on the paused task)."""


class NotPausedError(RuntimeError):
    """The request is not paused (never was, resumed already, ended), or is still pausing."""


def await_resume(runtime: Runtime, request: JobRequestItem, step: int) -> dict[str, Any]:
    """The Launch Lambda's AWAIT_RESUME: give the slot back; the recorded token waits."""
    give_slot_back(runtime, request)
    logger.info("job paused", extra={"request_id": request.request_id, "step": step})
    return {"request_id": request.request_id, "step": step, "launched": True}


def resume_request(runtime: Runtime, org: str, request_id: str, *, by: str) -> JobRequestItem:
    """Resume a PAUSED request now; returns it as it is after the resume.

    Raises
    ------
    RequestNotFoundError
        No such request in ``org``.
    NotPausedError
        It is not paused, was resumed already, or its pause is not waiting yet (a moment after the
        task that paused it ended: try again).
    """
    request = runtime.requests.get_for_org(org, request_id)
    if request is None:
        raise RequestNotFoundError(f"job request {request_id} not found")
    current = request.walk.current
    if request.job_state != JobState.PAUSED or current is None or current.waiting != WaitKind.RESUME:
        raise NotPausedError(f"request {request_id} is {request.job_state}, not PAUSED")
    step = request.step
    if request.task_token is None or request.task_token_step != step or request.claimed_step != step:
        raise NotPausedError(f"request {request_id} is pausing: resume it in a moment")
    if not runtime.requests.put_resume(request_id, step, by=by, at=now_iso()):
        raise NotPausedError(f"request {request_id} was resumed already")
    logger.info("job resumed", extra={"request_id": request_id, "step": step, "by": by})
    result = AttemptResult(exit_code=current.last_exit_code, outputs={RESUMED_BY: by})
    go_on(runtime, request, step, result)
    return runtime.requests.get(request_id) or request
