"""Task fan-out: a ``fan_out`` without ``fork_job_type`` runs its SHELL or HTTP task once per item
inside the same request (docs/decisions.md, D42).

The task's step waits on Launch's task token, as job fan-out does. ``task_fan_out_step`` is the
look: Launch takes the first, and every instance takes one when it ends. A look reads the
instances of the step (one Query), starts the lowest waiting items while their index stays below
(instances ended + ``max_parallel``), and answers the token when every instance has ended (with
``fail_fast``, at the first failure). Starting an instance is a conditional put of its item
(``INST#{step}#{index}``): only the look whose put wins invokes the task's own function,
asynchronously, with ``{request_id, step, index}``.

``run_task_instance`` is that invocation (``http_task`` / ``shell_task``): it claims the instance
(STARTING -> RUNNING; a replayed invocation finds it claimed and runs nothing), renders the task
with the item under ``item_var`` (and ``FanOutIndex``) by ``Walker.render_attempt``, runs one
attempt whose output streams to the instance's own live log while it runs, keeps its whole log
under its index, ends the instance from RUNNING, and looks. An instance never writes the request item: the
step is committed once, by ``complete_container_attempt`` from the look that sees the end (a
conditional write on the step number that one concurrent look wins).

Why ``max_parallel`` holds without a counter: a look starts index ``i`` only if ``i`` < (ended it
saw + ``max_parallel``), ended instances only grow, and indices start lowest first, so started -
ended never passes ``max_parallel`` whatever looks interleave.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from formica.engine.routing import is_success
from formica.engine.walk import ERR_TASK_CANCELLED, AttemptResult
from formica.jobs.errors import DefinitionError
from formica.jobs.fanout import FanOutSourceError, fan_out_items
from formica.jobs.limits import shown
from formica.jobs.models import RunnerKind, TaskDefinition
from formica.runners.base import TaskOutcome
from formica.runtime.completion import complete_container_attempt
from formica.runtime.deps import Runtime
from formica.runtime.walker import (
    ERR_INVALID_DEFINITION,
    ERR_RUNNER_FAILED,
    FAN_OUT_INDEX_PARAM,
    FAN_OUT_ITEMS_OUTPUT,
    FAN_OUT_STEP_OUTPUT,
    FAN_OUT_VAR_OUTPUT,
    AttemptNotRenderedError,
    AttemptRunner,
    AttemptScope,
    Walker,
)
from formica.store.blobs import BlobStoreError
from formica.store.functions import FunctionInvokeError
from formica.store.logs import TaskLogs, instance_live_prefix
from formica.store.requests import (
    ArtifactItem,
    InstanceEnd,
    InstanceItem,
    InstanceState,
    JobRequestItem,
    RequestStoreError,
    iso,
)
from formica.store.schema import instance_log_key, log_key

logger = logging.getLogger(__name__)

ERR_FAN_OUT = "ERR_FAN_OUT"
"""A fan_out's source did not render to a JSON array of at most FAN_OUT_MAX_ITEMS items, or an
instance could not be started."""
INSTANCE_CHECK_SECONDS = 1.0
"""How often a running instance reads the request to learn that it should stop."""
SUMMARY_LINES = 1000
LOST_AFTER_SECONDS = 16 * 60.0
"""An instance RUNNING this long has lost its invocation: a Lambda runs 15 minutes at most, and an
instance's runner stops before its invocation's time is up (``Walker.context``)."""
ERR_INSTANCE_LOST = "ERR_TASK_ATTEMPT_LOST"

InstanceFunctions = dict[RunnerKind, str | None]


def instance_functions(runtime: Runtime, *, own: tuple[RunnerKind, str] | None = None) -> InstanceFunctions:
    """The function that runs an instance of each kind: the settings' (Launch), or the calling task
    function itself for its own kind (its handler passes its name: a function cannot name itself
    in its own configuration)."""
    functions: InstanceFunctions = {
        RunnerKind.HTTP: runtime.settings.http_task_function,
        RunnerKind.SHELL: runtime.settings.shell_task_function,
    }
    if own is not None:
        functions[own[0]] = own[1]
    return functions


def item_text(item: Any) -> str:
    """An item as templates see it: a string as it is, any other JSON value as its JSON text."""
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))


def instance_succeeded(exit_code: str | None, error_code: str | None, runner: RunnerKind) -> bool:
    """An instance succeeded when its exit code is its method's success (0; an HTTP 2xx)."""
    return error_code is None and exit_code is not None and is_success(exit_code, runner)


