"""The stored items of a job request and their DynamoDB (de)serialisation.

Items (docs/architecture.md, the table contract):

- job request     ``pk=REQ#{id}``, ``sk=REQ``; gsi1 ``ORG#{org}#REQS`` / ``{created_at}#{id}``;
                  gsi2 ``ORG#{org}#PENDING#{job_type}`` / ``{9999-priority}#{created_at}`` while PENDING
- task execution  ``pk=REQ#{id}``, ``sk=TASK#{seq:04d}``
- artifact        ``pk=REQ#{id}``, ``sk=ART#{artifact_id}``

The walk's state and its last decision ride on the request item as one attribute (``walk_json``),
the records a committed step still has to write as another (``outbox_json``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from formica.engine.routing import TaskState
from formica.engine.usage import RequestUsage
from formica.engine.walk import AttemptResult, Decision, JobState, TaskUpdate, WalkState
from formica.store.schema import (
    REQUEST_SK,
    artifact_sk,
    pending_gsi2pk,
    pending_gsi2sk,
    request_pk,
    requests_gsi1pk,
    requests_gsi1sk,
)
from formica.store.usage import usage_attributes, usage_from_item

__all__ = [
    "ArtifactItem",
    "JobRequestItem",
    "StepOutbox",
    "StoredAttempt",
    "TaskExecutionItem",
    "iso",
    "now_iso",
    "walk_blob",
]

_FINAL_STATES = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


def iso(moment: datetime) -> str:
    """A moment as the table stores timestamps: ISO-8601 UTC with microseconds.

    A naive datetime is refused: ``astimezone`` would read it as the host's local time, and a stamp
    shifted by the host's offset sorts wrong against every other stamp of the table.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a stored timestamp needs an aware datetime, got the naive {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def now_iso() -> str:
    """Now by the wall clock, as the table stores timestamps (``iso``); where a ``Runtime`` is at
    hand, its ``now_iso()`` (the injected clock) is the one to use."""
    return iso(datetime.now(UTC))


class StoredAttempt(BaseModel):
    """A task attempt's result as its runner recorded it, with the step it belongs to."""

    step: int
    result: AttemptResult
    log_key: str | None = None


class _WalkBlob(BaseModel):
    """``walk_json``: the walk state and the last decision, one attribute for one conditional write."""

    walk: WalkState = Field(default_factory=WalkState)
    decision: Decision | None = None
    decision_from_step: int | None = None


def walk_blob(walk: WalkState, decision: Decision | None, decision_from_step: int | None) -> str:
    return _WalkBlob(walk=walk, decision=decision, decision_from_step=decision_from_step).model_dump_json(
        exclude_defaults=True
    )


class StepOutbox(BaseModel):
    """The records a committed step writes after its conditional update (kept for replays)."""

    step: int
    task_updates: list[TaskUpdate] = Field(default_factory=list)
    artifacts: list[ArtifactItem] = Field(default_factory=list)


