"""Jobs that start jobs: FORK_JOB starts a child request, AWAIT_FORKED_JOB waits for children to end.

- ``run_fork_attempt`` (the ForkTask Lambda, through ``Walker.run_attempt``): the FORK_JOB task's
  one attempt creates a child request of ``fork_job_type`` in the parent's organisation, its params
  the task's variables plus ``ForkedJob``, ``ParentJobID`` and ``ParentJobType``, records it under
  the parent (``ChildItem``) and offers it a start (admission: the child counts against its job
  type's max_concurrency like any request). The task completes at once, publishing
  ``ForkedJobID``. A replayed attempt finds the same child (its id is derived from the parent's id
  and step) and starts nothing twice.
- ``await_children`` (the Launch Lambda, for an AWAIT_FORKS decision, which waits on a task
  token): gives the parent's max_concurrency slot back (a parent waiting for children of its own
  type must not hold the slot they need), then answers at once when every awaited child has ended,
  or leaves the token recorded for the last child's end.
- ``child_finished`` (every request's end, through ``Runtime.request_ended``): marks the child's
  end on its parent and, when the parent's current await has nothing left to wait for, completes
  it (``complete_container_attempt``: the attempt recorded, the step committed, the token
  answered). A lost answer is repaired by ``sweep_awaits``.

The await's result: COMPLETED when every awaited child completed; otherwise it fails with the first
failed child's error code, naming the child. The children's artifacts become the await task's
(records pointing at the children's keys), so ``dependencies: [the await task]`` downloads them;
each child's state and id are the await's outputs (``<fork task>_JobState``, ``<fork task>_JobID``).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Any

from formica.engine.outputs import environment_variables
from formica.engine.walk import ERR_TASK_TIMED_OUT, AttemptResult, JobState
from formica.jobs.fanout import FanOutSourceError, fan_out_items
from formica.jobs.limits import PARAMS_MAX_BYTES, params_size
from formica.jobs.models import RunnerKind, TaskDefinition, wanted_version
from formica.runners.base import TaskContext, TaskOutcome
from formica.runtime.attempts import TaskEvent
from formica.runtime.completion import complete_container_attempt
from formica.runtime.deps import Runtime
from formica.runtime.executions import cancel_request
from formica.runtime.scheduling import give_slot_back, start_request
from formica.runtime.task_fanout import ERR_FAN_OUT, task_fan_out_step
from formica.runtime.walker import (
    FAN_OUT_INDEX_PARAM,
    FAN_OUT_ITEMS_OUTPUT,
    FAN_OUT_VAR_OUTPUT,
    AttemptScope,
    Walker,
    run_task_attempt,
)
from formica.store.requests import (
    ArtifactItem,
    ChildItem,
    JobRequestItem,
    RequestFinishedError,
    RequestNotFoundError,
    RequestStoreError,
)

logger = logging.getLogger(__name__)

ERR_FORK_JOB = "ERR_FORK_JOB"
"""The job type to fork is unknown, disabled, or has no such version."""
ERR_FORK_LIMIT = "ERR_FORK_LIMIT"
"""A fork over the depth or the children-per-request limit."""
ERR_FORKED_JOB_FAILED = "ERR_FORKED_JOB_FAILED"
"""An awaited child ended without completing, and said no error code of its own."""
ERR_FORK_NOT_FOUND = "ERR_FORK_NOT_FOUND"
"""An awaited FORK_JOB task has not forked anything in this walk."""
FORK_ID_OUTPUT = "ForkedJobID"
SUB_WORKFLOW_STATE_OUTPUT = "JobState"
"""A waiting sub_workflow task's output: its child's final state."""
MAX_AWAIT_ARTIFACTS = 1000
"""Artifacts of all awaited children an await takes on (the rest are named in a warning)."""


def child_request_id(parent_id: str, step: int, index: int | None = None) -> str:
    """The child of the FORK_JOB attempt at ``step`` (item ``index`` of a fan_out): a replayed
    attempt names the same child."""
    item = "" if index is None else f":{index}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"formica:fork:{parent_id}:{step}{item}"))


def run_fork_task(
    event: TaskEvent | dict[str, Any], runtime: Runtime, *, time_left_seconds: float | None = None
) -> dict[str, Any]:
    """The ForkTask Lambda's service: one FORK_JOB attempt (claimed, so never twice), then the next
    decision."""
    parsed = event if isinstance(event, TaskEvent) else TaskEvent.model_validate(event)
    return run_task_attempt(
        parsed.request_id,
        parsed.step,
        RunnerKind.FORK,
        run_fork_attempt,
        runtime,
        time_left_seconds=time_left_seconds,
    )


class ForkRefusedError(RuntimeError):
    """A fork that cannot be made: unknown or disabled job type, no such version, over a limit."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def fork_child(
    runtime: Runtime,
    parent: JobRequestItem,
    *,
    fork_task: str,
    step: int,
    job_type: str,
    wanted_version: int | str | None,
    params: dict[str, Any],
    index: int | None = None,
) -> str:
    """Create (once) and offer a start to one child of ``parent``; returns its id.

    The child's id is derived from the parent, the step and ``index`` (a fan_out item), so a
    replayed call names the same child and creates nothing twice.

    Raises
    ------
    ForkRefusedError
        Over ``fork_max_depth`` or ``fork_max_children``, or the job type is unknown, disabled or
        has no such version.
    """
    max_depth, max_children = runtime.settings.fork_max_depth, runtime.settings.fork_max_children
    if parent.fork_depth + 1 > max_depth:
        message = f"forks would nest {parent.fork_depth + 1} deep: the limit (fork_max_depth) is {max_depth}"
        raise ForkRefusedError(ERR_FORK_LIMIT, message)
    size = params_size(params)
    if size > PARAMS_MAX_BYTES:
        message = f"the child's params take {size} bytes as JSON: the limit is {PARAMS_MAX_BYTES}"
        raise ForkRefusedError(ERR_FORK_JOB, message)
    child_id = child_request_id(parent.request_id, step, index)
    if runtime.requests.get(child_id) is None:
        if runtime.requests.count_children(parent.request_id) >= max_children:
            message = f"the request forked {max_children} jobs already: the limit (fork_max_children)"
            raise ForkRefusedError(ERR_FORK_LIMIT, message)
        head = runtime.definitions.get_head(parent.org, job_type)
        if head is None:
            raise ForkRefusedError(ERR_FORK_JOB, f"job type {job_type!r} is not defined in this organisation")
        if head.disabled:
            raise ForkRefusedError(ERR_FORK_JOB, f"job type {job_type!r} is disabled")
        version = runtime.definitions.resolve_version(parent.org, job_type, wanted_version)
        if version is None:
            raise ForkRefusedError(ERR_FORK_JOB, f"job type {job_type!r} has no version {wanted_version!r}")
        now = runtime.now_iso()
        child = JobRequestItem(
            request_id=child_id,
            org=parent.org,
            job_type=job_type,
            job_version=version.version,
            user_id=parent.user_id,
            params={
                **params,
                "ForkedJob": "true",
                "ParentJobID": parent.request_id,
                "ParentJobType": parent.job_type,
            },
            job_priority=parent.job_priority,
            created_at=now,
            updated_at=now,
            parent_id=parent.request_id,
            parent_job_type=parent.job_type,
            fork_task=fork_task,
            fork_depth=parent.fork_depth + 1,
        )
        recorded = ChildItem(
            parent_id=parent.request_id,
            child_id=child_id,
            job_type=job_type,
            fork_task=fork_task,
            step=step,
            index=index,
            created_at=now,
        )
        runtime.requests.put_child(recorded)
        try:
            runtime.requests.create(child)
        except RequestStoreError:
            if runtime.requests.get(child_id) is None:
                raise
    _start_child(runtime, child_id)
    return child_id


