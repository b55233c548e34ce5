"""The walk at run time: the engine, the stores and the runners composed for Lambdas and the API.

Every service takes the ``Runtime`` it works with; Lambda handlers, the API and ``formica dev``
pass ``get_runtime()`` (the process's, built from the settings by ``formica.runtime.wiring``), tests
pass their own.

- ``advance(event, runtime)``: the Advance Lambda (start of an execution, results of container
  attempts and of failed task Lambdas, and the fatal path).
- ``run_http_task`` / ``run_shell_task``: run one attempt, then advance the walk.
- ``launch_container``: start a container attempt that reports back by task token.
- ``continue_execution``: continue-as-new.
- ``start_request``, ``cancel_request``, ``restart_request``, ``trigger_now``, ``start_waiting``:
  what the API asks of a request and of a job type's queue.
- ``handle_event``: the scheduler function (the sweep and cron fires).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from formica.jobs.models import RunnerKind
from formica.runtime import attempts
from formica.runtime.deps import ContainerRuntimeError, Runtime
from formica.runtime.executions import (
    ContinueEvent,
    ExecutionError,
    cancel_request,
    continue_execution,
)
from formica.runtime.launch import ContainerLaunchError, LaunchEvent, launch_container
from formica.runtime.scheduling import (
    handle_event,
    restart_request,
    start_request,
    start_waiting,
    trigger_now,
)
from formica.runtime.walker import AdvanceEvent, advance, run_task_attempt
from formica.runtime.wiring import (
    build_container_service,
    build_runtime,
    default_container_service,
    get_runtime,
    install_container_service,
    reset_container_service,
    reset_runtime,
)

__all__ = [
    "AdvanceEvent",
    "ContainerLaunchError",
    "ContainerRuntimeError",
    "ContinueEvent",
    "ExecutionError",
    "LaunchEvent",
    "Runtime",
    "TaskEvent",
    "advance",
    "build_container_service",
    "build_runtime",
    "cancel_request",
    "continue_execution",
    "default_container_service",
    "get_runtime",
    "handle_event",
    "install_container_service",
    "launch_container",
    "reset_container_service",
    "reset_runtime",
    "restart_request",
    "run_http_task",
    "run_shell_task",
    "run_task_attempt",
    "start_request",
    "start_waiting",
    "trigger_now",
]


class TaskEvent(BaseModel):
    """What a task Lambda receives: the request and the step of the decision to run."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    step: int


def _task_event(event: TaskEvent | dict[str, Any]) -> TaskEvent:
    return event if isinstance(event, TaskEvent) else TaskEvent.model_validate(event)


def run_http_task(
    event: TaskEvent | dict[str, Any],
    runtime: Runtime,
    *,
    time_left_seconds: float | None = None,
) -> dict[str, Any]:
    """The HttpTask Lambda's service: one HTTP attempt, then the next decision."""
    parsed = _task_event(event)
    return run_task_attempt(
        parsed.request_id,
        parsed.step,
        RunnerKind.HTTP,
        attempts.run_http_attempt,
        runtime,
        time_left_seconds=time_left_seconds,
    )


def run_shell_task(
    event: TaskEvent | dict[str, Any],
    runtime: Runtime,
    *,
    time_left_seconds: float | None = None,
) -> dict[str, Any]:
    """The ShellTask Lambda's service: one shell attempt in a fresh directory, then the next decision."""
    parsed = _task_event(event)
    return run_task_attempt(
        parsed.request_id,
        parsed.step,
        RunnerKind.SHELL,
        attempts.run_shell_attempt,
        runtime,
        time_left_seconds=time_left_seconds,
    )
