"""A walk step's commit and the records it writes after it (the step outbox).

``RequestRepository.commit_step`` advances the request with one conditional write and keeps what the
step recorded (task executions, artifacts) on the request as its ``StepOutbox``; ``write_outbox``
then writes those records, and writes them again whenever a replayed call finds them still there.
"""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from formica.engine.usage import RequestUsage
from formica.engine.walk import Decision, JobState, TaskUpdate, WalkState
from formica.store.requests.errors import RequestStoreError
from formica.store.requests.items import ArtifactItem, StepOutbox, now_iso
from formica.store.schema import request_pk, task_sk

__all__ = ["StepCommit", "task_item", "write_outbox"]

_BATCH_LIMIT = 25
_BATCH_ATTEMPTS = 5


class StepCommit(BaseModel):
    """What one walk step writes: the request's new walk state and decision, and task records."""

    walk: WalkState
    decision: Decision
    job_state: JobState
    error_code: str | None = None
    error_message: str | None = None
    task_updates: list[TaskUpdate] = Field(default_factory=list)
    # Items written in the same transaction (the attempt's log record).
    artifacts: list[ArtifactItem] = Field(default_factory=list)
    # Set when this commit starts the walk of a fresh execution (start / continue-as-new).
    execution_name: str | None = None
    # What the step's walk used (its state transitions, the committing invocation's time and
    # requests): added to the request's counters by the same conditional write.
    usage: RequestUsage | None = None


def task_item(request_id: str, update: TaskUpdate, now: str) -> dict[str, Any]:
    """The whole task execution item a TaskUpdate describes (the walk owns every field of it)."""
    item: dict[str, Any] = {
        "pk": {"S": request_pk(request_id)},
        "sk": {"S": task_sk(update.seq)},
        "kind": {"S": "TASK_EXECUTION"},
        "request_id": {"S": request_id},
        "seq": {"N": str(update.seq)},
        "task_type": {"S": update.task_type},
        "task_state": {"S": str(update.task_state)},
        "task_retry": {"N": str(update.task_retry)},
        "job_retry": {"N": str(update.job_retry)},
        "attempts": {"N": str(update.attempts)},
        "polls": {"N": str(update.polls)},
        "exit_code": {"S": update.exit_code},
        "allowed_failure": {"BOOL": update.allowed_failure},
        "updated_at": {"S": now},
    }
    for name in ("error_code", "error_message", "started_at", "ended_at", "note", "log_key"):
        value = getattr(update, name)
        if value is not None:
            item[name] = {"S": value}
    if update.outputs:
        item["outputs_json"] = {"S": json.dumps(update.outputs, separators=(",", ":"))}
    if update.warnings:
        item["warnings_json"] = {"S": json.dumps(update.warnings)}
    if update.exit_codes:
        item["exit_codes_json"] = {"S": json.dumps(update.exit_codes, separators=(",", ":"))}
    return item


def write_outbox(
    client: Any, table: str, request_id: str, outbox: StepOutbox, *, expires_at: int | None = None
) -> None:
    """Write a committed step's task records and artifact items (idempotent: safe to repeat).

    ``expires_at`` (epoch seconds), when given, is the TTL of every item written.

    They follow the step's conditional update instead of sharing a transaction with it: only the
    winner of the step writes them, and the step keeps them (``outbox``) so a replayed call
    (a Lambda retried after dying between the two) writes them again. A DynamoDB transaction
    would do as well in AWS, but moto copies the whole table per transaction, which would make a
    long-polling sensor slower with every poll in ``formica dev``.
    """
    now = now_iso()
    puts = [task_item(request_id, update, now) for update in outbox.task_updates]
    puts.extend(artifact.to_item() for artifact in outbox.artifacts)
    # One item per key: a step may record the same task twice (e.g. failed, then skipped).
    unique = {(item["pk"]["S"], item["sk"]["S"]): item for item in puts}
    if expires_at is not None:
        for item in unique.values():
            item.setdefault("expires_at", {"N": str(expires_at)})
    pending = [{"PutRequest": {"Item": item}} for item in unique.values()]
    try:
        for attempt in range(_BATCH_ATTEMPTS):
            unprocessed: list[dict[str, Any]] = []
            for first in range(0, len(pending), _BATCH_LIMIT):
                response = client.batch_write_item(
                    RequestItems={table: pending[first : first + _BATCH_LIMIT]}
                )
                unprocessed.extend(response.get("UnprocessedItems", {}).get(table, []))
            if not unprocessed:
                return
            pending = unprocessed
            time.sleep(0.05 * 2**attempt)
    except (ClientError, BotoCoreError) as exc:
        raise RequestStoreError(f"could not record step {outbox.step} of {request_id!r}: {exc}") from exc
    raise RequestStoreError(f"could not record step {outbox.step} of {request_id!r}: DynamoDB throttled")