def run_fork_attempt(task: TaskDefinition, ctx: TaskContext, scope: AttemptScope) -> TaskOutcome:
    """FORK_JOB's one attempt: start the child request; the task completes with its id."""
    runtime, parent = scope.runtime, scope.request
    reused = _completed_child(runtime, parent, task)
    if reused is not None:
        log = f"[job {reused.child_id} forked by an earlier run of this task completed: reused]\n"
        return TaskOutcome(exit_code="0", outputs={FORK_ID_OUTPUT: reused.child_id}, log=log)
    job_type = (task.fork_job_type or "").strip()
    try:
        child_id = fork_child(
            runtime,
            parent,
            fork_task=task.task_type,
            step=scope.step,
            job_type=job_type,
            wanted_version=task.fork_version,
            params=_fork_params(runtime, parent, task),
        )
    except ForkRefusedError as exc:
        return _refused(exc.code, str(exc))
    log = f"[forked {job_type} as request {child_id}]\n"
    return TaskOutcome(exit_code="0", outputs={FORK_ID_OUTPUT: child_id}, log=log)


def _fork_params(runtime: Runtime, parent: JobRequestItem, task: TaskDefinition) -> dict[str, Any]:
    """The child's params: the task's variables, or with ``sub_workflow`` its ``input_params`` only,
    both taken from the definition rendered without secrets (a secret config renders as ``****``),
    so a forked job never receives a secret of its parent's in its params (``task`` is rendered
    with them: it is the attempt's, and the parent's own templates see the values)."""
    current = parent.walk.current
    rendered = Walker(runtime).render(
        parent,
        task_type=task.task_type,
        task_retry=current.task_retry if current is not None else 0,
        now=runtime.now(),
    )
    masked = rendered.task(task.task_type)
    if task.sub_workflow is None:
        return dict(masked.variables)
    return _input_params(masked)


