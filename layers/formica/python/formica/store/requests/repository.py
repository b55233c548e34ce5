"""Job requests, their task executions and artifacts in DynamoDB (port, boto3 adapter).

Items (docs/architecture.md, the table contract):

- job request     ``pk=REQ#{id}``, ``sk=REQ``; gsi1 ``ORG#{org}#REQS`` / ``{created_at}#{id}``;
                  gsi2 ``ORG#{org}#PENDING#{job_type}`` / ``{9999-priority}#{created_at}`` while PENDING
- task execution  ``pk=REQ#{id}``, ``sk=TASK#{seq:04d}``
- artifact        ``pk=REQ#{id}``, ``sk=ART#{artifact_id}``

The walk's state (``walk_json``) and its last decision ride on the request item. Every walk step is
committed with a conditional write on ``step`` (``commit_step``), so two writers never both win;
a task attempt is claimed with a conditional write on ``claimed_step`` (``claim_attempt``).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from formica.engine.routing import TaskState
from formica.engine.walk import AttemptResult, Decision, JobState, TaskUpdate, WalkState
from formica.store.dynamo import MAX_LIST_LIMIT, DynamoTable, is_conditional_failure
from formica.store.pagination import Page
from formica.store.schema import (
    ARTIFACT_SK_PREFIX,
    REQUEST_SK,
    TASK_SK_PREFIX,
    artifact_sk,
    pending_gsi2pk,
    pending_gsi2sk,
    request_pk,
    requests_gsi1pk,
    requests_gsi1sk,
    task_sk,
)

__all__ = [
    "ArtifactItem",
    "JobRequestItem",
    "JobState",
    "RequestFinishedError",
    "RequestNotFinishedError",
    "RequestNotFoundError",
    "RequestRepository",
    "RequestStore",
    "RequestStoreError",
    "StepCommit",
    "StepConflictError",
    "TaskExecutionItem",
    "TaskState",
    "now_iso",
]

_BATCH_LIMIT = 25
_BATCH_ATTEMPTS = 5
_FINAL_STATES = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


def now_iso() -> str:
    """Now as the table stores timestamps: ISO-8601 UTC with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class RequestStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while reading or writing requests."""


class RequestNotFoundError(RequestStoreError):
    """No such request (or it belongs to another organisation)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"job request {request_id!r} not found")
        self.request_id = request_id


class StepConflictError(RequestStoreError):
    """The request's step moved (or it was cancelled) since it was read: someone else committed."""

    def __init__(self, request_id: str, expected_step: int) -> None:
        super().__init__(f"job request {request_id!r} is no longer at step {expected_step}")
        self.request_id = request_id
        self.expected_step = expected_step


class RequestNotFinishedError(RequestStoreError):
    """The request is still PENDING or running: it cannot be restarted."""

    def __init__(self, request_id: str, job_state: JobState) -> None:
        super().__init__(f"job request {request_id!r} has not finished: {job_state}")
        self.request_id = request_id
        self.job_state = job_state


class RequestFinishedError(RequestStoreError):
    """The request already reached a final state (COMPLETED, FAILED or CANCELLED)."""

    def __init__(self, request_id: str, job_state: JobState) -> None:
        super().__init__(f"job request {request_id!r} already finished: {job_state}")
        self.request_id = request_id
        self.job_state = job_state


# -- items --------------------------------------------------------------------------------------


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
        )


StepOutbox.model_rebuild()
JobRequestItem.model_rebuild()


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


# -- port ---------------------------------------------------------------------------------------


