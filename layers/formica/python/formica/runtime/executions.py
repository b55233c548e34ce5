"""Executions of the job state machine: start, continue-as-new, cancel.

A PENDING request begins to walk only through admission (``formica.runtime.scheduling``:
scheduled_at, max_concurrency slots, priorities, skip_if), which calls ``begin_execution`` here; a
request that reaches a final state here (cancel) gives its slot back through
``Runtime.request_ended``.

An execution is started with its first decision as input (``begin_execution``, D13): the starter
takes the decision Advance's start would take, so the execution begins at its Choice. The input
``{"request_id"}`` alone still works: the state machine then takes the decision itself (Begin).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from formica.engine.walk import (
    ERR_JOB_CANCELLED,
    ERR_TASK_CANCELLED,
    RUN_ACTIONS,
    Action,
    JobState,
    path_events,
)
from formica.runtime.deps import ContainerRuntimeError, Runtime
from formica.runtime.events import publish_job_state
from formica.runtime.metrics import job_ended
from formica.runtime.walker import CANCELLED_ERROR, Walker
from formica.store.blobs import BlobStoreError
from formica.store.requests import (
    JobRequestItem,
    RequestFinishedError,
    RequestNotFoundError,
    RequestStoreError,
)
from formica.store.schema import cancel_marker_key, log_key
from formica.store.state_machine import StateMachineError

logger = logging.getLogger(__name__)

ERR_START_FAILED = "ERR_START_FAILED"
MAX_EXECUTION_NAME = 80


class ExecutionError(RuntimeError):
    """The state machine refused to start (or is not configured).

    ``transient``: Step Functions was throttling, failing inside, or unreachable (after botocore's
    own retries); the same start may well succeed a minute later, so the request is left for the
    sweep rather than failed.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ContinueEvent(BaseModel):
    """What ContinueAsNew passes: the request, the CONTINUE decision's step, the calling execution."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    step: int
    execution: str | None = None


def execution_name(request_id: str, number: int) -> str:
    """The name of a request's ``number``-th execution (names are unique per state machine)."""
    suffix = f"-{number}"
    return request_id[: MAX_EXECUTION_NAME - len(suffix)] + suffix


def start_execution(
    runtime: Runtime, request_id: str, name: str, decision: Mapping[str, Any] | None = None
) -> None:
    """StartExecution with a deterministic name; a second start of the same name is a no-op.

    ``decision`` (the flat decision a Lambda returns to the Choice) is the execution's input when
    given; without it the input is ``{"request_id"}`` and the execution decides for itself.
    """
    payload = dict(decision) if decision else {"request_id": request_id}
    try:
        started = runtime.state_machine.start_execution(name, payload)
    except StateMachineError as exc:
        raise ExecutionError(str(exc), transient=exc.transient) from exc
    if started:
        logger.info("execution started", extra={"request_id": request_id, "execution": name})


def begin_execution(runtime: Runtime, request: JobRequestItem, name: str) -> None:
    """Start execution ``name`` of ``request`` with its first decision already taken (D13).

    The decision is committed before StartExecution, so a crash in between leaves a request whose
    decision waits for an execution: ``awaiting_execution`` finds it and the sweep calls this again
    (the decision is answered again, and a start of an existing name is a no-op).
    """
    try:
        decision = Walker(runtime).first_decision(request, name)
    except Exception as exc:  # never lose a start over its decision: Begin takes it (or fails the job)
        logger.warning(
            "first decision not taken before the start",
            extra={"request_id": request.request_id, "error": f"{type(exc).__name__}: {exc}"},
        )
        decision = None
    start_execution(runtime, request.request_id, name, decision)


def awaiting_execution(request: JobRequestItem) -> bool:
    """Whether the request's execution may not have started: admitted with no decision yet, or its
    first decision (taken by the starter) not picked up by any task."""
    if not request.execution_name or request.job_state not in (JobState.STARTED, JobState.EXECUTING):
        return False
    decision = request.decision
    if decision is None:
        return request.job_state == JobState.STARTED
    return (
        decision.action in RUN_ACTIONS
        and request.claimed_step < request.step
        and request.walk.execution == request.execution_name
        and request.walk.execution_states == path_events(decision)[1]
    )