# -- the look ---------------------------------------------------------------------------------------


def task_fan_out_step(
    runtime: Runtime,
    request: JobRequestItem,
    step: int,
    task: TaskDefinition,
    *,
    functions: InstanceFunctions | None = None,
    keeps_log: bool = False,
) -> bool:
    """One look at a task fan-out at ``step``: start the next instances, or answer the token once
    every instance has ended (the first failure with ``fail_fast``). Returns True when this look
    answered it. ``keeps_log``: the answer stores the task's log, a line per instance (an instance's
    look; Launch's first look may write no log, and it answers only an empty source)."""
    spec = task.fan_out
    assert spec is not None  # noqa: S101 - the callers check it
    try:
        items = fan_out_items(spec.source)
    except FanOutSourceError as exc:
        failed = AttemptResult(error_code=ERR_FAN_OUT, error_message=f"task {task.task_type}: {exc}")
        return complete_container_attempt(runtime, request.request_id, step, failed)
    outputs = {
        FAN_OUT_ITEMS_OUTPUT: str(len(items)),
        FAN_OUT_VAR_OUTPUT: spec.item_var,
        FAN_OUT_STEP_OUTPUT: str(step),
    }
    instances = runtime.requests.list_instances(request.request_id, step)
    by_index = {instance.index: instance for instance in instances}
    ended = [instance for instance in instances if instance.is_final]
    failures = [instance for instance in ended if not instance.succeeded]
    if failures and spec.fail_fast:
        return _answer(
            runtime, request, step, task, instances=instances, outputs=outputs, keeps_log=keeps_log
        )
    started = _start_instances(
        runtime,
        request,
        step,
        task,
        items=items,
        by_index=by_index,
        bound=len(ended) + spec.max_parallel,
        functions=functions or instance_functions(runtime),
    )
    if started is None:  # an instance could not be started: it ended FAILED, look again
        return task_fan_out_step(runtime, request, step, task, functions=functions, keeps_log=keeps_log)
    if started or len(by_index) < len(items) or len(ended) < len(by_index):
        return False
    return _answer(runtime, request, step, task, instances=instances, outputs=outputs, keeps_log=keeps_log)


def _start_instances(
    runtime: Runtime,
    request: JobRequestItem,
    step: int,
    task: TaskDefinition,
    *,
    items: list[Any],
    by_index: dict[int, InstanceItem],
    bound: int,
    functions: InstanceFunctions,
) -> int | None:
    """Create and invoke the waiting instances whose index is below ``bound``, lowest first; how many
    this look started (None when one could not be invoked: it is ended FAILED)."""
    spec = task.fan_out
    assert spec is not None  # noqa: S101 - the caller's condition
    runner = task.method_runner
    started = 0
    for index in range(min(bound, len(items))):
        if index in by_index:
            continue
        instance = InstanceItem(
            request_id=request.request_id,
            step=step,
            index=index,
            task_type=task.task_type,
            item=item_text(items[index]),
            item_var=spec.item_var,
            created_at=runtime.now_iso(),
        )
        if not runtime.requests.put_instance(instance):
            continue  # another look started it
        function = functions.get(runner)
        try:
            if runtime.functions is None or not function:
                setting = "http_task_function" if runner == RunnerKind.HTTP else "shell_task_function"
                raise FunctionInvokeError(f"no function runs {runner} instances (setting {setting})")
            runtime.functions.invoke_async(
                function, {"request_id": request.request_id, "step": step, "index": index}
            )
        except FunctionInvokeError as exc:
            end = InstanceEnd(
                state=InstanceState.FAILED,
                error_code=ERR_FAN_OUT,
                error_message=f"instance {index} could not be started: {exc}",
                ended_at=runtime.now_iso(),
            )
            runtime.requests.end_instance(request.request_id, step, index, end)
            return None
        started += 1
    if started:
        logger.info(
            "task fan-out instances started",
            extra={"request_id": request.request_id, "step": step, "started": started},
        )
    return started