def _input_params(task: TaskDefinition) -> dict[str, Any]:
    """A sub_workflow's ``input_params`` as params (the task rendered without secrets)."""
    sub = task.sub_workflow
    assert sub is not None  # noqa: S101 - the callers check it
    return {param.name: param.value for param in sub.input_params}


def _completed_child(runtime: Runtime, parent: JobRequestItem, task: TaskDefinition) -> ChildItem | None:
    """A restarted parent re-forks only the children that did not complete: the latest child this
    task forked in an earlier run, if it completed. A task entered again within the same run (a loop
    back to it) always forks anew."""
    if parent.walk.ran.count(task.task_type) > 1:
        return None
    earlier = [
        child
        for child in runtime.requests.list_children(parent.request_id)
        if child.fork_task == task.task_type
    ]
    if not earlier:
        return None
    latest = max(earlier, key=lambda child: child.step)
    return latest if latest.job_state == JobState.COMPLETED else None


def _start_child(runtime: Runtime, child_id: str) -> None:
    """Offer the child a start; one that already started (a replayed fork) is fine."""
    try:
        start_request(child_id, runtime)
    except RequestFinishedError:
        logger.info("forked job already started", extra={"request_id": child_id})


def _refused(code: str, message: str) -> TaskOutcome:
    return TaskOutcome(error_code=code, error_message=message, log=f"[{code}: {message}]\n")


# -- awaiting -------------------------------------------------------------------------------------


