"""The contract every runner fulfils: a rendered task in, one attempt's outcome out."""

from __future__ import annotations

import json
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


RunnerFn = Callable[[TaskDefinition, TaskContext], TaskOutcome]
