"""The Launch Lambda's service: start a container attempt whose runner reports back by task token.

Launch runs inside ``lambda:invoke.waitForTaskToken``: it records the task token on the request
(per step), claims the attempt (so a retried Launch never starts a second container), renders the
task and hands it to the launcher of ``settings.container_runtime``; the launcher returns at once.

- ``local`` (``formica dev``, tests): the attempt runs on a background thread of this process with
  ``runners.local_container``; when it ends, ``complete_container_attempt`` records the result and
  sends it with SendTaskSuccess, using the token recorded for that step (a Launch retried by Step
  Functions gets a new token and records it, so the callback always uses the latest).
- ``ecs`` (AWS): the runtime's container service (``Runtime.containers``: ECS Fargate, or EKS
  for KUBERNETES tasks); the ECS event / reconciler answers the token.

Either way ``formica.runtime.completion.complete_container_attempt`` records the attempt and
commits the walk's next step, and the callback's output is that next decision (D13).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from formica.engine.walk import AttemptResult, WaitKind
from formica.jobs.errors import DefinitionError
from formica.jobs.models import RunnerKind
from formica.runners.base import TaskOutcome
from formica.runtime.attempts import local_container_runner
from formica.runtime.completion import SUPERSEDED_ERROR, complete_container_attempt, send_failure
from formica.runtime.deps import Runtime
from formica.runtime.walker import (
    ERR_INVALID_DEFINITION,
    ERR_RUNNER_FAILED,
    AttemptNotRenderedError,
    AttemptScope,
    Walker,
)
from formica.store.requests import JobRequestItem

logger = logging.getLogger(__name__)


class LaunchEvent(BaseModel):
    """What Launch receives: the request, the step of the RUN_CONTAINER decision, the task token."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    step: int
    task_token: str


class ContainerLaunchError(RuntimeError):
    """No launcher for the configured container runtime, or the launcher refused."""


Launcher = Callable[[Runtime, JobRequestItem, int, str], None]


def _launch_local(runtime: Runtime, request: JobRequestItem, step: int, task_token: str) -> None:
    thread = threading.Thread(
        target=run_local_attempt,
        args=(runtime, request, step),
        name=f"container-{request.request_id}-{step}",
        daemon=True,
    )
    thread.start()


def _launch_cloud(runtime: Runtime, request: JobRequestItem, step: int, task_token: str) -> None:
    # One render for an attempt, as a SHELL or HTTP attempt's (a failure arrives masked); the logs
    # helper masks the job's secrets in its live chunks and flushes as the other runners do.
    rendered = Walker(runtime).render_attempt(request, step, now=runtime.now())
    runtime.containers.launch(request.request_id, step, rendered.task, rendered.ctx, task_token)


CONTAINER_LAUNCHERS: dict[str, Launcher] = {"local": _launch_local, "ecs": _launch_cloud}
"""settings.container_runtime -> launcher (EKS is chosen per task inside the cloud launcher)."""