class RequestStore(ABC):
    """Port: where job requests, task executions and artifacts live."""

    @abstractmethod
    def create(self, request: JobRequestItem) -> None:
        """Store a new request; raises RequestStoreError if its id is taken."""

    @abstractmethod
    def get(self, request_id: str) -> JobRequestItem | None:
        """The request (strongly consistent), or None."""

    @abstractmethod
    def commit_step(self, request_id: str, expected_step: int, commit: StepCommit) -> Decision:
        """Advance the walk from ``expected_step`` to ``expected_step + 1``; StepConflictError if moved.

        Returns the committed decision (its ``step`` is the new step).
        """

    @abstractmethod
    def flush_outbox(self, request_id: str, outbox: StepOutbox) -> None:
        """Write a committed step's task records and artifact items again (replays)."""

    @abstractmethod
    def claim_attempt(self, request_id: str, step: int) -> JobRequestItem | None:
        """Claim the task attempt of ``step``: the request (as claimed) once, None for every later claim."""

    @abstractmethod
    def record_attempt(self, request_id: str, step: int, attempt: StoredAttempt) -> bool:
        """Keep the result of the claimed attempt of ``step``; False if the walk moved on."""

    @abstractmethod
    def set_task_token(self, request_id: str, step: int, token: str) -> bool:
        """Keep the callback token of the container attempt of ``step``; False if the walk moved."""

    @abstractmethod
    def mark_cancelled(self, request_id: str, *, error_code: str, message: str) -> JobRequestItem:
        """Mark the request CANCELLED unless final (RequestFinishedError then)."""

    @abstractmethod
    def set_execution(self, request_id: str, *, expected: str | None, name: str) -> bool:
        """Record ``name`` as the current execution if the current one is still ``expected``."""

    @abstractmethod
    def mark_started(self, request_id: str, *, execution_name: str) -> JobRequestItem:
        """PENDING -> STARTED with the execution's name (RequestFinishedError / conflict otherwise)."""

    @abstractmethod
    def list_tasks(self, request_id: str) -> list[TaskExecutionItem]:
        """The request's task executions in walk order."""

    @abstractmethod
    def update_task(self, request_id: str, seq: int, fields: dict[str, Any]) -> None:
        """Set fields of one task execution record (attempt bookkeeping: log key, warnings)."""

    @abstractmethod
    def cancel_task(self, request_id: str, seq: int, *, error_code: str, ended_at: str) -> bool:
        """Mark a task execution CANCELLED if it exists and has not completed: READY, EXECUTING, or
        FAILED awaiting its retry (conditional); False when it is missing, COMPLETED or SKIPPED."""

    @abstractmethod
    def put_artifact(self, artifact: ArtifactItem) -> None:
        """Record an uploaded file."""

    @abstractmethod
    def list_artifacts(self, request_id: str) -> list[ArtifactItem]:
        """The request's artifacts and logs."""

    def get_for_org(self, org: str, request_id: str) -> JobRequestItem | None:
        """The request if it belongs to ``org``; another organisation's request is None."""
        request = self.get(request_id)
        if request is None or request.org != org:
            return None
        return request

    def is_cancelled(self, request_id: str) -> bool:
        """True once the request was cancelled (runners poll this)."""
        request = self.get(request_id)
        return request is not None and request.job_state == JobState.CANCELLED


# -- adapter ------------------------------------------------------------------------------------


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
    return item


