"""Job requests, their task executions and artifacts in the single DynamoDB table (boto3).

Every walk step is committed with a conditional write on ``step`` (``commit_step``), so two writers
never both win; a task attempt is claimed with a conditional write on ``claimed_step``
(``claim_attempt``). The items and their keys: ``formica.store.requests.items``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.engine.routing import TaskState
from formica.engine.usage import RequestUsage
from formica.engine.walk import Decision, JobState, WalkState
from formica.store.dynamo import MAX_LIST_LIMIT, DynamoTable, is_conditional_failure
from formica.store.pagination import Page
from formica.store.requests.approvals import ApprovalRecords
from formica.store.requests.errors import (
    RequestFinishedError,
    RequestNotFinishedError,
    RequestNotFoundError,
    RequestStoreError,
    StepConflictError,
)
from formica.store.requests.instances import InstanceRecords
from formica.store.requests.items import (
    CHILD_SK_PREFIX,
    RUNNING_CHILDREN_GSI2PK,
    ArtifactItem,
    ChildItem,
    JobRequestItem,
    StepOutbox,
    StoredAttempt,
    TaskExecutionItem,
    now_iso,
    walk_blob,
)
from formica.store.requests.outbox import StepCommit, write_outbox
from formica.store.schema import (
    ARTIFACT_SK_PREFIX,
    GSI1,
    GSI2,
    REQUEST_SK,
    TASK_SK_PREFIX,
    artifact_sk,
    expires_at,
    pending_gsi2pk,
    request_pk,
    requests_gsi1pk,
    task_sk,
)
from formica.store.usage import usage_adds

__all__ = ["RequestRepository"]


class RequestRepository(ApprovalRecords, InstanceRecords, DynamoTable):
    """Adapter: requests in the single table. ``client`` defaults to the process's DynamoDB client.

    ``retention_days``: the request, its task records, artifact and log items and its children get
    ``expires_at`` (the table's TTL) that many days after each write of them; None: kept forever.
    """

    def __init__(
        self, table_name: str, client: Any | None = None, *, retention_days: int | None = None
    ) -> None:
        super().__init__(table_name, client)
        self._retention_days = retention_days

    def _expires_at(self) -> int | None:
        return None if self._retention_days is None else expires_at(self._retention_days)

    def _key(self, request_id: str) -> dict[str, Any]:
        return {"pk": {"S": request_pk(request_id)}, "sk": {"S": REQUEST_SK}}

    # -- requests -------------------------------------------------------------------------------

    def create(self, request: JobRequestItem) -> None:
        """Store a new request; raises RequestStoreError if its id is taken."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=request.model_copy(update={"expires_at": self._expires_at()}).to_item(),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise RequestStoreError(f"job request {request.request_id!r} already exists") from exc
            raise RequestStoreError(f"could not store job request: {exc}") from exc
        except BotoCoreError as exc:
            raise RequestStoreError(f"could not store job request: {exc}") from exc

    def get(self, request_id: str) -> JobRequestItem | None:
        """The request (strongly consistent), or None."""
        try:
            response = self._client.get_item(
                TableName=self._table, Key=self._key(request_id), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not read job request {request_id!r}: {exc}") from exc
        item = response.get("Item")
        return None if item is None else JobRequestItem.from_item(item)

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

    def count_by_job_type_and_state(self, org: str, job_type: str, states: Iterable[str]) -> int:
        """How many of ``org``'s requests of ``job_type`` are in one of ``states`` (templates'
        ``CountByJobTypeAndState``): never another organisation's, every key starts with ``org``.

        PENDING is counted on its own index (gsi2, the pending requests of the job type); the other
        states by reading the organisation's request list (gsi1) with a filter, every page, counted
        by DynamoDB (``Select=COUNT``): the cost grows with the requests the organisation keeps.
        """
        wanted = {str(state) for state in states}
        total = 0
        try:
            if str(JobState.PENDING) in wanted:
                total += self._count(
                    {
                        "IndexName": GSI2,
                        "KeyConditionExpression": "gsi2pk = :pk",
                        "ExpressionAttributeValues": {":pk": {"S": pending_gsi2pk(org, job_type)}},
                    }
                )
            others = sorted(wanted - {str(JobState.PENDING)})
            if others:
                values: dict[str, Any] = {":pk": {"S": requests_gsi1pk(org)}, ":jt": {"S": job_type}}
                names = []
                for index, state in enumerate(others):
                    values[f":s{index}"] = {"S": state}
                    names.append(f":s{index}")
                total += self._count(
                    {
                        "IndexName": GSI1,
                        "KeyConditionExpression": "gsi1pk = :pk",
                        "FilterExpression": f"job_type = :jt AND job_state IN ({', '.join(names)})",
                        "ExpressionAttributeValues": values,
                    }
                )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not count job requests: {exc}") from exc
        return total

    def _count(self, query: dict[str, Any]) -> int:
        """``Select=COUNT`` over every page of one Query."""
        count = 0
        start: dict[str, Any] | None = None
        while True:
            page: dict[str, Any] = {"TableName": self._table, "Select": "COUNT", **query}
            if start is not None:
                page["ExclusiveStartKey"] = start
            response = self._client.query(**page)
            count += int(response.get("Count", 0))
            start = response.get("LastEvaluatedKey")
            if not start:
                return count

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
        """Advance the walk from ``expected_step`` to ``expected_step + 1``; StepConflictError if moved.

        Returns the committed decision (its ``step`` is the new step).
        """
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
        expiry = self._expires_at()
        if expiry is not None:  # a walking request is kept: each step moves its expiry on
            sets.append("expires_at = :expires")
            values[":expires"] = {"N": str(expiry)}
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
        if commit.usage is not None:
            adds, usage_values = usage_adds(commit.usage)
            if adds:
                expression += " ADD " + ", ".join(adds)
                values.update(usage_values)
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

    def add_usage(self, request_id: str, usage: RequestUsage) -> bool:
        """Add usage counted outside a step's commit (what an invocation used after it, or without
        one) to the request's counters; False when the request does not exist."""
        adds, values = usage_adds(usage)
        if not adds:
            return True
        try:
            return self._update_if(
                Key=self._key(request_id),
                UpdateExpression="ADD " + ", ".join(adds),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not add usage to {request_id!r}: {exc}") from exc

    def flush_outbox(self, request_id: str, outbox: StepOutbox) -> None:
        """Write a committed step's task records and artifact items (after ``commit_step``, and again
        on replays): ``outbox.write_outbox``."""
        write_outbox(self._client, self._table, request_id, outbox, expires_at=self._expires_at())

    def claim_attempt(self, request_id: str, step: int) -> JobRequestItem | None:
        """Claim the task attempt of ``step``: the request (as claimed) once, None for every later claim."""
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

    def claim_wait(self, request_id: str, step: int) -> JobRequestItem | None:
        """Claim the wait at ``step`` of a PAUSED request, or of one waiting for a slot (its answer
        is then recorded like an attempt's result): the request once, None for every later claim;
        its state stays as it is."""
        updated = self._update(
            request_id,
            "SET claimed_step = :step",
            {
                ":step": {"N": str(step)},
                ":paused": {"S": str(JobState.PAUSED)},
                ":executing": {"S": str(JobState.EXECUTING)},
            },
            "step = :step AND claimed_step < :step AND job_state IN (:paused, :executing)",
        )
        return None if updated is None else JobRequestItem.from_item(updated)

    def record_attempt(self, request_id: str, step: int, attempt: StoredAttempt) -> bool:
        """Keep the result of the claimed attempt of ``step``; False if the walk moved on."""
        updated = self._update(
            request_id,
            "SET attempt_json = :attempt",
            {":step": {"N": str(step)}, ":attempt": {"S": attempt.model_dump_json()}},
            "step = :step AND claimed_step = :step",
        )
        return updated is not None

    def set_task_token(self, request_id: str, step: int, token: str) -> bool:
        """Keep the callback token of the container attempt of ``step``; False if the walk moved."""
        updated = self._update(
            request_id,
            "SET task_token = :token, task_token_step = :step",
            {":step": {"N": str(step)}, ":token": {"S": token}},
            "step = :step",
        )
        return updated is not None

    def mark_cancelled(self, request_id: str, *, error_code: str, message: str) -> JobRequestItem:
        """Mark the request CANCELLED unless final (RequestFinishedError then)."""
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
        """Record ``name`` as the current execution if the current one is still ``expected``."""
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
        """PENDING -> STARTED with the execution's name (RequestFinishedError / conflict otherwise)."""
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
        """The request's task executions in walk order."""
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

    def mark_task_executing(self, request_id: str, seq: int) -> bool:
        """A task execution's first attempt started: READY -> EXECUTING (conditional); False when the
        record is missing or no longer READY."""
        try:
            return self._update_if(
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": task_sk(seq)}},
                UpdateExpression="SET task_state = :executing",
                ConditionExpression="attribute_exists(pk) AND task_state = :ready",
                ExpressionAttributeValues={
                    ":executing": {"S": str(TaskState.EXECUTING)},
                    ":ready": {"S": str(TaskState.READY)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not mark task {seq} of {request_id!r} executing: {exc}") from exc

    def cancel_task(
        self,
        request_id: str,
        seq: int,
        *,
        error_code: str,
        ended_at: str,
        attempts: int | None = None,
        log_key: str | None = None,
    ) -> bool:
        """Mark a task execution CANCELLED if it exists and has not completed: READY, EXECUTING,
        FAILED awaiting its retry, PAUSED or MANUAL_APPROVAL_REQUIRED (conditional); False when it
        is missing, COMPLETED or SKIPPED. ``attempts``: its attempts, the cancelled one counted;
        ``log_key``: where the cancelled attempt's log is (as a committed attempt's record names it)."""
        expression = "SET task_state = :cancelled, error_code = :code, ended_at = :ended"
        counted: dict[str, Any] = {}
        if attempts is not None:
            expression += ", attempts = :attempts"
            counted[":attempts"] = {"N": str(attempts)}
        if log_key is not None:
            expression += ", log_key = :log_key"
            counted[":log_key"] = {"S": log_key}
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": task_sk(seq)}},
                UpdateExpression=expression,
                ConditionExpression=(
                    "attribute_exists(pk) AND task_state IN (:ready, :executing, :failed, :paused, :waiting)"
                ),
                ExpressionAttributeValues={
                    ":cancelled": {"S": str(TaskState.CANCELLED)},
                    ":code": {"S": error_code},
                    ":ended": {"S": ended_at},
                    ":ready": {"S": str(TaskState.READY)},
                    ":executing": {"S": str(TaskState.EXECUTING)},
                    ":failed": {"S": str(TaskState.FAILED)},
                    ":paused": {"S": str(TaskState.PAUSED)},
                    ":waiting": {"S": str(TaskState.MANUAL_APPROVAL_REQUIRED)},
                    **counted,
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

    # -- children (FORK_JOB) ----------------------------------------------------------------------

    def put_child(self, child: ChildItem) -> bool:
        """Record a forked child under its parent; False when that child is already recorded."""
        item = child.to_item()
        expiry = self._expires_at()
        if expiry is not None:
            item["expires_at"] = {"N": str(expiry)}
        return self._put_once(item, f"child {child.child_id!r}")

    def list_children(self, parent_id: str) -> list[ChildItem]:
        """The requests the parent's FORK_JOB tasks started, in the order of their ids."""
        return [ChildItem.from_item(item) for item in self._query_prefix(parent_id, CHILD_SK_PREFIX)]

    def running_children(self, *, max_items: int = 500) -> list[ChildItem]:
        """Children of any parent not yet marked ended, oldest first (gsi2, eventually consistent)."""
        try:
            items = self._gsi2_items(RUNNING_CHILDREN_GSI2PK, max_items=max_items)
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not list running children: {exc}") from exc
        return [ChildItem.from_item(item) for item in items]

    def count_children(self, parent_id: str) -> int:
        """How many children the parent has forked (one Query, Select=COUNT)."""
        try:
            _, total = self._query_prefix_items(request_pk(parent_id), CHILD_SK_PREFIX, count=True)
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not count the children of {parent_id!r}: {exc}") from exc
        return total

    def child_ended(
        self,
        parent_id: str,
        child_id: str,
        state: JobState,
        error_code: str | None,
        error_message: str | None,
    ) -> bool:
        """Mark a child's end on its parent (once: False when it was already marked or is unknown)."""
        values: dict[str, Any] = {
            ":state": {"S": str(state)},
            ":ended": {"S": now_iso()},
            ":pending": {"S": str(JobState.PENDING)},
            ":started": {"S": str(JobState.STARTED)},
            ":executing": {"S": str(JobState.EXECUTING)},
        }
        expression = "SET job_state = :state, ended_at = :ended"
        for name, value in (("error_code", error_code), ("error_message", error_message)):
            if value is not None:
                values[f":{name}"] = {"S": value[:2000]}
                expression += f", {name} = :{name}"
        expression += " REMOVE gsi2pk, gsi2sk"
        try:
            return self._update_if(
                Key={"pk": {"S": request_pk(parent_id)}, "sk": {"S": f"{CHILD_SK_PREFIX}{child_id}"}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND job_state IN (:pending, :started, :executing)",
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not mark child {child_id!r} ended: {exc}") from exc

    def put_artifact(self, artifact: ArtifactItem) -> None:
        """Record an uploaded file."""
        try:
            stamped = artifact.model_copy(update={"expires_at": artifact.expires_at or self._expires_at()})
            self._client.put_item(TableName=self._table, Item=stamped.to_item())
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not record artifact {artifact.name!r}: {exc}") from exc

    def list_artifacts(self, request_id: str) -> list[ArtifactItem]:
        """The request's artifacts and logs."""
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
        try:
            items, _ = self._query_prefix_items(request_pk(request_id), prefix)
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not query {prefix} items of {request_id!r}: {exc}") from exc
        return items
