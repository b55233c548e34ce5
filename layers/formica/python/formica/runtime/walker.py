"""Advance and task attempts: the engine's decisions committed to DynamoDB, runners run once each.

Every call names the request and the step it answers. A call for the current step decides and
commits with a conditional write on the step; a call for the step just committed (Step Functions
retrying a Lambda) gets the decision already taken; a call for an older step (an execution that was
superseded) ends its execution. A task attempt is claimed with a conditional write before it runs,
so a retried task Lambda never runs the task twice: it reuses the recorded result or, when the
first run died without one, records the attempt as lost (ERR_TASK_ATTEMPT_LOST).

HTTP and shell task Lambdas run their attempt and then advance the walk in the same invocation, so
their result goes straight to the state machine's Choice: a task attempt costs two states (the task
and the Choice), a poll with a delay three (plus the Wait). A container attempt's completion does the
same and sends the next decision as the Launch state's callback output (D13). The first decision of
an execution is taken by its starter (``first_decision``) and passed as the execution's input, so
an execution begins at the Choice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from formica.engine.outputs import (
    artifact_url_outputs,
    environment_variables,
    is_identifier,
    template_variables,
)
from formica.engine.routing import AttemptOutcome, RetryBudget, TaskState, route_exit_code
from formica.engine.usage import RequestUsage, StepEntry, step_transitions
from formica.engine.walk import (
    ERR_TASK_CANCELLED,
    ERR_TASK_TIMED_OUT,
    PREDECIDED_START_EVENTS,
    RUN_ACTIONS,
    Action,
    AttemptResult,
    Clock,
    Decision,
    JobState,
    Transition,
    WaitKind,
    WalkError,
    end_walk,
    record_attempt,
    resume_walk,
    start_walk,
    terminal_decision,
    wait_for_slot,
)
from formica.jobs.errors import DefinitionError
from formica.jobs.limits import OUTPUTS_PER_TASK_MAX
from formica.jobs.models import JobDefinition, RunnerKind, TaskDefinition
from formica.runners.base import TaskContext, TaskOutcome
from formica.runtime.configs import NO_CONFIGS, JobConfigs, resolve_job_configs
from formica.runtime.deps import ContainerRuntimeError, Runtime
from formica.runtime.events import publish_job_state, publish_transition
from formica.runtime.metrics import attempt_ended, job_ended
from formica.store.blobs import BlobStoreError
from formica.store.configs import ConfigStoreError
from formica.store.logs import TaskLogs, instance_live_prefix, live_prefix
from formica.store.requests import (
    ArtifactItem,
    ChildItem,
    JobRequestItem,
    RequestNotFoundError,
    RequestStoreError,
    StepCommit,
    StepConflictError,
)
from formica.store.schema import instance_artifact_dir, log_key
from formica.store.usage import current_meter

logger = logging.getLogger(__name__)

FAN_OUT_ITEMS_OUTPUT = "FanOutItems"
"""A fan_out task's output: how many items it forked."""
FAN_OUT_VAR_OUTPUT = "FanOutVar"
"""A fan_out task's output: its item_var, under which templates read its children's results."""
FAN_OUT_STEP_OUTPUT = "FanOutStep"
"""A task fan-out's output: the step whose instances later templates read the results of."""
FAN_OUT_INDEX_PARAM = "FanOutIndex"
"""The item's position (from 0), in an instance's templates as in a forked child's params."""

ERR_TASK_ATTEMPT_LOST = "ERR_TASK_ATTEMPT_LOST"
ERR_RUNNER_FAILED = "ERR_RUNNER_FAILED"
ERR_INVALID_DEFINITION = "ERR_INVALID_DEFINITION"
ERR_INTERNAL = "ERR_INTERNAL"
ERR_DEFINITION_MISSING = "ERR_DEFINITION_MISSING"
ERR_CONFIGS_UNREADABLE = "ERR_CONFIGS_UNREADABLE"
"""The job's configs (or a secret config's value) could not be read for an attempt."""

DEFAULT_ATTEMPT_TIMEOUT_SECONDS = 3600.0
"""An attempt's timeout when neither the task nor the job sets one (a Lambda stops at 15 minutes)."""
CANCEL_CHECK_SECONDS = 1.0
LAMBDA_MARGIN_SECONDS = 20.0
"""Time an invocation keeps after its runner's timeout: storing the log and committing the step."""
ARTIFACT_URL_SECONDS = 7 * 24 * 3600
"""How long an ``ArtifactURL_<n>`` answers: SigV4's longest presigned URL (D31)."""
_TIMEOUT_ERRORS = frozenset({"States.Timeout", "States.HeartbeatTimeout"})
CANCELLED_ERROR = "Formica.Cancelled"
"""The error a cancellation sends to a waiting container task (SendTaskFailure)."""

AttemptRunner = Callable[[TaskDefinition, TaskContext, "AttemptScope"], TaskOutcome]


class AttemptNotRenderedError(Exception):
    """An attempt's task could not be rendered: ``error_code`` is ERR_INVALID_DEFINITION (its
    message masked of the request's secrets) or ERR_CONFIGS_UNREADABLE."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class RenderedAttempt:
    """One attempt rendered and ready for its runner (``Walker.render_attempt``)."""

    request: JobRequestItem
    """The request as the attempt sees it: a fan-out instance's variables among its params."""
    definition: JobDefinition
    task: TaskDefinition
    """The task as its runner runs it: its own method once (a ``fan_out`` block is the step's)."""
    ctx: TaskContext