class RequestRepository(DynamoTable, RequestStore):
    """Adapter: requests in the single table. ``client`` defaults to the process's DynamoDB client."""

    def _key(self, request_id: str) -> dict[str, Any]:
        return {"pk": {"S": request_pk(request_id)}, "sk": {"S": REQUEST_SK}}

    # -- requests -------------------------------------------------------------------------------

    def create(self, request: JobRequestItem) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=request.to_item(),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise RequestStoreError(f"job request {request.request_id!r} already exists") from exc
            raise RequestStoreError(f"could not store job request: {exc}") from exc
        except BotoCoreError as exc:
            raise RequestStoreError(f"could not store job request: {exc}") from exc

    def get(self, request_id: str) -> JobRequestItem | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key=self._key(request_id), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not read job request {request_id!r}: {exc}") from exc
        item = response.get("Item")
        return None if item is None else JobRequestItem.from_item(item)

    def list_for_org(
        self,
        org: str,
        *,
        job_type: str | None = None,
        job_state: JobState | str | None = None,
        limit: int = 50,
        next_token: str | None = None,
    ) -> Page[JobRequestItem]:
        """The organisation's requests, newest first, one page at a time (gsi1 Query).

        ``job_type`` / ``job_state`` filter the page (a filtered page may hold fewer than ``limit``
        records and still have a next page). Raises ``InvalidCursorError`` for a foreign cursor.
        """
        equals: dict[str, str] = {}
        if job_type is not None:
            equals["job_type"] = job_type
        if job_state is not None:
            equals["job_state"] = str(job_state)
        try:
            items, cursor = self._gsi1_page(
                requests_gsi1pk(org), limit=limit, next_token=next_token, newest_first=True, equals=equals
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not list job requests: {exc}") from exc
        return Page(records=[JobRequestItem.from_item(item) for item in items], next_token=cursor)

    def list_pending(self, org: str, job_type: str, *, limit: int = 50) -> list[JobRequestItem]:
        """PENDING requests of a job type, highest priority then oldest first (gsi2 Query)."""
        try:
            response = self._client.query(
                TableName=self._table,
                IndexName="gsi2",
                KeyConditionExpression="gsi2pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pending_gsi2pk(org, job_type)}},
                Limit=max(1, min(limit, MAX_LIST_LIMIT)),
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not list pending requests: {exc}") from exc
        return [JobRequestItem.from_item(item) for item in response.get("Items", [])]

    def _update(
        self,
        request_id: str,
        expression: str,
        values: dict[str, Any],
        condition: str,
        names: dict[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """A conditional UpdateItem; None when the condition failed, the new item otherwise."""
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "Key": self._key(request_id),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        if names:
            arguments["ExpressionAttributeNames"] = names
        try:
            response = self._client.update_item(**arguments)
        except ClientError as exc:
            if is_conditional_failure(exc):
                return None
            raise RequestStoreError(f"could not update job request {request_id!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise RequestStoreError(f"could not update job request {request_id!r}: {exc}") from exc
        attributes: dict[str, Any] = response["Attributes"]
        return attributes

    def commit_step(self, request_id: str, expected_step: int, commit: StepCommit) -> Decision:
        now = now_iso()
        new_step = expected_step + 1
        decision = commit.decision.model_copy(update={"step": new_step})
        values: dict[str, Any] = {
            ":expected": {"N": str(expected_step)},
            ":step": {"N": str(new_step)},
            ":walk": {"S": walk_blob(commit.walk, decision, expected_step)},
            ":state": {"S": str(commit.job_state)},
            ":now": {"S": now},
            ":cancelled": {"S": str(JobState.CANCELLED)},
        }
        # Few clauses on purpose: this is the one write of every walk step.
        sets = ["step = :step", "walk_json = :walk", "job_state = :state", "updated_at = :now"]
        removes: list[str] = []
        if commit.job_state.is_final:
            sets.append("ended_at = :now")
        for name in ("error_code", "error_message"):
            value = getattr(commit, name)
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = {"S": value}
        if commit.execution_name is not None:
            sets.append("execution_name = :execution")
            values[":execution"] = {"S": commit.execution_name}
        outbox = StepOutbox(step=new_step, task_updates=commit.task_updates, artifacts=commit.artifacts)
        if outbox.task_updates or outbox.artifacts:
            sets.append("outbox_json = :outbox")
            values[":outbox"] = {"S": outbox.model_dump_json(exclude_defaults=True)}
        else:
            removes.append("outbox_json")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(request_id),
                UpdateExpression=expression,
                # A cancelled request takes no more steps: a late result changes nothing.
                ConditionExpression="step = :expected AND job_state <> :cancelled",
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise StepConflictError(request_id, expected_step) from exc
            raise RequestStoreError(f"could not commit step of {request_id!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise RequestStoreError(f"could not commit step of {request_id!r}: {exc}") from exc
        self.flush_outbox(request_id, outbox)
        return decision

    def flush_outbox(self, request_id: str, outbox: StepOutbox) -> None:
        """Write a committed step's task records and artifact items (idempotent: safe to repeat).

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
        pending = [{"PutRequest": {"Item": item}} for item in unique.values()]
        try:
            for attempt in range(_BATCH_ATTEMPTS):
                unprocessed: list[dict[str, Any]] = []
                for first in range(0, len(pending), _BATCH_LIMIT):
                    response = self._client.batch_write_item(
                        RequestItems={self._table: pending[first : first + _BATCH_LIMIT]}
                    )
                    unprocessed.extend(response.get("UnprocessedItems", {}).get(self._table, []))
                if not unprocessed:
                    return
                pending = unprocessed
                time.sleep(0.05 * 2**attempt)
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not record step {outbox.step} of {request_id!r}: {exc}") from exc
        raise RequestStoreError(f"could not record step {outbox.step} of {request_id!r}: DynamoDB throttled")

    def claim_attempt(self, request_id: str, step: int) -> JobRequestItem | None:
        # The first claimed attempt moves a request from STARTED (its first decision taken) to
        # EXECUTING.
        updated = self._update(
            request_id,
            "SET claimed_step = :step, job_state = :executing",
            {
                ":step": {"N": str(step)},
                ":executing": {"S": str(JobState.EXECUTING)},
                ":started": {"S": str(JobState.STARTED)},
            },
            "step = :step AND claimed_step < :step AND job_state IN (:started, :executing)",
        )
        return None if updated is None else JobRequestItem.from_item(updated)

    def record_attempt(self, request_id: str, step: int, attempt: StoredAttempt) -> bool:
        updated = self._update(
            request_id,
            "SET attempt_json = :attempt",
            {":step": {"N": str(step)}, ":attempt": {"S": attempt.model_dump_json()}},
            "step = :step AND claimed_step = :step",
        )
        return updated is not None

    def set_task_token(self, request_id: str, step: int, token: str) -> bool:
        updated = self._update(
            request_id,
            "SET task_token = :token, task_token_step = :step",
            {":step": {"N": str(step)}, ":token": {"S": token}},
            "step = :step",
        )
        return updated is not None

    def mark_cancelled(self, request_id: str, *, error_code: str, message: str) -> JobRequestItem:
        now = now_iso()
        values = {
            ":cancelled": {"S": str(JobState.CANCELLED)},
            ":completed": {"S": str(JobState.COMPLETED)},
            ":failed": {"S": str(JobState.FAILED)},
            ":now": {"S": now},
            ":code": {"S": error_code},
            ":message": {"S": message},
        }
        updated = self._update(
            request_id,
            "SET job_state = :cancelled, updated_at = :now, ended_at = :now, cancel_requested_at = :now,"
            " error_code = :code, error_message = :message REMOVE gsi2pk, gsi2sk",
            values,
            "attribute_exists(pk) AND NOT job_state IN (:cancelled, :completed, :failed)",
        )
        if updated is not None:
            return JobRequestItem.from_item(updated)
        current = self.get(request_id)
        if current is None:
            raise RequestNotFoundError(request_id)
        raise RequestFinishedError(request_id, current.job_state)

    def set_execution(self, request_id: str, *, expected: str | None, name: str) -> bool:
        values: dict[str, Any] = {":name": {"S": name}, ":now": {"S": now_iso()}, ":one": {"N": "1"}}
        if expected is None:
            condition = "attribute_exists(pk) AND attribute_not_exists(execution_name)"
        else:
            condition = "execution_name = :expected"
            values[":expected"] = {"S": expected}
        updated = self._update(
            request_id,
            "SET execution_name = :name, updated_at = :now ADD execution_count :one",
            values,
            condition,
        )
        return updated is not None

    def mark_started(self, request_id: str, *, execution_name: str) -> JobRequestItem:
        now = now_iso()
        values = {
            ":pending": {"S": str(JobState.PENDING)},
            ":started": {"S": str(JobState.STARTED)},
            ":name": {"S": execution_name},
            ":now": {"S": now},
            ":one": {"N": "1"},
        }
        updated = self._update(
            request_id,
            "SET job_state = :started, execution_name = :name, started_at = :now, updated_at = :now"
            " ADD execution_count :one REMOVE gsi2pk, gsi2sk",
            values,
            "job_state = :pending",
        )
        if updated is not None:
            return JobRequestItem.from_item(updated)
        current = self.get(request_id)
        if current is None:
            raise RequestNotFoundError(request_id)
        raise RequestFinishedError(request_id, current.job_state)

    def reset_for_restart(self, request_id: str, *, execution_name: str, walk: WalkState) -> JobRequestItem:
        """A finished request walks again from the start in a new execution."""
        now = now_iso()
        values = {
            ":completed": {"S": str(JobState.COMPLETED)},
            ":failed": {"S": str(JobState.FAILED)},
            ":cancelled": {"S": str(JobState.CANCELLED)},
            ":started": {"S": str(JobState.STARTED)},
            ":name": {"S": execution_name},
            ":walk": {"S": walk_blob(walk, None, None)},
            ":now": {"S": now},
            ":one": {"N": "1"},
        }
        updated = self._update(
            request_id,
            "SET job_state = :started, execution_name = :name, walk_json = :walk, started_at = :now,"
            " updated_at = :now ADD execution_count :one"
            " REMOVE error_code, error_message, ended_at, attempt_json, outbox_json,"
            " task_token, task_token_step, cancel_requested_at",
            values,
            "job_state IN (:completed, :failed, :cancelled)",
        )
        if updated is not None:
            return JobRequestItem.from_item(updated)
        current = self.get(request_id)
        if current is None:
            raise RequestNotFoundError(request_id)
        raise RequestNotFinishedError(request_id, current.job_state)

    # -- task executions ------------------------------------------------------------------------

    def list_tasks(self, request_id: str) -> list[TaskExecutionItem]:
        return [TaskExecutionItem.from_item(item) for item in self._query_prefix(request_id, TASK_SK_PREFIX)]

    def update_task(self, request_id: str, seq: int, fields: dict[str, Any]) -> None:
        """Set plain fields (strings, lists of strings) on a task execution record."""
        encoded: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "warnings":
                encoded["warnings_json"] = {"S": json.dumps(value)}
            elif isinstance(value, bool):
                encoded[name] = {"BOOL": value}
            elif isinstance(value, int):
                encoded[name] = {"N": str(value)}
            else:
                encoded[name] = {"S": str(value)}
        if not encoded:
            return
        names = {f"#f{i}": name for i, name in enumerate(encoded)}
        values = {f":v{i}": value for i, value in enumerate(encoded.values())}
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": task_sk(seq)}},
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(encoded))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not update task {seq} of {request_id!r}: {exc}") from exc

    def cancel_task(self, request_id: str, seq: int, *, error_code: str, ended_at: str) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": task_sk(seq)}},
                UpdateExpression="SET task_state = :cancelled, error_code = :code, ended_at = :ended",
                ConditionExpression="attribute_exists(pk) AND task_state IN (:ready, :executing, :failed)",
                ExpressionAttributeValues={
                    ":cancelled": {"S": str(TaskState.CANCELLED)},
                    ":code": {"S": error_code},
                    ":ended": {"S": ended_at},
                    ":ready": {"S": str(TaskState.READY)},
                    ":executing": {"S": str(TaskState.EXECUTING)},
                    ":failed": {"S": str(TaskState.FAILED)},
                },
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise RequestStoreError(f"could not cancel task {seq} of {request_id!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise RequestStoreError(f"could not cancel task {seq} of {request_id!r}: {exc}") from exc
        return True

    # -- artifacts ------------------------------------------------------------------------------

    def put_artifact(self, artifact: ArtifactItem) -> None:
        try:
            self._client.put_item(TableName=self._table, Item=artifact.to_item())
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not record artifact {artifact.name!r}: {exc}") from exc

    def list_artifacts(self, request_id: str) -> list[ArtifactItem]:
        return [ArtifactItem.from_item(item) for item in self._query_prefix(request_id, ARTIFACT_SK_PREFIX)]

    def get_artifact(self, request_id: str, artifact_id: str) -> ArtifactItem | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": artifact_sk(artifact_id)}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not read artifact {artifact_id!r}: {exc}") from exc
        item = response.get("Item")
        return None if item is None else ArtifactItem.from_item(item)

    def _query_prefix(self, request_id: str, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        try:
            paginator = self._client.get_paginator("query")
            for page in paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": request_pk(request_id)}, ":prefix": {"S": prefix}},
                ConsistentRead=True,
            ):
                items.extend(page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not query {prefix} items of {request_id!r}: {exc}") from exc
        return items
