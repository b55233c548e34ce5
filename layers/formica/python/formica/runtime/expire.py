"""EXPIRE_ARTIFACTS: delete the organisation's artifacts and logs older than an age.

formicary runs this method in a tasklet of its server; Formica runs it in the ExpireTask Lambda
(a task Lambda, like ForkTask: the attempt claimed once, recorded, the walk advanced). The task's
parameters keep formicary's names (its server settings, here variables of the task or the job):

- ``DefaultArtifactExpiration``: the age (a Go duration, ``1200h`` when unset) past which an
  artifact or log is deleted;
- ``DefaultArtifactLimit``: at most this many are deleted per attempt (``10000`` when unset).

Only the organisation's own keys are listed (the S3 prefix ``{org}/``), and of those only
``{org}/{request_id}/{task_type}/artifacts/...`` and ``.../logs/...``: the attempts' grant files and
cancel markers stay. Deletions go through ``BlobStore.delete_older`` (listing pages of 1,000 keys,
one DeleteObjects per page). The counts are the task's outputs, as formicary's job context:
``TotalExpired`` and ``TotalSize`` (bytes). The artifacts bucket's lifecycle rule still expires
everything after ``artifact_expiry_days``; this task is for a shorter, per-organisation age.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from formica.jobs.durations import DurationError, format_duration, parse_duration
from formica.jobs.models import RunnerKind, TaskDefinition
from formica.runners.base import TaskContext, TaskOutcome
from formica.runtime.attempts import TaskEvent
from formica.runtime.deps import Runtime
from formica.runtime.walker import AttemptScope, run_task_attempt
from formica.store.blobs import BlobStoreError

logger = logging.getLogger(__name__)

EXPIRATION_PARAM = "DefaultArtifactExpiration"
LIMIT_PARAM = "DefaultArtifactLimit"
DEFAULT_EXPIRATION_SECONDS = 1200 * 3600.0
"""formicary's default age (``1200h``, 50 days)."""
DEFAULT_LIMIT = 10_000
"""formicary's default number of artifacts expired per run."""
MAX_LIMIT = 100_000
"""The most one attempt deletes (about 100 DeleteObjects calls, well within the Lambda's time)."""
EXPIRED_FOLDERS = frozenset({"artifacts", "logs"})
"""The folders of ``{org}/{request_id}/{task_type}/`` this task deletes from."""
ERR_INVALID_PARAMETER = "ERR_INVALID_PARAMETER"
ERR_EXPIRE_FAILED = "ERR_EXPIRE_FAILED"


class ExpireParameterError(ValueError):
    """``DefaultArtifactExpiration`` or ``DefaultArtifactLimit`` is not a valid value."""


def expire_parameters(task: TaskDefinition, params: dict[str, Any]) -> tuple[float, int]:
    """The (age in seconds, limit) an EXPIRE_ARTIFACTS attempt uses: the task's variables, else the
    job's (``params``), else formicary's defaults.

    Raises
    ------
    ExpireParameterError
        When the age is not a positive Go duration, or the limit not a whole number from 1 to
        ``MAX_LIMIT``; the message names the task and the variable.
    """

    def value(name: str) -> Any:
        if name in task.variables:
            return task.variables[name]
        return params.get(name)

    raw_age, raw_limit = value(EXPIRATION_PARAM), value(LIMIT_PARAM)
    try:
        age = DEFAULT_EXPIRATION_SECONDS if raw_age in (None, "") else parse_duration(raw_age)
    except DurationError as exc:
        raise ExpireParameterError(f"task {task.task_type}: {EXPIRATION_PARAM}: {exc}") from exc
    if age <= 0:
        raise ExpireParameterError(f"task {task.task_type}: {EXPIRATION_PARAM} must be more than 0s")
    text = "" if raw_limit is None else str(raw_limit).strip()
    if isinstance(raw_limit, bool) or (text and not text.isdigit()):
        raise ExpireParameterError(
            f"task {task.task_type}: {LIMIT_PARAM} must be a whole number, not {raw_limit!r}"
        )
    limit = int(text) if text else DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise ExpireParameterError(
            f"task {task.task_type}: {LIMIT_PARAM} must be from 1 to {MAX_LIMIT}, not {limit}"
        )
    return age, limit


def _kept(key: str) -> bool:
    # {org}/{request_id}/{task_type}/{folder}/...: grant files and cancel markers are not artifacts.
    parts = key.split("/")
    return len(parts) < 5 or parts[3] not in EXPIRED_FOLDERS


def run_expire_attempt(task: TaskDefinition, ctx: TaskContext, scope: AttemptScope) -> TaskOutcome:
    """EXPIRE_ARTIFACTS's one attempt: delete the organisation's artifacts and logs older than the age."""
    try:
        age, limit = expire_parameters(task, ctx.params)
    except ExpireParameterError as exc:
        return TaskOutcome(error_code=ERR_INVALID_PARAMETER, error_message=str(exc))
    before = scope.runtime.now() - timedelta(seconds=age)
    try:
        deleted = scope.runtime.blobs.delete_older(f"{ctx.org}/", before=before, limit=limit, keep=_kept)
    except BlobStoreError as exc:
        logger.warning("artifact expiry failed", extra={"request_id": ctx.request_id, "error": str(exc)})
        return TaskOutcome(error_code=ERR_EXPIRE_FAILED, error_message=f"task {task.task_type}: {exc}")
    logger.info(
        "artifacts expired",
        extra={"request_id": ctx.request_id, "expired": deleted.count, "size": deleted.size},
    )
    outputs = {
        "TotalExpired": str(deleted.count),
        "TotalSize": str(deleted.size),
        EXPIRATION_PARAM: format_duration(age),
        LIMIT_PARAM: str(limit),
    }
    log = (
        f"[expired {deleted.count} artifacts and logs ({deleted.size} bytes) of organisation {ctx.org} "
        f"older than {format_duration(age)}, at most {limit}]\n"
    )
    return TaskOutcome(exit_code="0", outputs=outputs, log=log)


def run_expire_task(
    event: TaskEvent | dict[str, Any], runtime: Runtime, *, time_left_seconds: float | None = None
) -> dict[str, Any]:
    """The ExpireTask Lambda's service: one EXPIRE_ARTIFACTS attempt (claimed, so never twice), then
    the next decision."""
    parsed = event if isinstance(event, TaskEvent) else TaskEvent.model_validate(event)
    return run_task_attempt(
        parsed.request_id,
        parsed.step,
        RunnerKind.EXPIRE,
        run_expire_attempt,
        runtime,
        time_left_seconds=time_left_seconds,
    )
