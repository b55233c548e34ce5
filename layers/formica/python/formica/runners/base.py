"""The contract every runner fulfils: a rendered task in, one attempt's outcome out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from formica.jobs.models import TaskDefinition

LOG_CAP_BYTES = 256 * 1024
"""Task logs (stdout+stderr, HTTP bodies) are capped at this size; the cap is noted in the log."""

EXIT_CODE_NONE = ""
"""exit_code when the attempt produced no code (it never ran, or it timed out)."""


def variable_text(value: Any) -> str:
    """A variable's value as text (an env var, a form field), the way formicary prints it: booleans
    lower-case, null empty, lists and maps as compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


class ArtifactInfo(BaseModel):
    """One file a task attempt uploaded."""

    name: str
    key: str
    size: int
    sha256: str
    content_type: str = "application/octet-stream"


class TaskOutcome(BaseModel):
    """What one attempt of a task produced. exit_code is a string as in formicary ("0", "404")."""

    exit_code: str = EXIT_CODE_NONE
    error_code: str | None = None  # ERR_TASK_TIMED_OUT, ERR_TASK_CANCELLED, ERR_CONTAINER_START, ...
    error_message: str | None = None
    log: str = ""
    outputs: dict[str, str] = Field(default_factory=dict)
    artifacts: list[ArtifactInfo] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class TaskContext:
    """Everything about one attempt that is not in the rendered task itself."""

    org: str
    request_id: str
    job_type: str
    task_type: str
    attempt: int
    timeout_seconds: float
    # The variables the task's environment gets from the job (SHELL and containers), lowest first:
    # job_variables, the request's params, earlier tasks' outputs (runtime.walker.exported_variables).
    params: dict[str, Any] = field(default_factory=dict)
    # Called every second or so by long runners: True means the job was cancelled, stop now.
    is_cancelled: Callable[[], bool] = lambda: False
    # The task's own attempt number (1 for its first attempt, as the API's ``attempts`` counts):
    # its log is numbered by it. 0: unknown, ``attempt`` (the walk step) numbers the log.
    task_attempt: int = 0
    # Where a runner sends its log while the attempt runs (``LiveLog``); None: only at the end.
    live_log: Callable[[bytes], None] | None = None
    log_flush_seconds: float = 3.0
    # The values of the job's secret configs (already in ``params``), for a runner that stores its
    # live log where the trusted side cannot mask it first (the SHELL sandbox): it masks them itself.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # Where under the task's artifact prefix this attempt's artifacts go (``instance-N/`` for an
    # instance of a task fan-out, ``store.schema.instance_artifact_dir``); empty: the prefix itself.
    artifact_dir: str = ""

    @property
    def log_attempt(self) -> int:
        """The number the attempt's log is stored under."""
        return self.task_attempt or self.attempt


LIVE_LOG_HOLD_BYTES = 64 * 1024
"""A line longer than this is flushed without waiting for its end."""


class LiveLog:
    """A runner's log on its way out while the attempt runs: ``add`` what the log kept, ``flush``
    often; the new complete lines go to ``ctx.live_log`` when ``ctx.log_flush_seconds`` have passed
    since the last flush (or ``force``). Only whole lines are sent, so a chunk never splits a
    character or a secret the trusted side masks line by line."""

    def __init__(self, ctx: TaskContext, clock: Callable[[], float] = time.monotonic) -> None:
        self._sink = ctx.live_log
        self._interval = ctx.log_flush_seconds
        self._clock = clock
        self._pending = bytearray()
        self._last = clock()

    def add(self, data: bytes) -> None:
        if self._sink is not None:
            self._pending += data

    def flush(self, *, force: bool = False) -> None:
        if self._sink is None or not self._pending:
            return
        if not force and self._clock() - self._last < self._interval:
            return
        cut = len(self._pending) if force else self._pending.rfind(b"\n") + 1
        if cut == 0 and len(self._pending) >= LIVE_LOG_HOLD_BYTES:
            cut = len(self._pending)
        if cut == 0:
            return
        data = bytes(self._pending[:cut])
        del self._pending[:cut]
        self._last = self._clock()
        self._sink(data)


RunnerFn = Callable[[TaskDefinition, TaskContext], TaskOutcome]
