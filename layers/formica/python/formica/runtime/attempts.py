"""The task Lambdas' services, and the runner adapters they run one attempt with.

``run_http_task`` / ``run_shell_task`` claim, run and record one attempt, then advance the walk.
Each adapter has the ``AttemptRunner`` shape ``(task, ctx, scope) -> TaskOutcome`` that
``Walker.run_attempt`` calls after it has claimed the attempt: working directories, dependencies
and artifacts around a runner.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from formica.jobs.models import RunnerKind, TaskDefinition
from formica.runners.artifacts import (
    ERR_ARTIFACTS_DOWNLOAD,
    ArtifactError,
    attach_artifacts,
    download_dependencies,
)
from formica.runners.base import TaskContext, TaskOutcome
from formica.runners.container_grants import GRANTS_ROUTE, live_chunk_count
from formica.runners.grants import mint_capability
from formica.runners.local_container import LocalContainerMode, run_local_container
from formica.runners.sandbox import (
    ERR_SANDBOX,
    SandboxContext,
    SandboxRequest,
    trusted_outcome,
)
from formica.runners.shell import fresh_workdir, run_shell
from formica.runtime.deps import Runtime
from formica.runtime.task_fanout import InstanceEvent, run_task_instance
from formica.runtime.walker import AttemptRunner, AttemptScope, attempt_succeeded, run_task_attempt
from formica.store.functions import FunctionInvokeError
from formica.store.grants import GrantRight, GrantStoreError
from formica.store.schema import artifact_key


def run_http_attempt(task: TaskDefinition, ctx: TaskContext, scope: AttemptScope) -> TaskOutcome:
    """An HTTP task attempt: the HTTP runner with the process's shared client, whose egress guard
    opens the networks of the setting ``http_allowed_networks`` (none: public addresses only)."""
    # Cold start: only http_task sends HTTP; every other handler would pay for httpx at import.
    from formica.runners.http import run_http, shared_client  # noqa: PLC0415

    return run_http(task, ctx, client=shared_client(scope.runtime.settings.http_allowed_networks))


def _work_root(scope: AttemptScope) -> Path | None:
    root = scope.runtime.settings.work_root
    return Path(root) if root else None


def _dependency_keys(task: TaskDefinition, scope: AttemptScope) -> list[str]:
    if not task.dependencies:
        return []
    wanted = set(task.dependencies)
    return [
        item.key
        for item in scope.runtime.requests.list_artifacts(scope.request.request_id)
        if item.kind == "artifact" and item.task_type in wanted
    ]


def in_workdir(
    run: Callable[[TaskDefinition, TaskContext, Path], TaskOutcome],
) -> Callable[[TaskDefinition, TaskContext, AttemptScope], TaskOutcome]:
    """Wrap a process runner: fresh working directory, dependencies in, artifacts out, cleanup."""

    def attempt(task: TaskDefinition, ctx: TaskContext, scope: AttemptScope) -> TaskOutcome:
        workdir = fresh_workdir(ctx, _work_root(scope))
        try:
            try:
                download_dependencies(scope.runtime.blobs, _dependency_keys(task, scope), workdir)
            except ArtifactError as exc:
                return TaskOutcome(
                    error_code=ERR_ARTIFACTS_DOWNLOAD, error_message=str(exc), log=f"[{exc}]\n"
                )
            outcome = run(task, ctx, workdir)
            return attach_artifacts(
                outcome,
                task,
                ctx,
                workdir=workdir,
                store=scope.runtime.blobs,
                succeeded=attempt_succeeded(task, outcome),
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    return attempt


def _shell(task: TaskDefinition, ctx: TaskContext, workdir: Path) -> TaskOutcome:
    return run_shell(task, ctx, workdir=workdir)


run_shell_here = in_workdir(_shell)
"""A SHELL task attempt in a fresh working directory of this process (``formica dev``, tests)."""

SANDBOX_GRANT_MARGIN_SECONDS = 300
"""A sandbox's capability outlives its attempt by this much (the uploads come after)."""
SANDBOX_MAX_SECONDS = 900
"""A Lambda invocation's limit: no sandboxed attempt runs longer."""
SANDBOX_ARTIFACT_MAX_BYTES = 2 * 1024**3
"""The largest artifact a sandbox may upload: its ephemeral storage (2 GiB)."""


