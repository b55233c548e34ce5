"""The walk at run time: the engine, the stores and the runners composed for Lambdas and the API.

Entry points (each takes an optional ``runtime``; the default is built from the settings):

- ``advance(event)``: the Advance Lambda (start of an execution, results of container attempts and
  of failed task Lambdas, and the fatal path).
- ``run_http_task(event)`` / ``run_shell_task(event)``: run one attempt, then advance the walk.
- ``launch_container(event)``: start a container attempt that reports back by task token.
- ``continue_execution(event)``: continue-as-new.
- ``start_request(request_id)``, ``cancel_request(org, request_id)``, ``restart_request(org, request_id)``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from formica.jobs.models import RunnerKind
from formica.runtime.deps import Runtime, build_runtime, get_runtime, reset_runtime
from formica.runtime.executions import (
    ContinueEvent,
    ExecutionError,
    cancel_request,
    continue_execution,
    restart_request,
    start_request,
)
from formica.runtime.launch import ContainerLaunchError, LaunchEvent, launch_container
from formica.runtime.walker import AdvanceEvent, advance, run_task_attempt

__all__ = [
    "AdvanceEvent",
    "ContainerLaunchError",
    "ContinueEvent",
    "ExecutionError",
    "LaunchEvent",
    "Runtime",
    "TaskEvent",
    "advance",
    "build_runtime",
    "cancel_request",
    "continue_execution",
    "get_runtime",
    "launch_container",
    "reset_runtime",
    "restart_request",
    "run_http_task",
    "run_shell_task",
    "run_task_attempt",
    "start_request",
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
    runtime: Runtime | None = None,
    *,
    time_left_seconds: float | None = None,
) -> dict[str, Any]:
    """The HttpTask Lambda's service: one HTTP attempt, then the next decision."""
    from formica.runtime.attempts import run_http_attempt

    parsed = _task_event(event)
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
    runtime: Runtime | None = None,
    *,
    time_left_seconds: float | None = None,
) -> dict[str, Any]:
    """The ShellTask Lambda's service: one shell attempt in a fresh directory, then the next decision."""
    from formica.runtime.attempts import run_shell_attempt

    parsed = _task_event(event)
    return run_task_attempt(
        parsed.request_id,
        parsed.step,
        RunnerKind.SHELL,
        run_shell_attempt,
        runtime,
        time_left_seconds=time_left_seconds,
    )