def _awaited(request: JobRequestItem, task: TaskDefinition) -> tuple[dict[str, str], list[str]]:
    """fork task -> child id for the awaited tasks of the current walk, and the tasks that forked
    nothing (they did not run, or failed before forking)."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for fork_task in task.await_forked_tasks:
        child_id = request.walk.outputs.get(fork_task, {}).get(FORK_ID_OUTPUT)
        if child_id:
            found[fork_task] = child_id
        else:
            missing.append(fork_task)
    return found, missing


def await_result(
    runtime: Runtime, request: JobRequestItem, task: TaskDefinition
) -> tuple[AttemptResult, list[ArtifactItem]] | None:
    """The await's result and the artifacts it takes on, if every awaited child has ended, else None
    (it keeps waiting)."""
    awaited, missing = _awaited(request, task)
    if missing:
        missing_result = AttemptResult(
            error_code=ERR_FORK_NOT_FOUND,
            error_message=f"awaited task(s) {', '.join(missing)} forked no job in this run",
        )
        return missing_result, []
    children = {child.child_id: child for child in runtime.requests.list_children(request.request_id)}
    ended: list[tuple[str, ChildItem]] = []
    for fork_task, child_id in awaited.items():
        child = children.get(child_id)
        if child is None or not child.is_final:
            return None
        ended.append((fork_task, child))
    late = _timed_out(runtime, request, task)
    if late is not None:
        return late, []
    outputs: dict[str, str] = {f"{fork_task}_JobState": str(child.job_state) for fork_task, child in ended}
    # Then the children's own outputs, as far as the task's outputs have room (the rest is dropped
    # with a warning): {fork task}_{child's task}_{name}.
    for fork_task, child in ended:
        request_of_child = runtime.requests.get(child.child_id)
        if request_of_child is None:
            continue
        for child_task, values in request_of_child.walk.outputs.items():
            for name, value in values.items():
                outputs.setdefault(f"{fork_task}_{child_task}_{name}", value)
    artifacts, warnings = _children_artifacts(runtime, request, task, [child for _, child in ended])
    failed = next(((name, child) for name, child in ended if child.job_state != JobState.COMPLETED), None)
    if failed is not None:
        fork_task, child = failed
        code = child.error_code or ERR_FORKED_JOB_FAILED
        message = (
            f"forked job {child.job_type} ({child.child_id}, from task {fork_task}) ended "
            f"{child.job_state}: {child.error_message or code}"
        )
        failure = AttemptResult(
            error_code=code, error_message=message[:2000], outputs=outputs, warnings=warnings
        )
        return failure, artifacts
    return AttemptResult(exit_code="0", outputs=outputs, warnings=warnings), artifacts


def _timed_out(runtime: Runtime, request: JobRequestItem, task: TaskDefinition) -> AttemptResult | None:
    """ERR_TASK_TIMED_OUT when the children ended after the task's deadline (the state's own timeout
    may not have fired yet), else None."""
    deadline = request.walk.current.deadline if request.walk.current is not None else None
    if deadline is None or runtime.now() < datetime.fromisoformat(deadline):
        return None
    return AttemptResult(
        error_code=ERR_TASK_TIMED_OUT,
        error_message=f"task {task.task_type} timed out before its forked jobs ended",
    )


def _children_artifacts(
    runtime: Runtime, parent: JobRequestItem, task: TaskDefinition, children: list[ChildItem]
) -> tuple[list[ArtifactItem], list[str]]:
    """The children's artifacts as the await task's own records (their keys stay the children's),
    so a later task's ``dependencies: [the await]`` downloads them; one name, the last child's."""
    by_name: dict[str, ArtifactItem] = {}
    warnings: list[str] = []
    created = runtime.now_iso()
    for child in children:
        for item in runtime.requests.list_artifacts(child.child_id):
            if item.kind != "artifact":
                continue
            if item.name in by_name:
                warnings.append(f"artifact {item.name!r} of {child.child_id} replaces an earlier child's")
            by_name[item.name] = ArtifactItem(
                request_id=parent.request_id,
                artifact_id=str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"formica:await:{parent.request_id}:{item.key}")
                ),
                org=parent.org,
                task_type=task.task_type,
                name=item.name,
                key=item.key,
                size=item.size,
                sha256=item.sha256,
                content_type=item.content_type,
                created_at=created,
                expires_at=item.expires_at,
            )
    artifacts = list(by_name.values())
    if len(artifacts) > MAX_AWAIT_ARTIFACTS:
        warnings.append(
            f"the children uploaded {len(artifacts)} artifacts: kept the first {MAX_AWAIT_ARTIFACTS}"
        )
        artifacts = artifacts[:MAX_AWAIT_ARTIFACTS]
    return artifacts, warnings[:20]


def _complete(
    runtime: Runtime, request_id: str, step: int, answer: tuple[AttemptResult, list[ArtifactItem]]
) -> bool:
    result, artifacts = answer
    for artifact in artifacts:
        runtime.requests.put_artifact(artifact)
    return complete_container_attempt(runtime, request_id, step, result)


def await_children(runtime: Runtime, request: JobRequestItem, step: int, task: TaskDefinition) -> bool:
    """The Launch Lambda's AWAIT_FORKED_JOB (and fan_out): give the slot back, then answer now if
    the children have all ended (True), else leave the recorded token to the last child's end."""
    give_slot_back(runtime, request)
    if task.fan_out is not None and not task.fan_out.forks_jobs:
        return task_fan_out_step(runtime, request, step, task)
    if task.fan_out is not None:
        return fan_out_step(runtime, request, step, task)
    if task.sub_workflow is not None:
        return sub_workflow_step(runtime, request, step, task)
    answer = await_result(runtime, request, task)
    if answer is None:
        logger.info("awaiting forked jobs", extra={"request_id": request.request_id, "step": step})
        return False
    return _complete(runtime, request.request_id, step, answer)


def child_finished(runtime: Runtime, child: JobRequestItem) -> bool:
    """A forked request ended: mark it on its parent and complete the parent's await if it was the
    last one awaited. Returns True when this call answered the parent. Never raises for store or
    state machine trouble (``sweep_awaits`` repairs what it missed)."""
    if child.parent_id is None:
        return False
    try:
        # The walk hands over the request as it was before its last step: read how it ended.
        ended = runtime.requests.get(child.request_id) or child
        if not ended.is_final:
            return False
        runtime.requests.child_ended(
            child.parent_id, child.request_id, ended.job_state, ended.error_code, ended.error_message
        )
        return answer_parent(runtime, child.parent_id)
    except Exception as exc:  # the child's own end must stand; the sweep answers the parent
        logger.warning(
            "parent of a forked job not told",
            extra={"request_id": child.request_id, "parent_id": child.parent_id, "error": str(exc)},
        )
        return False


def answer_parent(runtime: Runtime, parent_id: str) -> bool:
    """Complete the parent's current await if it waits on a token and nothing is left to wait for."""
    parent = runtime.requests.get(parent_id)
    if parent is None or parent.is_final or parent.walk.current is None:
        return False
    if parent.task_token is None or parent.task_token_step != parent.step:
        return False
    task = _current_await(runtime, parent)
    if task is None or (task.fan_out is not None and not task.fan_out.forks_jobs):
        return False
    if task.fan_out is not None:
        return fan_out_step(runtime, parent, parent.step, task)
    if task.sub_workflow is not None:
        return sub_workflow_step(runtime, parent, parent.step, task)
    answer = await_result(runtime, parent, task)
    if answer is None:
        return False
    return _complete(runtime, parent.request_id, parent.step, answer)


def sweep_children(runtime: Runtime, *, stale_after_seconds: float = 600.0) -> int:
    """The minute sweep's repair: children that ended without their parent hearing it are marked,
    and the parent's await answered; a child recorded but never created (its fork's Lambda died in
    between) is marked FAILED once it is ``stale_after_seconds`` old. Returns how many were marked."""
    marked = 0
    now = runtime.now()
    for child in runtime.requests.running_children():
        try:
            request = runtime.requests.get(child.child_id)
            code: str | None
            message: str | None
            if request is None:
                age = (now - datetime.fromisoformat(child.created_at)).total_seconds()
                if age < stale_after_seconds:
                    continue
                state, code, message = JobState.FAILED, ERR_FORK_JOB, "the forked request was never created"
            elif request.is_final:
                state, code, message = request.job_state, request.error_code, request.error_message
            else:
                continue
            if runtime.requests.child_ended(child.parent_id, child.child_id, state, code, message):
                marked += 1
            answer_parent(runtime, child.parent_id)
        except Exception as exc:  # one parent's trouble must not stop the sweep of the others
            logger.warning("forked job not swept", extra={"request_id": child.child_id, "error": str(exc)})
    return marked


def _current_await(runtime: Runtime, request: JobRequestItem) -> TaskDefinition | None:
    current = request.walk.current
    if current is None:
        return None
    definition = Walker(runtime).render(
        request, task_type=current.task_type, task_retry=current.task_retry, now=runtime.now()
    )
    task = definition.task(current.task_type)
    return task if task.awaits_children else None


# -- sub_workflow with wait_for_completion ---------------------------------------------------------


def sub_workflow_step(runtime: Runtime, request: JobRequestItem, step: int, task: TaskDefinition) -> bool:
    """One look at a FORK_JOB task whose ``sub_workflow`` waits for completion: fork its child at the
    first look (its id derives from (parent, step), so two looks fork it once), and answer the token
    once the child has ended, with its state and the ``output_variables`` promoted. A restarted
    parent reuses the child this task forked in an earlier run when that one completed."""
    children = {child.child_id: child for child in runtime.requests.list_children(request.request_id)}
    child = children.get(child_request_id(request.request_id, step))
    if child is None:
        child = _completed_child(runtime, request, task)
    if child is None:
        try:
            fork_child(
                runtime,
                request,
                fork_task=task.task_type,
                step=step,
                job_type=(task.fork_job_type or "").strip(),
                wanted_version=task.fork_version,
                params=_input_params(task),
            )
        except ForkRefusedError as exc:
            refused = AttemptResult(error_code=exc.code, error_message=str(exc))
            return _complete(runtime, request.request_id, step, (refused, []))
        logger.info("awaiting a sub_workflow", extra={"request_id": request.request_id, "step": step})
        return False
    if not child.is_final:
        return False
    return _complete(runtime, request.request_id, step, _sub_workflow_result(runtime, request, task, child))


def _child_context(child: JobRequestItem) -> dict[str, str]:
    """The names a child's templates saw at its end: its params, then its outputs (bare and
    ``<task>_<Name>``, as ``engine.outputs.environment_variables`` names them)."""
    context = {
        name: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for name, value in child.params.items()
    }
    context.update(environment_variables(child.walk.outputs))
    return context


def _sub_workflow_result(
    runtime: Runtime, request: JobRequestItem, task: TaskDefinition, child: ChildItem
) -> tuple[AttemptResult, list[ArtifactItem]]:
    sub = task.sub_workflow
    assert sub is not None  # noqa: S101 - the caller's condition
    late = _timed_out(runtime, request, task)
    if late is not None:
        return late, []
    outputs = {FORK_ID_OUTPUT: child.child_id, SUB_WORKFLOW_STATE_OUTPUT: str(child.job_state)}
    warnings: list[str] = []
    ended = runtime.requests.get(child.child_id)
    context = _child_context(ended) if ended is not None else {}
    for child_name, name in sub.output_variables.items():
        if child_name in context:
            outputs[name] = context[child_name]
        elif child.job_state == JobState.COMPLETED:
            warnings.append(f"output_variables: the forked job has no {child_name}: {name} not published")
    artifacts, more = _children_artifacts(runtime, request, task, [child])
    warnings.extend(more)
    if child.job_state == JobState.COMPLETED:
        return AttemptResult(exit_code="0", outputs=outputs, warnings=warnings[:20]), artifacts
    code = child.error_code or ERR_FORKED_JOB_FAILED
    message = (
        f"forked job {child.job_type} ({child.child_id}) ended {child.job_state}: "
        f"{child.error_message or code}"
    )
    failed = AttemptResult(
        error_code=code, error_message=message[:2000], outputs=outputs, warnings=warnings[:20]
    )
    return failed, artifacts


# -- fan_out ----------------------------------------------------------------------------------------


def _item_param(item: Any) -> Any:
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))


