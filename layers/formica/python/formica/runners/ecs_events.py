"""What a stopped ECS task means for its Formica task attempt. Pure: no AWS calls here.

The input is an EventBridge "ECS Task State Change" event (its ``detail`` is the ECS ``Task`` object)
or a ``Task`` from DescribeTasks (the reconciler): both go through ``completion_from_task``.

Rules (docs/architecture.md, "Containers as built"):

- The exit code is the MAIN container's, never a helper's: the artifact sidecar runs last and may be
  killed (137) or fail; that never changes the result.
- ``stopCode`` ``UserInitiated`` (StopTask: cancellation or a timeout stop) gives ERR_TASK_CANCELLED,
  or ERR_TASK_TIMED_OUT when Formica's own stop reason says so.
- A main container without an exit code never ran: image pull failure (CannotPullContainerError),
  TaskFailedToStart, no capacity, a failed dependency download, an essential container that exited
  before it. That is ERR_CONTAINER_START with ECS's ``stoppedReason`` (and the container's reason).
- A Fargate Spot interruption or termination notice keeps whatever exit code main had and says
  ERR_CONTAINER_STOPPED: the container did not finish on its own.

The run a task belongs to (request id and step) travels in two places: the main container's
environment override ``FORMICA_RUN_KEY`` (always) and ``startedBy`` when it fits ECS's 36 characters.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from formica.engine.usage import RequestUsage
from formica.runners.base import EXIT_CODE_NONE

MAIN_CONTAINER = "main"
DEPENDENCIES_CONTAINER = "dependencies"
ARTIFACTS_CONTAINER = "artifacts"
LOGS_CONTAINER = "logs"
RUN_KEY_ENV = "FORMICA_RUN_KEY"
STARTED_BY_PREFIX = "formica"
STARTED_BY_MAX = 36  # ECS: up to 36 letters, digits, '-', '/', '_'

STOP_REASON_CANCELLED = "formica: job cancelled"
STOP_REASON_TIMED_OUT = "formica: task timed out"

ERR_CONTAINER_START = "ERR_CONTAINER_START"
ERR_CONTAINER_STOPPED = "ERR_CONTAINER_STOPPED"
ERR_TASK_CANCELLED = "ERR_TASK_CANCELLED"
ERR_TASK_TIMED_OUT = "ERR_TASK_TIMED_OUT"

DETAIL_TYPE = "ECS Task State Change"
_INTERRUPTED_STOP_CODES = frozenset({"SpotInterruption", "TerminationNotice"})
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class EcsEventError(ValueError):
    """The event is not an ECS task state change Formica can read."""


@dataclass(frozen=True, order=True)
class RunKey:
    """Which container run a task belongs to: the request and the step of its Launch."""

    request_id: str
    step: int

    def __str__(self) -> str:
        return f"{self.request_id}/{self.step}"

    @classmethod
    def parse(cls, text: str) -> RunKey | None:
        """The inverse of ``str()``; None for anything else."""
        request_id, sep, step = text.strip().rpartition("/")
        if not sep or not request_id or not step.isdigit():
            return None
        return cls(request_id, int(step))

    def started_by(self) -> str:
        """``formica/<uuid as 22 base64url chars>/<step in base 36>`` when the request id is a UUID and
        it fits ECS's 36 characters; else plain ``formica`` (the environment override still names the run).
        """
        try:
            parsed = uuid.UUID(self.request_id)
        except ValueError:
            return STARTED_BY_PREFIX
        if str(parsed) != self.request_id:
            return STARTED_BY_PREFIX  # not the canonical spelling: decoding would not give it back
        compact = base64.urlsafe_b64encode(parsed.bytes).decode().rstrip("=")
        value = f"{STARTED_BY_PREFIX}/{compact}/{_to_base36(self.step)}"
        return value if len(value) <= STARTED_BY_MAX else STARTED_BY_PREFIX

    @classmethod
    def from_started_by(cls, started_by: str) -> RunKey | None:
        parts = started_by.split("/")
        if len(parts) != 3 or parts[0] != STARTED_BY_PREFIX:
            return None
        try:
            raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
            return cls(str(uuid.UUID(bytes=raw)), int(parts[2], 36))
        except ValueError:
            return None


def _to_base36(number: int) -> str:
    if number < 0:
        raise ValueError("step must not be negative")
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _BASE36[rest] + digits
        if number == 0:
            return digits


@dataclass(frozen=True)
class ContainerCompletion:
    """The result of one stopped ECS task, as the walk needs it."""

    task_arn: str
    run_key: RunKey | None
    exit_code: str
    error_code: str | None
    error_message: str | None
    stop_code: str | None = None
    usage: RequestUsage | None = None
    """The task's billed Fargate time (``fargate_usage``), when the task says how long it ran."""

    def output(self) -> dict[str, str | None]:
        """The flat SendTaskSuccess output the Launch state hands to Advance."""
        return {
            "exit_code": self.exit_code,
            "error_code": self.error_code,
            "error_message": self.error_message,
        }