def continue_execution(event: ContinueEvent | dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """Continue-as-new: start the request's next execution (idempotently), then the caller ends."""
    rt = runtime
    parsed = event if isinstance(event, ContinueEvent) else ContinueEvent.model_validate(event)
    request = Walker(rt).load(parsed.request_id)
    if request.is_final:
        return {"request_id": request.request_id, "execution": request.execution_name or ""}
    caller = parsed.execution or request.execution_name
    if request.execution_name == caller:
        if (
            request.step != parsed.step
            or request.decision is None
            or request.decision.action != Action.CONTINUE
        ):
            raise ExecutionError(
                f"request {request.request_id} did not ask to continue at step {parsed.step}"
            )
        name = execution_name(request.request_id, request.execution_count + 1)
        if not rt.requests.set_execution(request.request_id, expected=caller, name=name):
            request = Walker(rt).load(parsed.request_id)
            name = request.execution_name or name
    else:
        name = request.execution_name or execution_name(request.request_id, request.execution_count + 1)
    # The next execution starts at its Choice with the decision kept for it (resumed and committed
    # here; a retried call answers it again).
    begin_execution(rt, request, name)
    return {"request_id": request.request_id, "execution": name}


def cancel_request(org: str, request_id: str, runtime: Runtime) -> JobRequestItem:
    """Cancel a request that has not finished.

    Marks it CANCELLED (a conditional write: ``RequestFinishedError`` when it already finished,
    ``RequestNotFoundError`` when it is not the organisation's), closes the running task's record,
    completes a waiting container task with ``Formica.Cancelled`` so the walk reaches Advance and
    ends, and calls StopExecution (best effort: moto does not stop a running execution, and in AWS
    it does not stop work a Lambda or container already started; runners poll ``is_cancelled``).
    """
    rt = runtime
    if rt.requests.get_for_org(org, request_id) is None:
        raise RequestNotFoundError(request_id)
    cancelled = rt.requests.mark_cancelled(
        request_id, error_code=ERR_JOB_CANCELLED, message="cancelled on request"
    )
    logger.info("job cancelled", extra={"request_id": request_id})
    job_ended(cancelled.job_type, JobState.CANCELLED)
    publish_job_state(rt, cancelled, JobState.CANCELLED)
    rt.request_ended(rt, cancelled)
    current = cancelled.walk.current
    if current is not None:
        if cancelled.outbox is not None and cancelled.outbox.step == cancelled.step:
            # The last step's records may not be written yet (its committer is still between its
            # commit and its flush, or died there, and a cancelled request is never replayed):
            # write them first (idempotent puts), so the update below completes the current
            # task's record instead of creating a partial item that could not be read back.
            rt.requests.flush_outbox(request_id, cancelled.outbox)
        # Conditional: a COMPLETED or SKIPPED record keeps its state, and a missing one is never
        # created as a partial item.
        # An attempt that was running counts: it ran, and its log keeps what it wrote.
        # The record names its log as a committed attempt's does (the runner stores the whole log
        # there when it stops; until then its live chunks hold what it wrote).
        running = cancelled.claimed_step == cancelled.step and current.waiting is None
        rt.requests.cancel_task(
            request_id,
            current.seq,
            error_code=ERR_TASK_CANCELLED,
            ended_at=rt.now_iso(),
            attempts=current.attempts + 1 if running else current.attempts,
            log_key=(
                log_key(org, request_id, current.task_type, Walker(rt).attempt_number(cancelled))
                if running
                else None
            ),
        )
    if cancelled.execution_name:
        # Whoever cancels (the API, a parent's fan_out, the sweep) writes the marker: the function
        # whose SHELL attempt runs in a sandbox is not the one that cancels.
        _mark_cancelled_for_sandboxes(rt, cancelled)
    if rt.settings.container_runtime == "ecs":
        _stop_cloud_containers(rt, request_id)
    if cancelled.task_token:
        try:
            rt.state_machine.send_task_failure(cancelled.task_token, CANCELLED_ERROR, "the job was cancelled")
        except StateMachineError as exc:
            logger.warning(
                "could not complete the waiting task", extra={"request_id": request_id, "error": str(exc)}
            )
    if rt.settings.state_machine_arn and cancelled.execution_name:
        try:
            rt.state_machine.stop_execution(cancelled.execution_name, "cancelled")
        except StateMachineError as exc:
            logger.warning(
                "could not stop the execution", extra={"request_id": request_id, "error": str(exc)}
            )
    _cancel_children(rt, org, request_id)
    return rt.requests.get(request_id) or cancelled


def _cancel_children(rt: Runtime, org: str, parent_id: str) -> None:
    """Cancelling a parent cancels the children its FORK_JOB tasks started (and theirs) that still run."""
    try:
        children = [child for child in rt.requests.list_children(parent_id) if not child.is_final]
    except RequestStoreError as exc:
        logger.warning(
            "children not listed for the cancel", extra={"request_id": parent_id, "error": str(exc)}
        )
        return
    for child in children:
        try:
            cancel_request(org, child.child_id, rt)
        except (RequestFinishedError, RequestNotFoundError):
            continue  # ended meanwhile, or never created
        except Exception as exc:  # one child's trouble must not stop the others' cancel
            logger.warning(
                "forked job not cancelled", extra={"request_id": child.child_id, "error": str(exc)}
            )


def _mark_cancelled_for_sandboxes(rt: Runtime, request: JobRequestItem) -> None:
    """A SHELL sandbox holds no credentials to read the request: it polls the cancel marker through a
    presigned GET and kills its script when the marker appears."""
    try:
        key = cancel_marker_key(request.org, request.request_id, request.execution_name)
        rt.blobs.put_bytes(key, b"cancelled\n", "text/plain")
    except BlobStoreError as exc:
        logger.warning(
            "cancel marker not written; a sandboxed script runs to its timeout",
            extra={"request_id": request.request_id, "error": str(exc)},
        )


def _stop_cloud_containers(rt: Runtime, request_id: str) -> None:
    """Stop the request's ECS tasks / EKS Jobs and settle their runs (ERR_TASK_CANCELLED, log kept).

    Their reports reach ``complete_container_attempt``, which never answers the token of a request
    that is already final (it is marked CANCELLED before this runs): the waiting Launch is answered
    once, by the cancel's own SendTaskFailure ``Formica.Cancelled`` (tests/workflow/test_container_cancel.py).
    """
    try:
        rt.containers.cancel_runs(request_id)
    except ContainerRuntimeError as exc:
        logger.warning("could not stop the containers", extra={"request_id": request_id, "error": str(exc)})
