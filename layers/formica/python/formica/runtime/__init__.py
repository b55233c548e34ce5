"""The walk at run time: the engine, the stores and the runners composed for Lambdas and the API.

Every service takes the ``Runtime`` it works with; Lambda handlers, the API and ``formica dev``
pass ``get_runtime()`` (the process's, built from the settings by ``formica.runtime.wiring``), tests
pass their own.

- ``advance(event, runtime)``: the Advance Lambda (start of an execution, results of container
  attempts and of failed task Lambdas, and the fatal path).
- ``run_http_task`` / ``run_shell_task`` / ``run_fork_task`` / ``run_expire_task``: run one attempt,
  then advance the walk.
- ``launch_container``: start a container attempt that reports back by task token.
- ``continue_execution``: continue-as-new.
- ``start_request``, ``cancel_request``, ``restart_request``, ``trigger_now``, ``start_waiting``:
  what the API asks of a request and of a job type's queue.
- ``handle_event``: the scheduler function (the sweep and cron fires).

The names are loaded on first use (PEP 562), as in ``formica.jobs``: a task Lambda's cold start
does not import admission, the container service or the ECS and EKS runners it never calls.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from formica.runtime.attempts import TaskEvent, run_http_task, run_shell_task
    from formica.runtime.deps import ContainerRuntimeError, Runtime
    from formica.runtime.executions import ContinueEvent, ExecutionError, cancel_request, continue_execution
    from formica.runtime.expire import run_expire_task
    from formica.runtime.forks import run_fork_task
    from formica.runtime.launch import ContainerLaunchError, LaunchEvent, launch_container
    from formica.runtime.metering import metered
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

_WHERE = {
    "TaskEvent": "attempts",
    "run_http_task": "attempts",
    "run_shell_task": "attempts",
    "ContainerRuntimeError": "deps",
    "Runtime": "deps",
    "ContinueEvent": "executions",
    "ExecutionError": "executions",
    "cancel_request": "executions",
    "continue_execution": "executions",
    "run_expire_task": "expire",
    "run_fork_task": "forks",
    "ContainerLaunchError": "launch",
    "LaunchEvent": "launch",
    "launch_container": "launch",
    "metered": "metering",
    "handle_event": "scheduling",
    "restart_request": "scheduling",
    "start_request": "scheduling",
    "start_waiting": "scheduling",
    "trigger_now": "scheduling",
    "AdvanceEvent": "walker",
    "advance": "walker",
    "run_task_attempt": "walker",
    "build_container_service": "wiring",
    "build_runtime": "wiring",
    "default_container_service": "wiring",
    "get_runtime": "wiring",
    "install_container_service": "wiring",
    "reset_container_service": "wiring",
    "reset_runtime": "wiring",
}

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
    "metered",
    "reset_container_service",
    "reset_runtime",
    "restart_request",
    "run_expire_task",
    "run_fork_task",
    "run_http_task",
    "run_shell_task",
    "run_task_attempt",
    "start_request",
    "start_waiting",
    "trigger_now",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'formica.runtime' has no attribute {name!r}")
    value = getattr(import_module(f"formica.runtime.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