def is_task_state_change(event: Mapping[str, Any]) -> bool:
    return event.get("source") == "aws.ecs" and event.get("detail-type") == DETAIL_TYPE


def parse_task_state_change(event: Mapping[str, Any]) -> ContainerCompletion | None:
    """A STOPPED task's completion from an EventBridge event; None while the task is not STOPPED.

    Raises
    ------
    EcsEventError
        The event is not an ECS Task State Change or has no task ARN.
    """
    if not is_task_state_change(event):
        raise EcsEventError(
            f"not an ECS task state change: {event.get('source')!r} {event.get('detail-type')!r}"
        )
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise EcsEventError("ECS task state change without a detail object")
    if detail.get("lastStatus") != "STOPPED":
        return None
    return completion_from_task(detail)


def run_key_of(task: Mapping[str, Any]) -> RunKey | None:
    """The run a task belongs to: the main container's FORMICA_RUN_KEY override, else its startedBy."""
    overrides = task.get("overrides") or {}
    for override in overrides.get("containerOverrides") or []:
        if override.get("name") != MAIN_CONTAINER:
            continue
        for variable in override.get("environment") or []:
            if variable.get("name") == RUN_KEY_ENV:
                key = RunKey.parse(str(variable.get("value", "")))
                if key is not None:
                    return key
    started_by = task.get("startedBy")
    return RunKey.from_started_by(started_by) if isinstance(started_by, str) else None


def completion_from_task(task: Mapping[str, Any]) -> ContainerCompletion:
    """The completion of a stopped ECS ``Task`` (event detail or DescribeTasks entry)."""
    task_arn = task.get("taskArn")
    if not isinstance(task_arn, str) or not task_arn:
        raise EcsEventError("ECS task without a taskArn")
    containers = {str(c.get("name")): c for c in task.get("containers") or [] if isinstance(c, Mapping)}
    main = containers.get(MAIN_CONTAINER)
    stop_code = task.get("stopCode")
    stopped_reason = str(task.get("stoppedReason") or "")
    exit_code = _exit_code(main)
    key = run_key_of(task)

    def done(code: str | None, message: str | None) -> ContainerCompletion:
        return ContainerCompletion(task_arn, key, exit_code, code, message, stop_code, fargate_usage(task))

    if stop_code == "UserInitiated":
        if stopped_reason == STOP_REASON_TIMED_OUT:
            return done(ERR_TASK_TIMED_OUT, stopped_reason)
        return done(ERR_TASK_CANCELLED, stopped_reason or "the ECS task was stopped")
    if exit_code == EXIT_CODE_NONE:
        return done(ERR_CONTAINER_START, _start_failure_message(stopped_reason, main, containers))
    if stop_code in _INTERRUPTED_STOP_CODES:
        return done(ERR_CONTAINER_STOPPED, stopped_reason or str(stop_code))
    return done(None, None)


FARGATE_MINIMUM_SECONDS = 60
"""Fargate bills per second from the image pull's start to the task's stop, one minute at least."""


def _moment(value: Any) -> datetime | None:
    """An ECS timestamp: ISO-8601 text in events, a datetime from DescribeTasks."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def fargate_usage(task: Mapping[str, Any]) -> RequestUsage | None:
    """The billed Fargate time of a stopped task: CPU units and MiB of the task x the seconds from its
    image pull (or start) to its stop, rounded up, one minute at least; None when the task is not on
    Fargate or does not say when it ran (it never started: nothing billed)."""
    if task.get("launchType", "FARGATE") != "FARGATE":
        return None
    began = _moment(task.get("pullStartedAt")) or _moment(task.get("startedAt"))
    stopped = _moment(task.get("stoppedAt"))
    cpu, memory = str(task.get("cpu") or ""), str(task.get("memory") or "")
    if began is None or stopped is None or not cpu.isdigit() or not memory.isdigit():
        return None
    seconds = max(FARGATE_MINIMUM_SECONDS, math.ceil((stopped - began).total_seconds() - 1e-9))
    return RequestUsage(
        fargate_cpu_unit_ms=int(cpu) * seconds * 1000, fargate_mib_ms=int(memory) * seconds * 1000
    )


def _exit_code(container: Mapping[str, Any] | None) -> str:
    if container is None:
        return EXIT_CODE_NONE
    code = container.get("exitCode")
    if isinstance(code, bool) or not isinstance(code, int | str) or str(code).strip() == "":
        return EXIT_CODE_NONE
    return str(code)


def _start_failure_message(
    stopped_reason: str, main: Mapping[str, Any] | None, containers: Mapping[str, Mapping[str, Any]]
) -> str:
    parts = [stopped_reason] if stopped_reason else []
    if main is None:
        parts.append("the task has no main container")
    elif main.get("reason") and str(main["reason"]) not in stopped_reason:
        parts.append(str(main["reason"]))
    dependencies = containers.get(DEPENDENCIES_CONTAINER)
    dependency_code = _exit_code(dependencies)
    if dependency_code not in (EXIT_CODE_NONE, "0"):
        parts.append(f"downloading dependencies failed (exit {dependency_code})")
    return "; ".join(parts) or "the main container never started"