def run_shell_attempt(task: TaskDefinition, ctx: TaskContext, scope: AttemptScope) -> TaskOutcome:
    """A SHELL task attempt: in the sandbox function when one is configured (AWS), else here."""
    function = scope.runtime.settings.shell_sandbox_function
    if function:
        return run_in_sandbox(function, task, ctx, scope)
    return run_shell_here(task, ctx, scope)


def _sandbox_seconds(ctx: TaskContext) -> int:
    """How long a sandboxed attempt may run: its timeout, never more than a Lambda invocation."""
    if ctx.timeout_seconds <= 0:
        return SANDBOX_MAX_SECONDS
    return min(math.ceil(ctx.timeout_seconds), SANDBOX_MAX_SECONDS)


def sandbox_live_chunks(ctx: TaskContext) -> int:
    """How many live chunks a sandboxed attempt may write over its longest run, counted as a
    container attempt's are (``live_chunk_count``)."""
    return live_chunk_count(_sandbox_seconds(ctx), ctx.log_flush_seconds)


def sandbox_request(task: TaskDefinition, ctx: TaskContext, scope: AttemptScope) -> SandboxRequest:
    """What the sandbox gets for one attempt: the task, its context, and a capability for this
    attempt only (its dependencies' artifacts, uploads under the task's artifact prefix, the cancel
    marker, and when the walk streams logs, the chunks of its live log: a task fan-out instance's
    own), which it exchanges at the API's grants route when it moves files.

    Raises
    ------
    GrantStoreError
        The capability could not be stored.
    ValueError
        No API URL or capability store is configured.
    """
    runtime = scope.runtime
    if runtime.grants is None or not runtime.settings.api_url:
        raise ValueError("no API URL (FORMICA_API_URL) or capability store for the sandbox's grants")
    rights = [GrantRight.CANCEL]
    if task.dependencies:
        rights.append(GrantRight.DOWNLOAD)
    if task.artifacts is not None and task.artifacts.paths:
        rights.append(GrantRight.UPLOAD)
    live = ctx.live_log is not None
    if live:
        rights.append(GrantRight.LIVE_LOG)
    now = runtime.now()
    capability = mint_capability(
        runtime.grants,
        org=ctx.org,
        request_id=ctx.request_id,
        task_type=ctx.task_type,
        step=scope.step,
        rights=rights,
        expires_at=now + timedelta(seconds=_sandbox_seconds(ctx) + SANDBOX_GRANT_MARGIN_SECONDS),
        now=now,
        execution=scope.request.execution_name,
        dependencies=task.dependencies,
        max_bytes=SANDBOX_ARTIFACT_MAX_BYTES,
        log_attempt=ctx.log_attempt,
        live_chunks=sandbox_live_chunks(ctx),
        instance=scope.instance,
    )
    return SandboxRequest(
        task=task.model_dump(mode="json", exclude_none=True, by_alias=True),
        context=SandboxContext(
            org=ctx.org,
            request_id=ctx.request_id,
            job_type=ctx.job_type,
            task_type=ctx.task_type,
            attempt=ctx.attempt,
            timeout_seconds=ctx.timeout_seconds,
            params=ctx.params,
            log_flush_seconds=ctx.log_flush_seconds,
            artifact_dir=ctx.artifact_dir,
        ),
        grants_url=runtime.settings.api_url.rstrip("/") + GRANTS_ROUTE,
        capability=capability,
        success_exit_codes=[
            code for code in map(str, range(256)) if attempt_succeeded(task, TaskOutcome(exit_code=code))
        ],
        live_log=live,
        secrets=list(ctx.secrets) if live else [],
    )