class AdvanceEvent(BaseModel):
    """What the state machine passes to Advance (the decision's fields plus an error or result)."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    step: int | None = None
    execution: str | None = None
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    fatal: bool = False


class AttemptScope:
    """What a runner adapter may use besides the task and its context: the runtime, the request;
    ``instance``, the item's index when the attempt is an instance of a task fan-out."""

    def __init__(
        self, runtime: Runtime, request: JobRequestItem, step: int, *, instance: int | None = None
    ) -> None:
        self.runtime = runtime
        self.request = request
        self.step = step
        self.instance = instance


def answer(request_id: str, decision: Decision) -> dict[str, Any]:
    """The flat dict a Lambda returns to the state machine (its Choice reads ``action``)."""
    return {"request_id": request_id, **decision.model_dump(mode="json")}


def error_result(error: dict[str, Any]) -> AttemptResult:
    """An attempt result from a state machine Catch (``{"Error": ..., "Cause": ...}``)."""
    name = str(error.get("Error", "States.TaskFailed"))
    cause = error.get("Cause")
    message = str(cause) if cause is not None else name
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            message = f"{parsed.get('errorType', name)}: {parsed['errorMessage']}"
    if name in _TIMEOUT_ERRORS:
        return AttemptResult(
            error_code=ERR_TASK_TIMED_OUT, error_message=f"{name}: the task did not report in time"
        )
    if name == CANCELLED_ERROR:
        return AttemptResult(error_code=ERR_TASK_CANCELLED, error_message="the job was cancelled")
    return AttemptResult(error_code=ERR_RUNNER_FAILED, error_message=f"{name}: {message}"[:2000])


def callback_result(result: dict[str, Any]) -> AttemptResult:
    """An attempt result from a container callback's output (flat fields)."""
    return AttemptResult(
        exit_code=str(result.get("exit_code", "") or ""),
        error_code=result.get("error_code") or None,
        error_message=result.get("error_message") or None,
    )