def _answer(
    runtime: Runtime,
    request: JobRequestItem,
    step: int,
    task: TaskDefinition,
    *,
    instances: list[InstanceItem],
    outputs: dict[str, str],
    keeps_log: bool,
) -> bool:
    """Answer the token: 0 when every instance succeeded, else the first failure's exit code (or
    error code), routed by the task's on_exit_code / on_failed as any attempt's."""
    failures = sorted(
        (instance for instance in instances if instance.is_final and not instance.succeeded),
        key=lambda instance: instance.index,
    )
    log = _keep_summary(runtime, request, step, task, _summary(task, instances)) if keeps_log else None
    if not failures:
        done = AttemptResult(exit_code="0", outputs=outputs, log_key=log)
        return complete_container_attempt(runtime, request.request_id, step, done)
    first = failures[0]
    said = first.error_message or (f"exit code {first.exit_code}" if first.exit_code else first.error_code)
    message = (
        f"task {task.task_type}: item {first.index} ({shown(first.item)}) ended {first.state}: "
        f"{said or 'no result'}"
    )
    failed = AttemptResult(
        exit_code=first.exit_code or "",
        error_code=first.error_code or (None if first.exit_code else ERR_FAN_OUT),
        error_message=message[:2000],
        outputs=outputs,
        log_key=log,
    )
    return complete_container_attempt(runtime, request.request_id, step, failed)


def _summary(task: TaskDefinition, instances: list[InstanceItem]) -> str:
    lines = [f"[task fan-out of {task.task_type}: {len(instances)} instance(s) started]"]
    for instance in instances[:SUMMARY_LINES]:
        result = instance.exit_code if instance.exit_code is not None else instance.error_code or "-"
        lines.append(f"[item {instance.index} {shown(instance.item)}: {instance.state} ({result})]")
    lines.append(f"[each instance's log: formica logs <request> {task.task_type} --instance N]")
    return "\n".join(lines) + "\n"


def _keep_summary(
    runtime: Runtime, request: JobRequestItem, step: int, task: TaskDefinition, summary: str
) -> str | None:
    """The fan-out task's own log: one line per instance (their logs are kept under their index)."""
    walker = Walker(runtime)
    number = walker.attempt_number(request)
    key = log_key(request.org, request.request_id, task.task_type, number)
    data = summary.encode("utf-8")
    try:
        runtime.blobs.put_bytes(key, data, "text/plain; charset=utf-8")
        runtime.requests.put_artifact(
            ArtifactItem(
                request_id=request.request_id,
                artifact_id=f"log-{step:06d}",
                org=request.org,
                task_type=task.task_type,
                name=f"logs/attempt-{number}.log",
                key=key,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                content_type="text/plain; charset=utf-8",
                kind="log",
                created_at=runtime.now_iso(),
            )
        )
    except (BlobStoreError, RequestStoreError) as exc:
        logger.warning(
            "fan-out summary not stored", extra={"request_id": request.request_id, "error": str(exc)}
        )
        return None
    return key


# -- an instance ------------------------------------------------------------------------------------