def run_in_sandbox(function: str, task: TaskDefinition, ctx: TaskContext, scope: AttemptScope) -> TaskOutcome:
    """Hand the attempt to the sandbox function and keep what can be checked of its answer."""
    invoker = scope.runtime.functions
    if invoker is None:
        return TaskOutcome(error_code=ERR_SANDBOX, error_message="no function invoker for the SHELL sandbox")
    try:
        request = sandbox_request(task, ctx, scope)
    except (GrantStoreError, ValueError) as exc:
        return TaskOutcome(error_code=ERR_SANDBOX, error_message=f"could not grant the sandbox: {exc}")
    try:
        answer = invoker.invoke(function, request.model_dump(mode="json"))
    except FunctionInvokeError as exc:
        return TaskOutcome(error_code=ERR_SANDBOX, error_message=str(exc), log=f"[{ERR_SANDBOX}: {exc}]\n")
    prefix = artifact_key(ctx.org, ctx.request_id, ctx.task_type, ctx.artifact_dir)
    try:
        outcome = trusted_outcome(answer, artifact_prefix=prefix)
    except ValueError as exc:
        message = f"the sandbox answered something that is not an outcome: {exc}"[:2000]
        return TaskOutcome(error_code=ERR_SANDBOX, error_message=message)
    outcome.log += f"[ran in the SHELL sandbox {function}]\n"
    return outcome


def local_container_runner(mode: str) -> Callable[[TaskDefinition, TaskContext, AttemptScope], TaskOutcome]:
    """A container task attempt on this machine (Docker, or the host shell with a warning)."""

    def run(task: TaskDefinition, ctx: TaskContext, workdir: Path) -> TaskOutcome:
        chosen: LocalContainerMode = "host" if mode == "host" else "docker" if mode == "docker" else "auto"
        return run_local_container(task, ctx, workdir=workdir, mode=chosen)

    return in_workdir(run)


class TaskEvent(BaseModel):
    """What a task Lambda receives: the request and the step of the decision to run; with ``index``,
    one instance of the task fan-out at that step (``formica.runtime.task_fanout``)."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    step: int
    index: int | None = None


def _task_event(event: TaskEvent | dict[str, Any]) -> TaskEvent:
    return event if isinstance(event, TaskEvent) else TaskEvent.model_validate(event)


def _run_instance(
    event: TaskEvent,
    runtime: Runtime,
    runner: RunnerKind,
    run: AttemptRunner,
    *,
    time_left_seconds: float | None,
    function_name: str | None,
) -> dict[str, Any]:
    assert event.index is not None  # noqa: S101 - the callers check it
    return run_task_instance(
        InstanceEvent(request_id=event.request_id, step=event.step, index=event.index),
        runtime,
        runner,
        run,
        time_left_seconds=time_left_seconds,
        function_name=function_name,
    )


def run_http_task(
    event: TaskEvent | dict[str, Any],
    runtime: Runtime,
    *,
    time_left_seconds: float | None = None,
    function_name: str | None = None,
) -> dict[str, Any]:
    """The HttpTask Lambda's service: one HTTP attempt, then the next decision; or one instance of a
    task fan-out (``function_name``: this function's, which invokes the next instances)."""
    parsed = _task_event(event)
    if parsed.index is not None:
        return _run_instance(
            parsed,
            runtime,
            RunnerKind.HTTP,
            run_http_attempt,
            time_left_seconds=time_left_seconds,
            function_name=function_name,
        )
    return run_task_attempt(
        parsed.request_id,
        parsed.step,
        RunnerKind.HTTP,
        run_http_attempt,
        runtime,
        time_left_seconds=time_left_seconds,
    )


def run_shell_task(
    event: TaskEvent | dict[str, Any],
    runtime: Runtime,
    *,
    time_left_seconds: float | None = None,
    function_name: str | None = None,
) -> dict[str, Any]:
    """The ShellTask Lambda's service: one shell attempt in a fresh directory, then the next decision;
    or one instance of a task fan-out (``function_name`` as for ``run_http_task``)."""
    parsed = _task_event(event)
    if parsed.index is not None:
        return _run_instance(
            parsed,
            runtime,
            RunnerKind.SHELL,
            run_shell_attempt,
            time_left_seconds=time_left_seconds,
            function_name=function_name,
        )
    return run_task_attempt(
        parsed.request_id,
        parsed.step,
        RunnerKind.SHELL,
        run_shell_attempt,
        runtime,
        time_left_seconds=time_left_seconds,
    )