def exported_variables(
    params: dict[str, Any],
    job_variables: dict[str, Any],
    outputs: dict[str, dict[str, str]],
    configs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What a SHELL or container task's environment gets from the job (``TaskContext.params``):
    the job's configs (the organisation's, then the job type's), job_variables, then the request's
    params, then earlier tasks' outputs (bare names, then ``<task>_<Name>``), each over the one
    before. Configs, job_variables and outputs whose names are not environment variable names are
    left out; params keep the shell runner's own rule (sanitised)."""
    exported: dict[str, Any] = {name: value for name, value in (configs or {}).items() if is_identifier(name)}
    exported.update({name: value for name, value in job_variables.items() if is_identifier(name)})
    exported.update(params)
    exported.update(environment_variables(outputs))
    return exported


class Walker:
    """One invocation's view of the walk of one request."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        # The last definition ``render`` built, by request: ``context`` exports its job_variables.
        self._rendered: tuple[str, JobDefinition] | None = None
        # The current task's attempt number, by (request, step): ``attempt_number``.
        self._attempt_number: tuple[str, int, int] | None = None
        # The states entered before this invocation that its commit counts (Begin, a Catch's Advance).
        self._entry = StepEntry.DECIDED
        # The request's configs as last resolved: (request id, with secrets, configs).
        self._configs: tuple[str, bool, JobConfigs] | None = None

    # -- reading --------------------------------------------------------------------------------

    def load(self, request_id: str) -> JobRequestItem:
        request = self.rt.requests.get(request_id)
        if request is None:
            raise RequestNotFoundError(request_id)
        return request

    def started_at(self, request: JobRequestItem) -> datetime:
        return datetime.fromisoformat(request.started_at or request.created_at)

    def job_configs(self, request: JobRequestItem, *, with_secrets: bool) -> JobConfigs:
        """The request's configs (``resolve_job_configs``), read once per invocation; secret values
        only ``with_secrets`` (an attempt about to run), else they render as ``****``."""
        cached = self._configs
        if cached is not None and cached[0] == request.request_id and (cached[1] or not with_secrets):
            return cached[2]
        configs = resolve_job_configs(self.rt, request.org, request.job_type, with_secrets=with_secrets)
        self._configs = (request.request_id, with_secrets, configs)
        return configs

    def attempt_configs(self, request: JobRequestItem) -> JobConfigs:
        """The configs resolved with their secrets for ``request`` in this invocation (none if not)."""
        cached = self._configs
        if cached is None or cached[0] != request.request_id or not cached[1]:
            return NO_CONFIGS
        return cached[2]

    def mask_outcome(self, request: JobRequestItem, outcome: TaskOutcome) -> TaskOutcome:
        """The outcome with every form of the request's secrets masked in what is stored or shown:
        log, error message, outputs and warnings (in place; returned for convenience)."""
        masker = self.attempt_configs(request).masker
        if not masker:
            return outcome
        outcome.log = masker.mask(outcome.log)
        outcome.error_message = masker.mask_optional(outcome.error_message)
        outcome.outputs = {name: masker.mask(value) for name, value in outcome.outputs.items()}
        outcome.warnings = [masker.mask(warning) for warning in outcome.warnings]
        return outcome

    def render(
        self,
        request: JobRequestItem,
        *,
        task_type: str,
        task_retry: int,
        now: datetime,
        with_secrets: bool = False,
    ) -> JobDefinition:
        """The definition rendered for one attempt (fresh JobElapsedSecs, Nonce, TaskRetry...), the
        job's configs below its job_variables (secrets as ``****`` unless ``with_secrets``)."""
        # Cold start: yaml and jinja2 load on the first render, not when a handler imports the walk.
        from formica.jobs import load_definition  # noqa: PLC0415
        from formica.jobs.templates import runtime_context  # noqa: PLC0415

        raw = self.rt.raw_yaml(request.org, request.job_type, request.job_version)
        if raw is None:
            raise DefinitionError(
                f"job type {request.job_type!r} version {request.job_version} no longer exists"
            )
        elapsed = max(0, int((now - self.started_at(request)).total_seconds()))
        context = runtime_context(
            job_id=request.request_id,
            job_type=request.job_type,
            org=request.org,
            user_id=request.user_id,
            job_retry=request.walk.job_retry,
            job_elapsed_secs=elapsed,
            task_type=task_type,
            task_retry=task_retry,
            params=request.params,
            outputs={**template_variables(request.walk.outputs), **self.fan_out_results(request)},
            now=now,
            count_requests=self.request_counter(request.org),
        )
        configs = self.job_configs(request, with_secrets=with_secrets)
        definition = load_definition(raw, context, configs=configs.variables)
        self._rendered = (request.request_id, definition)
        return definition

    def fan_out_results(self, request: JobRequestItem) -> dict[str, str]:
        """What a fan_out task's children or instances ended as, for later templates.

        Job fan-out: ``{item_var}_{i}_status``, ``_id`` and ``_error`` per item, from the parent's
        child records. Task fan-out: ``{item_var}_{i}_status``, ``_exit_code``, ``_error`` and each
        of the instance's outputs as ``{item_var}_{i}_{Name}``, from its instance items. One Query
        each, only when a fan_out task has run: a thousand items do not fit the request's outputs.
        """
        fanned = {
            task_type: outputs[FAN_OUT_VAR_OUTPUT]
            for task_type, outputs in request.walk.outputs.items()
            if FAN_OUT_VAR_OUTPUT in outputs and FAN_OUT_STEP_OUTPUT not in outputs
        }
        results: dict[str, str] = {}
        for outputs in request.walk.outputs.values():
            if FAN_OUT_STEP_OUTPUT in outputs and FAN_OUT_VAR_OUTPUT in outputs:
                results.update(self.instance_results(request, outputs))
        if not fanned:
            return results
        latest: dict[tuple[str, int], ChildItem] = {}
        for child in self.rt.requests.list_children(request.request_id):
            if child.fork_task not in fanned or child.index is None:
                continue
            key = (child.fork_task, child.index)
            if key not in latest or child.step > latest[key].step:
                latest[key] = child
        for (task_type, index), child in sorted(latest.items()):
            prefix = f"{fanned[task_type]}_{index}"
            results[f"{prefix}_status"] = str(child.job_state)
            results[f"{prefix}_id"] = child.child_id
            results[f"{prefix}_error"] = child.error_code or ""
        return results

    def instance_results(self, request: JobRequestItem, outputs: dict[str, str]) -> dict[str, str]:
        """One task fan-out's per-instance results (see ``fan_out_results``)."""
        try:
            step = int(outputs[FAN_OUT_STEP_OUTPUT])
        except ValueError:
            return {}
        item_var = outputs[FAN_OUT_VAR_OUTPUT]
        results: dict[str, str] = {}
        for instance in self.rt.requests.list_instances(request.request_id, step):
            prefix = f"{item_var}_{instance.index}"
            for name, value in instance.outputs.items():
                results[f"{prefix}_{name}"] = value
            results[f"{prefix}_status"] = str(instance.state)
            results[f"{prefix}_exit_code"] = instance.exit_code or ""
            results[f"{prefix}_error"] = instance.error_code or ""
        return results

    def request_counter(self, org: str) -> Callable[[str, tuple[str, ...]], int]:
        """Templates' ``CountByJobTypeAndState`` for a request of ``org``: that organisation's own
        requests only (the store's keys start with it)."""
        requests = self.rt.requests

        def count(job_type: str, states: tuple[str, ...]) -> int:
            return requests.count_by_job_type_and_state(org, job_type, states)

        return count

    def render_current(self, request: JobRequestItem, now: datetime) -> JobDefinition:
        current = request.walk.current
        return self.render(
            request,
            task_type=current.task_type if current else "",
            task_retry=current.task_retry if current else 0,
            now=now,
        )

    def clock(self, request: JobRequestItem, definition: JobDefinition, now: datetime) -> Clock:
        return Clock(now, self.started_at(request), definition.timeout)

    # -- answering calls that are not for the current step -----------------------------------------

    def settled(self, request: JobRequestItem, step: int | None) -> dict[str, Any]:
        """The answer to a call whose step was already committed (a replay) or superseded."""
        if request.decision is not None and request.decision_from_step == step:
            # A replay: the decision already taken. Its records are written again in case the
            # first call died between committing the step and writing them.
            if request.outbox is not None and request.outbox.step == request.step:
                self.rt.requests.flush_outbox(request.request_id, request.outbox)
            return answer(request.request_id, request.decision)
        if request.is_final:
            return answer(
                request.request_id,
                terminal_decision(request.job_state).model_copy(update={"step": request.step}),
            )
        logger.warning(
            "superseded call ends its execution", extra={"request_id": request.request_id, "step": step}
        )
        return answer(request.request_id, Decision(action=Action.SUCCEED, step=request.step))

    # -- committing -----------------------------------------------------------------------------

    def commit(
        self,
        request: JobRequestItem,
        transition: Transition,
        *,
        execution_name: str | None = None,
        artifacts: list[ArtifactItem] | None = None,
    ) -> dict[str, Any]:
        """Commit a transition at the request's step; a lost race answers like a replay."""
        try:
            return self.write(request, transition, execution_name=execution_name, artifacts=artifacts)
        except StepConflictError:
            return self.settled(self.load(request.request_id), request.step)

    def write(
        self,
        request: JobRequestItem,
        transition: Transition,
        *,
        execution_name: str | None = None,
        artifacts: list[ArtifactItem] | None = None,
    ) -> dict[str, Any]:
        """Commit a transition at the request's step; ``StepConflictError`` when the step moved."""
        usage = self.step_usage(request, step_transitions(transition.decision, self._entry))
        commit = StepCommit(
            walk=transition.walk,
            decision=transition.decision,
            job_state=transition.job_state,
            error_code=transition.error_code,
            error_message=transition.error_message,
            task_updates=transition.task_updates,
            artifacts=artifacts or [],
            execution_name=execution_name,
            usage=usage,
        )
        try:
            decision = self.rt.requests.commit_step(request.request_id, request.step, commit)
        except StepConflictError:
            self.usage_not_committed(usage)
            raise
        publish_transition(self.rt, request, transition, decision.step)
        if transition.job_state.is_final:
            job_ended(request.job_type, transition.job_state)
            self.finished(request)
        logger.info(
            "walk step committed",
            extra={
                "request_id": request.request_id,
                "step": decision.step,
                "action": str(decision.action),
                "task_type": decision.task_type,
                "job_state": str(transition.job_state),
                "rule": transition.rule,
            },
        )
        return answer(request.request_id, decision)

    def step_usage(self, request: JobRequestItem, transitions: int) -> RequestUsage:
        """What a step's commit adds to the request: its state transitions, and what this invocation
        counted so far (its meter's take, when it runs metered)."""
        usage = RequestUsage(transitions=transitions)
        meter = current_meter()
        if meter is None:
            return usage
        meter.request_id = request.request_id
        return usage.plus(meter.take())

    def usage_not_committed(self, usage: RequestUsage) -> None:
        """The commit lost its step guard: its transitions were someone else's, the time is kept."""
        meter = current_meter()
        if meter is not None:
            meter.give_back(usage.model_copy(update={"transitions": 0}))

    def finished(self, request: JobRequestItem) -> None:
        """The request just ended: admission releases its max_concurrency slot and starts the next."""
        self.rt.request_ended(self.rt, request)

    def fail_job(self, request: JobRequestItem, error_code: str, message: str) -> dict[str, Any]:
        """End the job FAILED now (a definition that no longer renders, an internal error)."""
        transition = end_walk(request.walk, JobState.FAILED, error_code, message[:2000], self.rt.now())
        return self.commit(request, transition)

    # -- Advance --------------------------------------------------------------------------------

    def advance(self, event: AdvanceEvent) -> dict[str, Any]:
        request = self.load(event.request_id)
        if event.fatal:
            return self.fatal(request, event.error or {})
        if request.is_final:
            return self.settled(request, event.step)
        if event.step is None:
            self._entry = StepEntry.BEGIN
            return self.begin(request, event.execution)
        if event.step != request.step:
            return self.settled(request, event.step)
        if event.error is not None:
            self._entry = StepEntry.CATCH
        result = self.result_for(request, event)
        if event.error is not None and str(event.error.get("Error", "")) in _TIMEOUT_ERRORS:
            self.stop_overdue_container(request)
        return self.record(request, result, via_catch=event.error is not None)

    def stop_overdue_container(self, request: JobRequestItem) -> None:
        """Launch timed out (deadline + grace) without a report: stop that step's ECS task / EKS Job
        now rather than at the reconciler's next sweep (it bills while it runs). Its run is settled
        ERR_TASK_TIMED_OUT without answering the token (the state already gave up on it). The local
        runner needs nothing: it kills its own process at the deadline."""
        decision = request.decision
        if decision is None or decision.action != Action.RUN_CONTAINER:
            return
        if self.rt.settings.container_runtime != "ecs":
            return
        try:
            self.rt.containers.stop_overdue(request.request_id, request.step)
        except ContainerRuntimeError as exc:
            # The reconciler stops it at its next sweep (the run is past its deadline).
            logger.warning(
                "overdue container not stopped", extra={"request_id": request.request_id, "error": str(exc)}
            )

    def result_for(self, request: JobRequestItem, event: AdvanceEvent) -> AttemptResult:
        if request.attempt is not None and request.attempt.step == request.step:
            # The runner recorded it before anything else happened.
            recorded = request.attempt.result
            if recorded.log_key is None and request.attempt.log_key is not None:
                recorded = recorded.model_copy(update={"log_key": request.attempt.log_key})
            return recorded
        if event.error is not None:
            return error_result(event.error)
        if event.result is not None:
            return callback_result(event.result)
        return AttemptResult(error_code=ERR_TASK_ATTEMPT_LOST, error_message="the attempt reported no result")

    def record(
        self,
        request: JobRequestItem,
        result: AttemptResult,
        *,
        via_catch: bool = False,
        definition: JobDefinition | None = None,
        artifacts: list[ArtifactItem] | None = None,
        log_text: str | None = None,
    ) -> dict[str, Any]:
        decision = request.decision
        if decision is None or decision.action not in RUN_ACTIONS or request.walk.current is None:
            raise WalkError(f"request {request.request_id} is at step {request.step} with no task running")
        now = self.rt.now()
        try:
            rendered = definition or self.render_current(request, now)
        except DefinitionError as exc:
            return self.fail_job(request, ERR_INVALID_DEFINITION, str(exc))
        clock = self.clock(request, rendered, now)
        transition = record_attempt(rendered, request.walk, result, clock, via_catch=via_catch)
        if self.needs_slot(request, result, transition):
            # The wait ended by its own timeout, and its slot was given back when it began.
            paused = request.job_state == JobState.PAUSED
            transition = wait_for_slot(request.walk, result, clock, paused=paused)
        self.explain_failure(request, transition, result, log_text)
        return self.commit(request, transition, artifacts=artifacts)

    def needs_slot(self, request: JobRequestItem, result: AttemptResult, transition: Transition) -> bool:
        """A wait (an approval, a pause) ended by its timeout goes on only with a slot again: False
        when it may go on (a slot taken, none needed), True when it must wait for one."""
        decision, current = request.decision, request.walk.current
        if (
            self.rt.take_slot is None
            or decision is None
            or decision.action not in (Action.AWAIT_APPROVAL, Action.AWAIT_RESUME)
            or current is None
            or current.waiting == WaitKind.SLOT
            or result.error_code != ERR_TASK_TIMED_OUT
            or transition.job_state.is_final
            or transition.decision.action not in RUN_ACTIONS
        ):
            return False
        return not self.rt.take_slot(self.rt, request)

    def explain_failure(
        self, request: JobRequestItem, transition: Transition, result: AttemptResult, log_text: str | None
    ) -> None:
        """When this attempt's failure is the one the job will fail with, add the last lines of the
        task's output and where its whole log is to the job's error message (in place)."""
        current = request.walk.current
        message = transition.walk.error_message
        if current is None or message is None or request.walk.error_message is not None:
            return
        if log_text is None and result.log_key is not None:
            try:
                log_text = self.rt.blobs.get_bytes(result.log_key).decode("utf-8", errors="replace")
            except BlobStoreError as exc:
                logger.warning(
                    "failed task's log not read", extra={"request_id": request.request_id, "error": str(exc)}
                )
        detail = failure_detail(request.request_id, current.task_type, log_text or "")
        transition.walk.error_message = f"{message}\n{detail}"
        if transition.error_message == message:
            transition.error_message = transition.walk.error_message

    def begin(self, request: JobRequestItem, execution: str | None) -> dict[str, Any]:
        """The first call of an execution: start the walk, or resume it after continue-as-new."""
        if execution is not None and request.execution_name not in (None, execution):
            return self.settled(request, None)  # an execution that was superseded
        if execution is not None and request.walk.execution == execution and request.decision is not None:
            return answer(request.request_id, request.decision)  # a replay of this execution's start
        now = self.rt.now()
        if request.decision is None:
            try:
                definition = self.render(request, task_type="", task_retry=0, now=now)
            except DefinitionError as exc:
                return self.fail_job(request, ERR_INVALID_DEFINITION, str(exc))
            transition = _still_started(
                start_walk(definition, self.clock(request, definition, now), previous=request.walk)
            )
        elif request.decision.action == Action.CONTINUE:
            transition = resume_walk(request.walk)
        else:
            return answer(request.request_id, request.decision)
        transition.walk.execution = execution
        return self.commit(request, transition, execution_name=execution)

    def first_decision(self, request: JobRequestItem, execution: str) -> dict[str, Any] | None:
        """The first decision of execution ``execution``, taken before it starts (D13).

        What Advance's start (``begin``) would decide, committed the same way, so the starter can
        pass it as the execution's input and the execution begins at its Choice. ``request`` is
        the request as admitted (STARTED and named ``execution``, no decision yet) or as continued
        (its decision CONTINUE). A decision already taken for ``execution`` is answered again.
        Returns None when the execution should decide for itself (its Begin state reads the
        request afresh): the definition does not render (Begin fails the job with the message),
        or the step moved under us.
        """
        if request.is_final:
            return None
        if request.walk.execution == execution and request.decision is not None:
            if request.decision.action == Action.CONTINUE:
                return None
            return answer(request.request_id, request.decision)
        now = self.rt.now()
        if request.decision is None:
            try:
                definition = self.render(request, task_type="", task_retry=0, now=now)
            except DefinitionError:
                return None
            clock = self.clock(request, definition, now)
            transition = _still_started(
                start_walk(definition, clock, start_events=PREDECIDED_START_EVENTS, previous=request.walk)
            )
        elif request.decision.action == Action.CONTINUE and request.walk.deferred is not None:
            transition = resume_walk(request.walk, start_events=PREDECIDED_START_EVENTS)
        else:
            return None
        transition.walk.execution = execution
        try:
            return self.write(request, transition, execution_name=execution)
        except StepConflictError:
            return None

    def fatal(self, request: JobRequestItem, error: dict[str, Any]) -> dict[str, Any]:
        """Advance itself failed: mark the request FAILED so it never stays EXECUTING."""
        if request.is_final:
            return answer(request.request_id, terminal_decision(request.job_state))
        message = error_result(error).error_message or "the walk failed unexpectedly"
        for _ in range(5):
            transition = end_walk(request.walk, JobState.FAILED, ERR_INTERNAL, message, self.rt.now())
            usage = self.step_usage(request, step_transitions(transition.decision, StepEntry.FATAL))
            try:
                decision = self.rt.requests.commit_step(
                    request.request_id,
                    request.step,
                    StepCommit(
                        walk=transition.walk,
                        decision=transition.decision,
                        job_state=JobState.FAILED,
                        error_code=ERR_INTERNAL,
                        error_message=message,
                        task_updates=transition.task_updates,
                        usage=usage,
                    ),
                )
            except StepConflictError:
                self.usage_not_committed(usage)
                request = self.load(request.request_id)
                if request.is_final:
                    return answer(request.request_id, terminal_decision(request.job_state))
                continue
            logger.error(
                "walk failed unexpectedly", extra={"request_id": request.request_id, "error": message}
            )
            failed = request.model_copy(update={"error_code": ERR_INTERNAL, "step": decision.step})
            publish_job_state(self.rt, failed, JobState.FAILED)
            job_ended(request.job_type, JobState.FAILED)
            self.finished(request)
            return answer(request.request_id, decision)
        raise WalkError(f"could not mark request {request.request_id} failed")

    # -- task attempts --------------------------------------------------------------------------

    def run_attempt(
        self,
        request_id: str,
        step: int,
        runner: RunnerKind,
        run: AttemptRunner,
        time_left_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Claim, run and record one attempt of the current task, then advance the walk.

        The claim is the first write and returns the request as claimed, so a fresh attempt costs
        one conditional update before the runner and one after it (plus its records). A Lambda
        that dies between its runner and its commit loses the attempt's result: the retried call
        finds the attempt claimed and records ERR_TASK_ATTEMPT_LOST rather than run it twice.
        """
        request = self.rt.requests.claim_attempt(request_id, step)
        if request is None:
            return self.after_lost_claim(request_id, step)
        current = request.walk.current
        decision = request.decision
        if current is None or decision is None or decision.action not in RUN_ACTIONS:
            raise WalkError(f"request {request_id} has no task to run at step {step}")
        if current.runner != runner:
            raise WalkError(f"task {current.task_type} runs on {current.runner}, not {runner}")
        started = self.rt.now()
        try:
            rendered = self.render_attempt(
                request, step, now=started, time_left_seconds=time_left_seconds, live_log=True
            )
        except AttemptNotRenderedError as exc:
            if exc.error_code == ERR_INVALID_DEFINITION:
                return self.fail_job(request, ERR_INVALID_DEFINITION, exc.message)
            logger.warning("configs not read", extra={"request_id": request_id, "error": exc.message})
            return self.record(request, AttemptResult(error_code=exc.error_code, error_message=exc.message))
        definition, task, ctx = rendered.definition, rendered.task, rendered.ctx
        self.mark_executing(request)
        outcome = self.mask_outcome(request, run(task, ctx, AttemptScope(self.rt, request, step)))
        attempt_ended(
            str(task.method),
            seconds=(self.rt.now() - started).total_seconds(),
            succeeded=attempt_succeeded(task, outcome),
        )
        artifacts, result = self.kept_result(request, step, current.task_type, outcome)
        return self.record(request, result, definition=definition, artifacts=artifacts, log_text=outcome.log)

    def render_attempt(
        self,
        request: JobRequestItem,
        step: int,
        *,
        now: datetime,
        time_left_seconds: float | None = None,
        variables: Mapping[str, str] | None = None,
        live_log: bool = False,
        instance: int | None = None,
    ) -> RenderedAttempt:
        """Render the current task for one attempt that runs now: its templates with the request's
        params (and ``variables``: a fan-out instance's item under its ``item_var`` and its
        ``FanOutIndex``), the job's configs with their secrets, earlier tasks' outputs; its context
        (``context``) with the secrets a runner masks; with ``live_log``, its output streamed to the
        attempt's live log while it runs (``live_log_sink``: an ``instance``'s own); an
        ``instance``'s artifacts under its own ``instance-{index}/``.

        Raises
        ------
        AttemptNotRenderedError
            The definition does not render (ERR_INVALID_DEFINITION, its message masked) or the
            configs cannot be read (ERR_CONFIGS_UNREADABLE).
        """
        current = request.walk.current
        assert current is not None  # noqa: S101 - a task attempt is decided
        if variables:
            request = request.model_copy(update={"params": {**request.params, **variables}})
        try:
            definition = self.render(
                request,
                task_type=current.task_type,
                task_retry=current.task_retry,
                now=now,
                with_secrets=True,
            )
        except DefinitionError as exc:
            message = self.attempt_configs(request).masker.mask(str(exc))
            raise AttemptNotRenderedError(ERR_INVALID_DEFINITION, message) from exc
        except ConfigStoreError as exc:
            raise AttemptNotRenderedError(ERR_CONFIGS_UNREADABLE, str(exc)[:2000]) from exc
        task = definition.task(current.task_type)
        if task.fan_out is not None:
            task = task.model_copy(update={"fan_out": None})
        ctx = replace(
            self.context(request, step, now, time_left_seconds),
            live_log=self.live_log_sink(request, instance=instance) if live_log else None,
            log_flush_seconds=self.rt.settings.log_flush_seconds,
            secrets=self.attempt_configs(request).secrets,
            artifact_dir=instance_artifact_dir(instance) if instance is not None else "",
        )
        return RenderedAttempt(request=request, definition=definition, task=task, ctx=ctx)

    def after_lost_claim(self, request_id: str, step: int) -> dict[str, Any]:
        """Someone claimed this attempt already: never run it again; finish what they left."""
        request = self.load(request_id)
        if request.is_final or request.step != step:
            return self.settled(request, step)
        if request.attempt is not None and request.attempt.step == step:
            return self.record(request, request.attempt.result)
        lost = AttemptResult(
            error_code=ERR_TASK_ATTEMPT_LOST,
            error_message="the attempt was started before and its result was lost; it is not run twice",
        )
        return self.record(request, lost)

    def context(
        self, request: JobRequestItem, step: int, now: datetime, time_left_seconds: float | None = None
    ) -> TaskContext:
        """The attempt's context; its timeout is the task's (or job's) deadline, and never more than
        the invoking Lambda has left minus LAMBDA_MARGIN_SECONDS, so the runner stops the work and
        reports ERR_TASK_TIMED_OUT before Lambda kills the invocation."""
        current = request.walk.current
        assert current is not None  # noqa: S101 - checked by the caller
        timeout = DEFAULT_ATTEMPT_TIMEOUT_SECONDS
        if current.deadline is not None:
            timeout = (datetime.fromisoformat(current.deadline) - now).total_seconds()
        if time_left_seconds is not None:
            timeout = min(timeout, time_left_seconds - LAMBDA_MARGIN_SECONDS)
        timeout = max(0.5, timeout)
        return TaskContext(
            org=request.org,
            request_id=request.request_id,
            job_type=request.job_type,
            task_type=current.task_type,
            attempt=step,
            task_attempt=self.attempt_number(request),
            timeout_seconds=timeout,
            params=exported_variables(
                request.params,
                self._job_variables(request),
                request.walk.outputs,
                self.attempt_configs(request).variables,
            ),
            is_cancelled=self.cancel_probe(request.request_id),
        )

    def _job_variables(self, request: JobRequestItem) -> dict[str, Any]:
        """The job_variables of the definition last rendered for ``request`` (none if not rendered)."""
        if self._rendered is None or self._rendered[0] != request.request_id:
            return {}
        return dict(self._rendered[1].job_variables)

    def cancel_probe(self, request_id: str) -> Callable[[], bool]:
        """``is_cancelled`` for runners: reads the request at most once a second."""
        last = [time.monotonic(), False]

        def is_cancelled() -> bool:
            if last[1]:
                return True
            if time.monotonic() - float(last[0]) >= CANCEL_CHECK_SECONDS:
                last[0] = time.monotonic()
                try:
                    last[1] = self.rt.requests.is_cancelled(request_id)
                except RequestStoreError as exc:
                    # A runner must keep control of its process: an unreadable store is "not yet".
                    logger.warning(
                        "cancellation check failed", extra={"request_id": request_id, "error": str(exc)}
                    )
            return bool(last[1])

        return is_cancelled

    def attempt_number(self, request: JobRequestItem) -> int:
        """The current task's own number for the attempt at the request's step: 1 for its first, as
        the API's ``attempts`` counts them; a task the walk entered before in this request (a job
        retry or restart, a route looping back) continues its count, so every attempt's log has
        its own key. The task records are read only when the task may have been entered before."""
        current = request.walk.current
        if current is None:
            return request.step
        cached = self._attempt_number
        if cached is not None and cached[:2] == (request.request_id, request.step):
            return cached[2]
        walk = request.walk
        earlier = 0
        if walk.job_retry or walk.restarts or walk.ran.count(current.task_type) > 1:
            earlier = sum(
                task.attempts
                for task in self.rt.requests.list_tasks(request.request_id)
                if task.task_type == current.task_type and task.seq != current.seq
            )
        number = earlier + current.attempts + 1
        self._attempt_number = (request.request_id, request.step, number)
        return number

    def mark_executing(self, request: JobRequestItem) -> None:
        """The task's record turns EXECUTING as its first attempt starts (it was READY since the walk
        entered it; its retries and polls are recorded EXECUTING already). One conditional write per
        task execution, from READY only: a record already ended or cancelled is left alone."""
        current = request.walk.current
        if current is None or current.attempts or current.polls or current.task_retry:
            return
        try:
            self.rt.requests.mark_task_executing(request.request_id, current.seq)
        except RequestStoreError as exc:
            logger.warning(
                "task not marked executing", extra={"request_id": request.request_id, "error": str(exc)}
            )

    def live_log_sink(
        self, request: JobRequestItem, *, instance: int | None = None
    ) -> Callable[[bytes], None]:
        """Where the runner sends its output while the attempt runs: chunk objects read by the logs
        route (``store.logs``), masked as the whole log is; an ``instance`` of a task fan-out at the
        request's step, under that instance's own prefix. A chunk not stored is a warning: the
        whole log is still stored when the attempt ends."""
        current = request.walk.current
        assert current is not None  # noqa: S101 - a task attempt is running
        logs = TaskLogs(self.rt.blobs)
        if instance is not None:
            prefix = instance_live_prefix(
                request.org, request.request_id, current.task_type, request.step, instance
            )
        else:
            prefix = live_prefix(
                request.org, request.request_id, current.task_type, self.attempt_number(request)
            )
        written: list[int | None] = [0]

        def sink(data: bytes) -> None:
            start = written[0]
            if start is None:
                return  # a chunk was lost: readers wait for the whole log rather than skip bytes
            text = data.decode("utf-8", errors="replace")
            masked = self.attempt_configs(request).masker.mask(text).encode("utf-8")
            try:
                logs.write_chunk(prefix, start, masked)
            except BlobStoreError as exc:
                logger.warning(
                    "live log chunk not stored", extra={"request_id": request.request_id, "error": str(exc)}
                )
                written[0] = None
                return
            written[0] = start + len(masked)

        return sink

    def keep_outputs(
        self, request: JobRequestItem, step: int, task_type: str, outcome: TaskOutcome
    ) -> tuple[list[ArtifactItem], dict[str, Any]]:
        """Upload the attempt's log; the log and the uploaded artifacts become artifact items, and
        the artifacts' download URLs become the outcome's ``ArtifactURL_<n>`` outputs (in place)."""
        number = self.attempt_number(request)
        key = log_key(request.org, request.request_id, task_type, number)
        data = outcome.log.encode("utf-8", errors="replace")
        self.rt.blobs.put_bytes(key, data, "text/plain; charset=utf-8")
        TaskLogs(self.rt.blobs).discard_live(live_prefix(request.org, request.request_id, task_type, number))
        created = self.rt.now_iso()
        items = [
            ArtifactItem(
                request_id=request.request_id,
                artifact_id=f"log-{step:06d}",
                org=request.org,
                task_type=task_type,
                name=f"logs/attempt-{number}.log",
                key=key,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                content_type="text/plain; charset=utf-8",
                kind="log",
                created_at=created,
            )
        ]
        for artifact in outcome.artifacts:
            items.append(
                ArtifactItem(
                    request_id=request.request_id,
                    artifact_id=uuid.uuid4().hex,
                    org=request.org,
                    task_type=task_type,
                    name=artifact.name,
                    key=artifact.key,
                    size=artifact.size,
                    sha256=artifact.sha256,
                    content_type=artifact.content_type,
                    kind="artifact",
                    created_at=created,
                )
            )
        warnings = list(outcome.warnings)
        if outcome.artifacts:
            published = artifact_url_outputs(
                outcome.outputs,
                [self.artifact_url(artifact.key) for artifact in outcome.artifacts[:OUTPUTS_PER_TASK_MAX]],
                len(outcome.artifacts),
            )
            outcome.outputs = published.outputs
            warnings.extend(published.notes)
        return items, {"log_key": key, "warnings": warnings}

    def kept_result(
        self, request: JobRequestItem, step: int, task_type: str, outcome: TaskOutcome
    ) -> tuple[list[ArtifactItem], AttemptResult]:
        """The attempt's outputs kept (``keep_outputs``) and its result to record: the artifact items
        to write with it, and the result naming its stored log."""
        artifacts, fields = self.keep_outputs(request, step, task_type, outcome)
        result = AttemptResult(
            exit_code=outcome.exit_code,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
            outputs=outcome.outputs,
            log_key=fields["log_key"],
            warnings=fields["warnings"],
        )
        return artifacts, result

    def keep_reported_attempt(
        self, request: JobRequestItem, step: int, task_type: str, outcome: TaskOutcome
    ) -> AttemptResult:
        """An attempt that ran outside ``run_attempt`` (a local container, a worker, a messaging
        reply) before it is completed: its outputs kept and its artifact items written now (its
        completion commits no artifacts); returns the result to complete it with."""
        artifacts, result = self.kept_result(request, step, task_type, outcome)
        for artifact in artifacts:
            self.rt.requests.put_artifact(artifact)
        return result

    def artifact_url(self, key: str) -> str:
        """A download URL of one artifact that needs no token (``ArtifactURL_<n>``): a presigned GET
        that lives ``ARTIFACT_URL_SECONDS``, signed here on the trusted side (docs/decisions.md, D31)."""
        return self.rt.blobs.presign_get(key, ARTIFACT_URL_SECONDS)


FAILURE_TAIL_LINES = 5
"""How many of a failed task's last output lines the job's error message quotes."""
FAILURE_TAIL_LINE_CHARS = 200


def failure_detail(request_id: str, task_type: str, log_text: str) -> str:
    """The last lines of a failed task's output (bounded) and the command that prints all of it."""
    lines = [line.rstrip()[:FAILURE_TAIL_LINE_CHARS] for line in log_text.splitlines() if line.strip()]
    tail = lines[-FAILURE_TAIL_LINES:]
    shown = "".join(f"\n  {line}" for line in tail)
    quoted = f"last lines of its output:{shown}\n" if tail else ""
    return f"{quoted}whole log: formica logs {request_id} {task_type}"