class InstanceEvent(BaseModel):
    """What a task function receives to run one instance of a task fan-out."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    step: int
    index: int


def run_task_instance(
    event: InstanceEvent,
    runtime: Runtime,
    runner: RunnerKind,
    run: AttemptRunner,
    *,
    time_left_seconds: float | None = None,
    function_name: str | None = None,
) -> dict[str, Any]:
    """Run one instance (claimed, so never twice), end it, and look at the fan-out."""
    claimed = runtime.requests.claim_instance(event.request_id, event.step, event.index, runtime.now_iso())
    answer: dict[str, Any] = {"request_id": event.request_id, "step": event.step, "index": event.index}
    if claimed is None:
        logger.info("instance claimed before: not run again", extra=answer)
        return {**answer, "ran": False}
    walker = Walker(runtime)
    request = walker.load(event.request_id)
    current = request.walk.current
    if request.is_final or request.step != event.step or current is None:
        _end(runtime, claimed, InstanceEnd(state=InstanceState.CANCELLED, ended_at=runtime.now_iso()))
        return {**answer, "ran": False, "state": str(InstanceState.CANCELLED)}
    variables = {claimed.item_var: claimed.item, FAN_OUT_INDEX_PARAM: str(event.index)}
    outcome, method_runner, itemized = _run(
        walker, request, claimed, runner, run, variables=variables, time_left_seconds=time_left_seconds
    )
    end = _keep(runtime, itemized, claimed, outcome, method_runner)
    _end(runtime, claimed, end)
    own = (runner, function_name) if function_name else None
    _look_after(runtime, walker, event, functions=instance_functions(runtime, own=own))
    return {**answer, "ran": True, "state": str(end.state)}


def _run(
    walker: Walker,
    request: JobRequestItem,
    instance: InstanceItem,
    runner: RunnerKind,
    run: AttemptRunner,
    *,
    variables: dict[str, str],
    time_left_seconds: float | None,
) -> tuple[TaskOutcome, RunnerKind, JobRequestItem]:
    """Run the instance's attempt; its outcome (masked), the method that ran it, and the request
    as the instance saw it (its variables among the params)."""
    runtime = walker.rt
    try:
        rendered = walker.render_attempt(
            request,
            instance.step,
            now=runtime.now(),
            time_left_seconds=time_left_seconds,
            variables=variables,
            live_log=True,
            instance=instance.index,
        )
    except AttemptNotRenderedError as exc:
        return TaskOutcome(error_code=exc.error_code, error_message=exc.message), runner, request
    task, itemized = rendered.task, rendered.request
    if task.runner != runner:
        message = f"task {task.task_type} runs on {task.runner}, not {runner}"
        return TaskOutcome(error_code=ERR_RUNNER_FAILED, error_message=message), runner, itemized
    ctx = replace(rendered.ctx, is_cancelled=_stop_probe(runtime, request.request_id, instance.step))
    try:
        outcome = run(task, ctx, AttemptScope(runtime, itemized, instance.step, instance=instance.index))
    except Exception as exc:  # the instance must end, so the fan-out hears of it
        logger.exception("task fan-out instance failed", extra={"request_id": request.request_id})
        outcome = TaskOutcome(error_code=ERR_RUNNER_FAILED, error_message=f"{type(exc).__name__}: {exc}")
    return walker.mask_outcome(itemized, outcome), task.runner, itemized


def _stop_probe(runtime: Runtime, request_id: str, step: int) -> Callable[[], bool]:
    """``is_cancelled`` for an instance: True once the request was cancelled or its step moved on
    (a ``fail_fast`` answer, a timeout); reads the request at most once a second."""
    last = [time.monotonic(), False]

    def should_stop() -> bool:
        if last[1]:
            return True
        if time.monotonic() - float(last[0]) >= INSTANCE_CHECK_SECONDS:
            last[0] = time.monotonic()
            try:
                request = runtime.requests.get(request_id)
            except RequestStoreError as exc:
                logger.warning(
                    "instance stop check failed", extra={"request_id": request_id, "error": str(exc)}
                )
                return False
            last[1] = request is None or request.is_final or request.step != step
        return bool(last[1])

    return should_stop


def _keep(
    runtime: Runtime,
    request: JobRequestItem,
    instance: InstanceItem,
    outcome: TaskOutcome,
    runner: RunnerKind,
) -> InstanceEnd:
    """Store the instance's log under its index; its end as the instance item records it."""
    key: str | None = instance_log_key(
        request.org, request.request_id, instance.task_type, instance.step, instance.index
    )
    assert key is not None  # noqa: S101 - just built
    try:
        runtime.blobs.put_bytes(
            key, outcome.log.encode("utf-8", errors="replace"), "text/plain; charset=utf-8"
        )
    except BlobStoreError as exc:
        logger.warning("instance log not stored", extra={"request_id": request.request_id, "error": str(exc)})
        key = None
    else:
        TaskLogs(runtime.blobs).discard_live(
            instance_live_prefix(
                request.org, request.request_id, instance.task_type, instance.step, instance.index
            )
        )
    for artifact in outcome.artifacts:
        runtime.requests.put_artifact(
            ArtifactItem(
                request_id=request.request_id,
                artifact_id=hashlib.sha256(
                    f"{instance.step}:{instance.index}:{artifact.key}".encode()
                ).hexdigest()[:32],
                org=request.org,
                task_type=instance.task_type,
                name=artifact.name,
                key=artifact.key,
                size=artifact.size,
                sha256=artifact.sha256,
                content_type=artifact.content_type,
                kind="artifact",
                created_at=runtime.now_iso(),
                instance=instance.index,
            )
        )
    if outcome.error_code == ERR_TASK_CANCELLED:
        state = InstanceState.CANCELLED
    elif instance_succeeded(outcome.exit_code, outcome.error_code, runner):
        state = InstanceState.COMPLETED
    else:
        state = InstanceState.FAILED
    return InstanceEnd(
        state=state,
        exit_code=outcome.exit_code,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        outputs=dict(outcome.outputs),
        log_key=key,
        ended_at=runtime.now_iso(),
    )


