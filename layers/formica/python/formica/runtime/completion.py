"""A container attempt's result reaches the walk: recorded, committed, and the waiting Launch answered.

Both container paths end here: the local launcher's thread (``formica.runtime.launch``) and the
ECS / EKS container service's ``WalkReporter`` (``formica.runtime.containers``). The output sent to
the Launch state's token is the walk's next decision (D13), which the state machine's Choice reads
as it reads an HTTP or shell task Lambda's answer: no Advance state after a container attempt.
"""

from __future__ import annotations

import logging

from formica.engine.walk import AttemptResult
from formica.runtime.deps import Runtime
from formica.runtime.walker import Walker
from formica.store.requests import StoredAttempt
from formica.store.state_machine import StateMachineError

logger = logging.getLogger(__name__)

SUPERSEDED_ERROR = "Formica.Superseded"
"""The error a Launch sends back at once when its step is no longer the request's."""
COMMIT_FAILED_ERROR = "Formica.CommitFailed"
"""The error a container completion sends when it recorded the result but could not commit the
step: the Launch state's Catch hands it to Advance, which commits the recorded result."""


def complete_container_attempt(
    runtime: Runtime,
    request_id: str,
    step: int,
    result: AttemptResult,
    *,
    log_key: str | None = None,
) -> bool:
    """Record a container attempt's result, commit the walk's next step, and send that decision to
    the waiting Launch state (its output goes straight to the Choice, like a task Lambda's answer).

    The result is recorded on the request first (``attempt``): if the commit fails, the Launch
    state is answered with ``Formica.CommitFailed`` and Advance commits the recorded result; if
    the state timed out meanwhile, Advance finds it there too. ``log_key`` (or ``result.log_key``)
    names the attempt's stored log. Returns False when the walk no longer waits for this step
    (cancelled, timed out, superseded).
    """
    if log_key is not None and result.log_key is None:
        result = result.model_copy(update={"log_key": log_key})
    recorded = runtime.requests.record_attempt(
        request_id, step, StoredAttempt(step=step, result=result, log_key=result.log_key)
    )
    latest = runtime.requests.get(request_id)
    if (
        not recorded
        or latest is None
        or latest.is_final
        or latest.step != step
        or latest.task_token is None
        or latest.task_token_step != step
    ):
        logger.info("container result arrived after the walk moved on", extra={"request_id": request_id})
        return False
    try:
        output = Walker(runtime).record(latest, result)
    except Exception as exc:  # the walk must hear back: Advance commits the recorded result
        logger.warning(
            "container result recorded, step not committed",
            extra={"request_id": request_id, "error": f"{type(exc).__name__}: {exc}"},
        )
        send_failure(runtime, latest.task_token, COMMIT_FAILED_ERROR, f"{type(exc).__name__}: {exc}"[:1000])
        return True
    try:
        runtime.state_machine.send_task_success(latest.task_token, output)
    except StateMachineError as exc:
        logger.warning(
            "could not report the container result", extra={"request_id": request_id, "error": str(exc)}
        )
        return False
    return True


def send_failure(runtime: Runtime, token: str, error: str, cause: str) -> None:
    """Fail a waiting task token, best effort (a token that no longer waits needs nothing)."""
    try:
        runtime.state_machine.send_task_failure(token, error, cause)
    except StateMachineError as exc:
        logger.warning("could not complete the task token", extra={"error": str(exc)})