def _still_started(transition: Transition) -> Transition:
    """A walk's first decision leaves the request STARTED; claiming its first attempt makes it
    EXECUTING (``RequestRepository.claim_attempt``)."""
    if transition.job_state == JobState.EXECUTING:
        transition.job_state = JobState.STARTED
    return transition


def attempt_succeeded(task: TaskDefinition, outcome: TaskOutcome) -> bool:
    """Whether routing will call this outcome a success (artifacts' ``when`` depends on it)."""
    route = route_exit_code(task, AttemptOutcome(outcome.exit_code, outcome.error_code), RetryBudget())
    return route.task_state == TaskState.COMPLETED


def advance(event: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """The Advance Lambda's service: record the reported attempt (if any) and decide what is next.

    Parameters
    ----------
    event:
        ``{"request_id", "execution"}`` at an execution's start; the last decision's fields plus
        ``error`` (from a Catch) or ``result`` (from a container callback) after an attempt;
        ``{"request_id", "fatal": true, "error"}`` when Advance itself failed.
    runtime:
        Collaborators (``formica.runtime.get_runtime()`` in a Lambda).

    Returns
    -------
    dict
        The flat decision: ``request_id``, ``step``, ``action``, ``task_type``, ``wait_seconds``,
        ``timeout_seconds``.
    """
    return Walker(runtime).advance(AdvanceEvent.model_validate(event))


def run_task_attempt(
    request_id: str,
    step: int,
    runner: RunnerKind,
    run: AttemptRunner,
    runtime: Runtime,
    *,
    time_left_seconds: float | None = None,
) -> dict[str, Any]:
    """Run the attempt decided at ``step`` once (claimed), record it, and return the next decision.

    ``time_left_seconds`` is what the invoking Lambda has left (its context's remaining time): the
    attempt's timeout never exceeds it, less a margin to record the result.
    """
    return Walker(runtime).run_attempt(request_id, step, runner, run, time_left_seconds)