def fan_out_step(runtime: Runtime, request: JobRequestItem, step: int, task: TaskDefinition) -> bool:
    """One look at a fan_out task: fork the next items while fewer than ``max_parallel`` children
    run, and answer the token once every item's child has ended (or at the first failure with
    ``fail_fast``, cancelling the rest). Called when the task starts and at each child's end; the
    children's ids derive from (parent, step, item), so two looks at once fork nothing twice."""
    spec = task.fan_out
    assert spec is not None and spec.fork_job_type is not None  # noqa: S101 - the callers check it
    try:
        items = fan_out_items(spec.source)
    except FanOutSourceError as exc:
        failed = AttemptResult(error_code=ERR_FAN_OUT, error_message=f"task {task.task_type}: {exc}")
        return _complete(runtime, request.request_id, step, (failed, []))
    outputs = {FAN_OUT_ITEMS_OUTPUT: str(len(items)), FAN_OUT_VAR_OUTPUT: spec.item_var}
    mine = [
        child
        for child in runtime.requests.list_children(request.request_id)
        if child.fork_task == task.task_type and child.step == step and child.index is not None
    ]
    by_index = {child.index: child for child in mine}
    failures = sorted(
        (child for child in mine if child.is_final and child.job_state != JobState.COMPLETED),
        key=lambda child: child.index or 0,
    )
    if failures and spec.fail_fast:
        return _fan_out_failed(
            runtime, request, step, task=task, first=failures[0], outputs=outputs, cancel=mine
        )
    running = sum(1 for child in mine if not child.is_final)
    waiting = [index for index in range(len(items)) if index not in by_index]
    for index in waiting[: max(0, spec.max_parallel - running)]:
        try:
            fork_child(
                runtime,
                request,
                fork_task=task.task_type,
                step=step,
                job_type=spec.fork_job_type,
                wanted_version=wanted_version(spec.fork_job_version),
                params={spec.item_var: _item_param(items[index]), FAN_OUT_INDEX_PARAM: str(index)},
                index=index,
            )
        except ForkRefusedError as exc:
            refused = AttemptResult(
                error_code=exc.code, error_message=f"item {index}: {exc}", outputs=outputs
            )
            answered = _complete(runtime, request.request_id, step, (refused, []))
            _cancel(runtime, request.org, [child.child_id for child in mine if not child.is_final])
            return answered
    if waiting or running:
        return False
    if failures:
        return _fan_out_failed(
            runtime, request, step, task=task, first=failures[0], outputs=outputs, cancel=[]
        )
    done = AttemptResult(exit_code="0", outputs=outputs)
    return _complete(runtime, request.request_id, step, (done, []))


def _fan_out_failed(
    runtime: Runtime,
    request: JobRequestItem,
    step: int,
    *,
    task: TaskDefinition,
    first: ChildItem,
    outputs: dict[str, str],
    cancel: list[ChildItem],
) -> bool:
    code = first.error_code or ERR_FORKED_JOB_FAILED
    message = (
        f"task {task.task_type}: item {first.index} ({first.job_type} {first.child_id}) ended "
        f"{first.job_state}: {first.error_message or code}"
    )
    # Answer first, then cancel: each cancelled child's end finds the walk moved on at once.
    answered = _complete(
        runtime,
        request.request_id,
        step,
        (AttemptResult(error_code=code, error_message=message[:2000], outputs=outputs), []),
    )
    _cancel(runtime, request.org, [child.child_id for child in cancel if not child.is_final])
    return answered


def _cancel(runtime: Runtime, org: str, child_ids: list[str]) -> None:
    for child_id in child_ids:
        try:
            cancel_request(org, child_id, runtime)
        except (RequestFinishedError, RequestNotFoundError):
            continue
        except Exception as exc:  # the other children must still be cancelled
            logger.warning("fan_out child not cancelled", extra={"request_id": child_id, "error": str(exc)})
