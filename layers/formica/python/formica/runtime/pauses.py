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
from datetime import timedelta
from typing import Any

from formica.engine.walk import AttemptResult, JobState, WaitKind
from formica.runtime.deps import Runtime
from formica.runtime.scheduling import give_slot_back, go_on
from formica.store.requests import JobRequestItem, RequestNotFoundError, iso
from formica.store.requests.approvals import resume_sk

logger = logging.getLogger(__name__)

RESUMED_BY = "ResumedBy"
"""The resume's result names who resumed (the walk notes it on the paused task)."""
ANSWER_GRACE_SECONDS = 60
"""How long a recorded verdict or resume may go unanswered before the sweep answers it again."""


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
    if not runtime.requests.put_resume(request_id, step, by=by, at=runtime.now_iso()):
        raise NotPausedError(f"request {request_id} was resumed already")
    logger.info("job resumed", extra={"request_id": request_id, "step": step, "by": by})
    result = AttemptResult(exit_code=current.last_exit_code, outputs={RESUMED_BY: by})
    go_on(runtime, request, step, result)
    runtime.requests.answered(request_id, resume_sk(step))
    return runtime.requests.get(request_id) or request


def repair_lost_answers(runtime: Runtime) -> int:
    """The sweep: a verdict or resume recorded more than ``ANSWER_GRACE_SECONDS`` ago whose answer
    is not known to be sent (its sender died between the record and the answer) is answered again
    when the walk still waits at its step, else forgotten. Returns how many were answered again."""
    before = iso(runtime.now() - timedelta(seconds=ANSWER_GRACE_SECONDS))
    repaired = 0
    for unsent in runtime.requests.unsent_answers(before=before):
        request = runtime.requests.get(unsent.request_id)
        current = request.walk.current if request is not None else None
        waits = request is not None and not request.is_final and request.step == unsent.step
        if request is not None and current is not None and waits:
            where = {"request_id": unsent.request_id, "step": unsent.step}
            logger.warning("a lost answer sent again", extra=where)
            if unsent.kind == "RESUME":
                result = AttemptResult(exit_code=current.last_exit_code, outputs={RESUMED_BY: unsent.by})
                go_on(runtime, request, unsent.step, result)
            else:
                from formica.runtime.approvals import answer_again  # noqa: PLC0415 - it imports this module's siblings

                answer_again(runtime, unsent.request_id, unsent.step)
            repaired += 1
        runtime.requests.answered(unsent.request_id, unsent.sk)
    return repaired