def _end(runtime: Runtime, instance: InstanceItem, end: InstanceEnd) -> None:
    if not runtime.requests.end_instance(instance.request_id, instance.step, instance.index, end):
        logger.info(
            "instance ended before", extra={"request_id": instance.request_id, "index": instance.index}
        )


def _look_after(
    runtime: Runtime,
    walker: Walker,
    event: InstanceEvent,
    *,
    functions: InstanceFunctions,
    keeps_log: bool = True,
) -> None:
    """The look an instance's end takes, when the walk still waits at its step."""
    request = walker.load(event.request_id)
    current = request.walk.current
    if request.is_final or request.step != event.step or current is None:
        return
    if request.task_token is None or request.task_token_step != event.step:
        return  # Launch has not recorded its token yet: its own look sees this end
    try:
        definition = walker.render(
            request, task_type=current.task_type, task_retry=current.task_retry, now=runtime.now()
        )
    except DefinitionError as exc:
        failed = AttemptResult(error_code=ERR_INVALID_DEFINITION, error_message=str(exc))
        complete_container_attempt(runtime, request.request_id, event.step, failed)
        return
    task = definition.task(current.task_type)
    task_fan_out_step(runtime, request, event.step, task, functions=functions, keeps_log=keeps_log)


# -- the minute sweep -------------------------------------------------------------------------------


def sweep_instances(runtime: Runtime, *, lost_after_seconds: float = LOST_AFTER_SECONDS) -> int:
    """The minute sweep's repair: an instance still RUNNING ``lost_after_seconds`` after it started
    lost its invocation (it died between its claim and its end: a retry finds it claimed and runs
    nothing). It is ended FAILED (ERR_TASK_ATTEMPT_LOST) and the fan-out looked at, so the task does
    not wait for its timeout. Returns how many were ended."""
    ended = 0
    now = runtime.now()
    for instance in runtime.requests.running_instances():
        if instance.started_at is None:
            continue
        if (now - datetime.fromisoformat(instance.started_at)).total_seconds() < lost_after_seconds:
            continue
        end = InstanceEnd(
            state=InstanceState.FAILED,
            error_code=ERR_INSTANCE_LOST,
            error_message=(
                f"instance {instance.index} ran over {int(lost_after_seconds)} s without ending: its "
                "invocation was lost; it is not run twice"
            ),
            ended_at=iso(now),
        )
        try:
            if not runtime.requests.end_instance(instance.request_id, instance.step, instance.index, end):
                continue
            ended += 1
            event = InstanceEvent(request_id=instance.request_id, step=instance.step, index=instance.index)
            _look_after(
                runtime, Walker(runtime), event, functions=instance_functions(runtime), keeps_log=False
            )
        except Exception as exc:  # one request's trouble must not stop the sweep of the others
            logger.warning(
                "lost instance not swept", extra={"request_id": instance.request_id, "error": str(exc)}
            )
    return ended