class JobRequestItem(BaseModel):
    """One job request: what was asked, where its walk is, and how it ended."""

    request_id: str
    org: str
    job_type: str
    job_version: int
    user_id: str = ""
    user_key: str | None = None
    description: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    job_priority: int = 0
    job_state: JobState = JobState.PENDING
    error_code: str | None = None
    error_message: str | None = None
    created_at: str
    updated_at: str
    scheduled_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    # The walk: the step guard, the state, the last decision and the step it answered.
    step: int = 0
    walk: WalkState = Field(default_factory=WalkState)
    decision: Decision | None = None
    decision_from_step: int | None = None
    current_task: str | None = None
    job_retry: int = 0
    # Executions: the current one's name, how many were started (continue-as-new, restarts).
    execution_name: str | None = None
    execution_count: int = 0
    # The attempt being run at ``claimed_step`` and, once known, its result.
    claimed_step: int = 0
    attempt: StoredAttempt | None = None
    task_token: str | None = None
    task_token_step: int | None = None
    cancel_requested_at: str | None = None
    outbox: StepOutbox | None = None
    expires_at: int | None = None
    # Lineage: the request whose FORK_JOB task started this one (None: submitted or scheduled).
    parent_id: str | None = None
    parent_job_type: str | None = None
    fork_task: str | None = None
    fork_depth: int = 0
    # What the walk used so far, counted as it ran (``formica.engine.usage``).
    usage: RequestUsage = Field(default_factory=RequestUsage)

    @property
    def is_final(self) -> bool:
        return self.job_state in _FINAL_STATES

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": request_pk(self.request_id)},
            "sk": {"S": REQUEST_SK},
            "kind": {"S": "JOB_REQUEST"},
            "gsi1pk": {"S": requests_gsi1pk(self.org)},
            "gsi1sk": {"S": requests_gsi1sk(self.created_at, self.request_id)},
            "request_id": {"S": self.request_id},
            "org": {"S": self.org},
            "job_type": {"S": self.job_type},
            "job_version": {"N": str(self.job_version)},
            "user_id": {"S": self.user_id},
            "params_json": {"S": json.dumps(self.params, separators=(",", ":"), default=str)},
            "job_priority": {"N": str(self.job_priority)},
            "job_state": {"S": str(self.job_state)},
            "created_at": {"S": self.created_at},
            "updated_at": {"S": self.updated_at},
            "step": {"N": str(self.step)},
            "walk_json": {"S": walk_blob(self.walk, self.decision, self.decision_from_step)},
            "execution_count": {"N": str(self.execution_count)},
            "claimed_step": {"N": str(self.claimed_step)},
        }
        if self.job_state == JobState.PENDING:
            item["gsi2pk"] = {"S": pending_gsi2pk(self.org, self.job_type)}
            item["gsi2sk"] = {"S": pending_gsi2sk(self.job_priority, self.created_at)}
        optional_strings = {
            "user_key": self.user_key,
            "description": self.description,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "scheduled_at": self.scheduled_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "execution_name": self.execution_name,
            "task_token": self.task_token,
            "cancel_requested_at": self.cancel_requested_at,
            "parent_id": self.parent_id,
            "parent_job_type": self.parent_job_type,
            "fork_task": self.fork_task,
        }
        for name, value in optional_strings.items():
            if value is not None:
                item[name] = {"S": value}
        if self.attempt is not None:
            item["attempt_json"] = {"S": self.attempt.model_dump_json()}
        if self.outbox is not None:
            item["outbox_json"] = {"S": self.outbox.model_dump_json()}
        if self.task_token_step is not None:
            item["task_token_step"] = {"N": str(self.task_token_step)}
        if self.expires_at is not None:
            item["expires_at"] = {"N": str(self.expires_at)}
        if self.fork_depth:
            item["fork_depth"] = {"N": str(self.fork_depth)}
        item.update(usage_attributes(self.usage))
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> JobRequestItem:
        def text(name: str) -> str | None:
            value = item.get(name)
            return None if value is None else str(value["S"])

        def number(name: str) -> int | None:
            value = item.get(name)
            return None if value is None else int(value["N"])

        attempt_json = text("attempt_json")
        outbox_json = text("outbox_json")
        blob = _WalkBlob.model_validate_json(text("walk_json") or "{}")
        return cls(
            request_id=item["request_id"]["S"],
            org=item["org"]["S"],
            job_type=item["job_type"]["S"],
            job_version=int(item["job_version"]["N"]),
            user_id=text("user_id") or "",
            user_key=text("user_key"),
            description=text("description"),
            params=json.loads(text("params_json") or "{}"),
            job_priority=number("job_priority") or 0,
            job_state=JobState(item["job_state"]["S"]),
            error_code=text("error_code"),
            error_message=text("error_message"),
            created_at=item["created_at"]["S"],
            updated_at=item["updated_at"]["S"],
            scheduled_at=text("scheduled_at"),
            started_at=text("started_at"),
            ended_at=text("ended_at"),
            step=number("step") or 0,
            walk=blob.walk,
            decision=blob.decision,
            decision_from_step=blob.decision_from_step,
            current_task=blob.walk.current.task_type if blob.walk.current is not None else None,
            job_retry=blob.walk.job_retry,
            execution_name=text("execution_name"),
            execution_count=number("execution_count") or 0,
            claimed_step=number("claimed_step") or 0,
            attempt=StoredAttempt.model_validate_json(attempt_json) if attempt_json else None,
            task_token=text("task_token"),
            task_token_step=number("task_token_step"),
            cancel_requested_at=text("cancel_requested_at"),
            outbox=StepOutbox.model_validate_json(outbox_json) if outbox_json else None,
            expires_at=number("expires_at"),
            parent_id=text("parent_id"),
            parent_job_type=text("parent_job_type"),
            fork_task=text("fork_task"),
            fork_depth=number("fork_depth") or 0,
            usage=usage_from_item(item),
        )


class TaskExecutionItem(BaseModel):
    """One task execution of a request: a task entered by the walk, with its polls and retries."""

    request_id: str
    seq: int
    task_type: str
    task_state: TaskState
    task_retry: int = 0
    job_retry: int = 0
    attempts: int = 0
    polls: int = 0
    exit_code: str = ""
    exit_codes: list[str] = Field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    allowed_failure: bool = False
    started_at: str | None = None
    ended_at: str | None = None
    updated_at: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)
    log_key: str | None = None
    warnings: list[str] = Field(default_factory=list)
    note: str | None = None

    @classmethod
    def from_update(cls, request_id: str, update: TaskUpdate) -> TaskExecutionItem:
        return cls(request_id=request_id, **update.model_dump())

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> TaskExecutionItem:
        def text(name: str) -> str | None:
            value = item.get(name)
            return None if value is None else str(value["S"])

        def number(name: str) -> int:
            value = item.get(name)
            return 0 if value is None else int(value["N"])

        return cls(
            request_id=item["request_id"]["S"],
            seq=number("seq"),
            task_type=item["task_type"]["S"],
            task_state=TaskState(item["task_state"]["S"]),
            task_retry=number("task_retry"),
            job_retry=number("job_retry"),
            attempts=number("attempts"),
            polls=number("polls"),
            exit_code=text("exit_code") or "",
            exit_codes=json.loads(text("exit_codes_json") or "[]"),
            error_code=text("error_code"),
            error_message=text("error_message"),
            allowed_failure=bool(item.get("allowed_failure", {}).get("BOOL", False)),
            started_at=text("started_at"),
            ended_at=text("ended_at"),
            updated_at=text("updated_at"),
            outputs=json.loads(text("outputs_json") or "{}"),
            log_key=text("log_key"),
            warnings=json.loads(text("warnings_json") or "[]"),
            note=text("note"),
        )