def launch_container(event: LaunchEvent | dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """Start the container attempt of ``step`` once; its runner reports back by task token."""
    rt = runtime
    parsed = event if isinstance(event, LaunchEvent) else LaunchEvent.model_validate(event)
    walker = Walker(rt)
    request = walker.load(parsed.request_id)
    if request.is_final or request.step != parsed.step:
        send_failure(rt, parsed.task_token, SUPERSEDED_ERROR, "the walk is no longer at this step")
        return {"request_id": parsed.request_id, "step": parsed.step, "launched": False}
    if not rt.requests.set_task_token(parsed.request_id, parsed.step, parsed.task_token):
        send_failure(rt, parsed.task_token, SUPERSEDED_ERROR, "the walk moved on")
        return {"request_id": parsed.request_id, "step": parsed.step, "launched": False}
    current = request.walk.current
    if current is not None and current.waiting in (WaitKind.RESUME, WaitKind.SLOT):
        if rt.requests.claim_wait(parsed.request_id, parsed.step) is None:
            return {"request_id": parsed.request_id, "step": parsed.step, "launched": False}
        if current.waiting == WaitKind.SLOT and current.slot_answer is not None:
            from formica.runtime.scheduling import go_on  # noqa: PLC0415 - cold start: as below

            go_on(rt, request, parsed.step, current.slot_answer)
            return {"request_id": parsed.request_id, "step": parsed.step, "launched": True}
        from formica.runtime.pauses import await_resume  # noqa: PLC0415 - cold start: containers never pause

        return await_resume(rt, request, parsed.step)
    if rt.requests.claim_attempt(parsed.request_id, parsed.step) is None:
        # A retried Launch: the attempt already runs (and will use the token just recorded) or was
        # lost, in which case the state's timeout brings the walk back to Advance.
        logger.info("container attempt already launched", extra={"request_id": parsed.request_id})
        return {"request_id": parsed.request_id, "step": parsed.step, "launched": False}
    if current is not None and current.waiting == WaitKind.APPROVAL:
        from formica.runtime.approvals import await_approval  # noqa: PLC0415 - cold start: as below

        return await_approval(rt, request, parsed.step)
    if current is not None and current.runner == RunnerKind.FORK:
        return _await_forks(rt, request, parsed.step)
    if current is not None and current.runner == RunnerKind.MANUAL:
        from formica.runtime.approvals import await_approval  # noqa: PLC0415 - cold start: containers never wait for approvers

        return await_approval(rt, request, parsed.step)
    if current is not None and current.runner == RunnerKind.WORKER:
        return _queue_for_workers(rt, request, parsed.step)
    if current is not None and current.runner == RunnerKind.MESSAGING:
        from formica.runtime.messaging import send_request  # noqa: PLC0415 - cold start: containers never message

        return send_request(rt, request, parsed.step)
    if current is None or current.runner != RunnerKind.CONTAINER:
        raise ContainerLaunchError(f"request {parsed.request_id} has no container task at step {parsed.step}")
    launcher = CONTAINER_LAUNCHERS.get(rt.settings.container_runtime)
    if launcher is None:
        raise ContainerLaunchError(f"no launcher for container runtime {rt.settings.container_runtime!r}")
    try:
        launcher(rt, request, parsed.step, parsed.task_token)
    except AttemptNotRenderedError as exc:
        failed = AttemptResult(error_code=exc.error_code, error_message=exc.message)
        complete_container_attempt(rt, parsed.request_id, parsed.step, failed)
    logger.info("container attempt launched", extra={"request_id": parsed.request_id, "step": parsed.step})
    return {"request_id": parsed.request_id, "step": parsed.step, "launched": True}


def _queue_for_workers(runtime: Runtime, request: JobRequestItem, step: int) -> dict[str, Any]:
    """A WEBSOCKET task waits on Launch's token too: queued for the organisation's workers, answered
    by the report of the worker that leased it (``formica.runtime.workers``)."""
    from formica.runtime.workers import queue_attempt  # noqa: PLC0415 - cold start: containers never queue for workers

    try:
        return queue_attempt(runtime, request, step)
    except DefinitionError as exc:
        failed = AttemptResult(error_code=ERR_INVALID_DEFINITION, error_message=str(exc))
        complete_container_attempt(runtime, request.request_id, step, failed)
        return {"request_id": request.request_id, "step": step, "launched": True}


def _await_forks(runtime: Runtime, request: JobRequestItem, step: int) -> dict[str, Any]:
    """AWAIT_FORKED_JOB waits on Launch's task token too: answered now when its children have all
    ended, else by the last one's end (``formica.runtime.forks``)."""
    from formica.runtime.forks import await_children  # noqa: PLC0415 - cold start: containers never fork

    current = request.walk.current
    assert current is not None  # noqa: S101 - checked by the caller
    try:
        definition = Walker(runtime).render(
            request, task_type=current.task_type, task_retry=current.task_retry, now=runtime.now()
        )
    except DefinitionError as exc:
        failed = AttemptResult(error_code=ERR_INVALID_DEFINITION, error_message=str(exc))
        complete_container_attempt(runtime, request.request_id, step, failed)
        return {"request_id": request.request_id, "step": step, "launched": True}
    answered = await_children(runtime, request, step, definition.task(current.task_type))
    return {"request_id": request.request_id, "step": step, "launched": True, "answered": answered}


def run_local_attempt(runtime: Runtime, request: JobRequestItem, step: int) -> None:
    """Run a container attempt on this machine, then report it (the local launcher's thread)."""
    walker = Walker(runtime)
    current = request.walk.current
    assert current is not None  # noqa: S101 - checked by launch_container
    try:
        # Its output streams to the live log as a SHELL attempt's does (masked by the walker's sink).
        rendered = walker.render_attempt(request, step, now=runtime.now(), live_log=True)
        runner = local_container_runner(runtime.settings.local_container_mode)
        outcome = runner(rendered.task, rendered.ctx, AttemptScope(runtime, request, step))
    except AttemptNotRenderedError as exc:
        outcome = TaskOutcome(error_code=exc.error_code, error_message=exc.message)
    except Exception as exc:  # the walk must hear back even when the runner breaks
        logger.exception("container attempt failed", extra={"request_id": request.request_id, "step": step})
        outcome = TaskOutcome(error_code=ERR_RUNNER_FAILED, error_message=f"{type(exc).__name__}: {exc}")
    walker.mask_outcome(request, outcome)
    result = walker.keep_reported_attempt(request, step, current.task_type, outcome)
    complete_container_attempt(runtime, request.request_id, step, result)