class ArtifactItem(BaseModel):
    """One file a task uploaded to S3 (its key follows the S3 layout contract)."""

    request_id: str
    artifact_id: str
    org: str
    task_type: str
    name: str
    key: str
    size: int
    sha256: str
    content_type: str = "application/octet-stream"
    kind: str = "artifact"  # artifact | log
    created_at: str
    expires_at: int | None = None
    instance: int | None = None
    """The task fan-out instance (its item's index) that uploaded it; None: the task's own attempt."""

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": request_pk(self.request_id)},
            "sk": {"S": artifact_sk(self.artifact_id)},
            "kind": {"S": "ARTIFACT"},
            "request_id": {"S": self.request_id},
            "artifact_id": {"S": self.artifact_id},
            "org": {"S": self.org},
            "task_type": {"S": self.task_type},
            "name": {"S": self.name},
            "key": {"S": self.key},
            "size": {"N": str(self.size)},
            "sha256": {"S": self.sha256},
            "content_type": {"S": self.content_type},
            "artifact_kind": {"S": self.kind},
            "created_at": {"S": self.created_at},
        }
        if self.expires_at is not None:
            item["expires_at"] = {"N": str(self.expires_at)}
        if self.instance is not None:
            item["instance"] = {"N": str(self.instance)}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ArtifactItem:
        return cls(
            request_id=item["request_id"]["S"],
            artifact_id=item["artifact_id"]["S"],
            org=item["org"]["S"],
            task_type=item["task_type"]["S"],
            name=item["name"]["S"],
            key=item["key"]["S"],
            size=int(item["size"]["N"]),
            sha256=item["sha256"]["S"],
            content_type=item["content_type"]["S"],
            kind=item.get("artifact_kind", {}).get("S", "artifact"),
            created_at=item["created_at"]["S"],
            expires_at=int(item["expires_at"]["N"]) if "expires_at" in item else None,
            instance=int(item["instance"]["N"]) if "instance" in item else None,
        )


StepOutbox.model_rebuild()
JobRequestItem.model_rebuild()


CHILD_SK_PREFIX = "CHILD#"
RUNNING_CHILDREN_GSI2PK = "CHILDREN#RUNNING"
"""While a child runs its item is in this (sparse) gsi2 partition: the sweep finds the ends a
parent missed without a scan."""


class ChildItem(BaseModel):
    """A request a FORK_JOB task of ``parent_id`` started, kept under the parent: its lineage, read
    without a scan, and the state the awaiting task checks (updated when the child ends)."""

    parent_id: str
    child_id: str
    job_type: str
    fork_task: str
    step: int
    """The parent's walk step that forked it."""
    index: int | None = None
    """Its item's position, for a child of a fan_out task."""
    job_state: JobState = JobState.PENDING
    error_code: str | None = None
    error_message: str | None = None
    created_at: str
    ended_at: str | None = None

    @property
    def is_final(self) -> bool:
        return self.job_state in _FINAL_STATES

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": request_pk(self.parent_id)},
            "sk": {"S": f"{CHILD_SK_PREFIX}{self.child_id}"},
            "kind": {"S": "CHILD"},
            "parent_id": {"S": self.parent_id},
            "child_id": {"S": self.child_id},
            "job_type": {"S": self.job_type},
            "fork_task": {"S": self.fork_task},
            "step": {"N": str(self.step)},
            "job_state": {"S": str(self.job_state)},
            "created_at": {"S": self.created_at},
        }
        for name in ("error_code", "error_message", "ended_at"):
            value = getattr(self, name)
            if value is not None:
                item[name] = {"S": value}
        if self.index is not None:
            item["item_index"] = {"N": str(self.index)}
        if not self.is_final:
            item["gsi2pk"] = {"S": RUNNING_CHILDREN_GSI2PK}
            item["gsi2sk"] = {"S": f"{self.created_at}#{self.parent_id}#{self.child_id}"}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ChildItem:
        return cls(
            parent_id=item["parent_id"]["S"],
            child_id=item["child_id"]["S"],
            job_type=item["job_type"]["S"],
            fork_task=item["fork_task"]["S"],
            step=int(item["step"]["N"]),
            index=int(item["item_index"]["N"]) if "item_index" in item else None,
            job_state=JobState(item["job_state"]["S"]),
            error_code=item["error_code"]["S"] if "error_code" in item else None,
            error_message=item["error_message"]["S"] if "error_message" in item else None,
            created_at=item["created_at"]["S"],
            ended_at=item["ended_at"]["S"] if "ended_at" in item else None,
        )
