"""max_concurrency slots and the admission writes on a request item (port, boto3 adapter).

Items (docs/architecture.md, "Scheduling and concurrency"):

- slot counter  ``pk=ORG#{org}#SLOTS#{job_type}``, ``sk=COUNT``, ``running`` (N);
                gsi1 ``SLOTS`` / ``{org}#{job_type}``: every job type the sweep looks after
- slot holder   ``pk=ORG#{org}#SLOTS#{job_type}``, ``sk=REQ#{request_id}``: this request holds a slot

A request takes its slot in the same transaction that moves it PENDING -> STARTED: the request
update (only if still PENDING), the counter (``ADD running 1``, only if ``running < limit``) and the
holder (only if absent). So a request is STARTED exactly when it holds a slot, the counter equals the
number of holders, and it can never exceed the limit. Release deletes the holder (only if present)
and decrements (only if ``running > 0``) in one transaction: a retried Lambda, a cancel racing the
walk's end, or two ends at the same instant release a slot once. Unlimited job types (limit 0) are
counted too, so lowering a limit later sees the true number running.

The slot partition is separate from the definition's, so deleting a definition (which deletes its
partition) never forgets slots that running requests still hold.
"""

from __future__ import annotations

import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.engine.walk import JobState, WalkState
from formica.store.dynamo import DynamoTable, error_code, is_conditional_failure
from formica.store.requests import (
    JobRequestItem,
    RequestNotFinishedError,
    RequestNotFoundError,
    now_iso,
    walk_blob,
)
from formica.store.schema import GSI1, GSI2, REQUEST_SK, pending_gsi2pk, pending_gsi2sk, request_pk

__all__ = [
    "COUNTER_SK",
    "SLOTS_INDEX",
    "AdmitOutcome",
    "SlotCounter",
    "SlotRepository",
    "SlotStore",
    "SlotStoreError",
    "holder_sk",
    "slots_pk",
]

logger = logging.getLogger(__name__)

COUNTER_SK = "COUNT"
HOLDER_PREFIX = "REQ#"
SLOTS_INDEX = "SLOTS"
"""gsi1pk of every slot counter: the sweep's list of (org, job_type)."""
_CONFLICT_RETRIES = 8
_PENDING_PAGE = 50


def slots_pk(org: str, job_type: str) -> str:
    return f"ORG#{org}#SLOTS#{job_type}"


def holder_sk(request_id: str) -> str:
    return f"{HOLDER_PREFIX}{request_id}"


class SlotStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while reading or writing slots."""


class AdmitOutcome(StrEnum):
    """What an admission attempt did."""

    STARTED = "STARTED"  # PENDING -> STARTED with a slot
    NOT_PENDING = "NOT_PENDING"  # someone else started, cancelled or filtered it first
    NO_SLOT = "NO_SLOT"  # ``limit`` requests of the job type are running
    HELD = "HELD"  # the request still holds a slot from an earlier run (released by the caller)


@dataclass(frozen=True)
class SlotCounter:
    """How many requests of a job type hold a slot."""

    org: str
    job_type: str
    running: int


@dataclass(frozen=True)
class SlotWaiter:
    """A running request queued for a slot: where its walk waits, and priority order."""

    request_id: str
    step: int


def slot_wait_gsi2pk(org: str, job_type: str) -> str:
    return f"ORG#{org}#SLOTWAIT#{job_type}"


class SlotStore(ABC):
    """Port: slots of job types, and the admission writes on request items."""

    @abstractmethod
    def admit(
        self, request: JobRequestItem, *, execution_name: str, limit: int, started_at: str | None = None
    ) -> AdmitOutcome:
        """PENDING -> STARTED (named ``execution_name``, ``started_at`` or now) and take a slot,
        atomically; limit 0: no cap."""

    @abstractmethod
    def release(self, org: str, job_type: str, request_id: str) -> bool:
        """Give the request's slot back; False when it holds none (released already, or never)."""

    @abstractmethod
    def register(self, org: str, job_type: str) -> None:
        """Make sure the sweep looks after this job type (creates its counter at 0 if absent)."""

    @abstractmethod
    def counters(self) -> list[SlotCounter]:
        """Every registered job type with its count (gsi1, eventually consistent)."""

    @abstractmethod
    def running(self, org: str, job_type: str) -> int:
        """The job type's count (strongly consistent)."""

    @abstractmethod
    def holders(self, org: str, job_type: str) -> list[str]:
        """The request ids holding a slot of the job type."""

    @abstractmethod
    def pending(self, org: str, job_type: str, *, max_items: int = 500) -> Iterator[JobRequestItem]:
        """PENDING requests of the job type, highest priority then oldest first (gsi2), lazily."""

    @abstractmethod
    def mark_filtered(self, request_id: str, *, error_code: str, message: str) -> bool:
        """PENDING -> FAILED without running (skip_if); False when it was no longer PENDING."""

    @abstractmethod
    def make_due(self, request_id: str, *, scheduled_at: str) -> bool:
        """Move a PENDING request's ``scheduled_at`` (trigger now); False when no longer PENDING."""

    @abstractmethod
    def requeue(self, request: JobRequestItem, *, walk: WalkState) -> JobRequestItem:
        """A finished request back to PENDING, to walk again from the start (restart)."""

    # -- a running request that gave its slot back (a pause, an approval) takes one again --------

    @abstractmethod
    def take(self, org: str, job_type: str, request_id: str, *, limit: int) -> bool:
        """Take a slot for a request that is already running; True when it holds one now (taken,
        or held already), False when ``limit`` requests of the job type hold one."""

    @abstractmethod
    def wait_for_slot(self, request: JobRequestItem, step: int, answer: str) -> bool:
        """Queue the request, waiting at ``step``, for the next free slot, with the ``answer`` its
        walk gets then; False when the walk is no longer at that step."""

    @abstractmethod
    def slot_waiters(self, org: str, job_type: str, *, max_items: int = 100) -> list[SlotWaiter]:
        """The job type's requests queued for a slot, highest priority then oldest first (gsi2)."""

    @abstractmethod
    def stop_waiting_for_slot(self, request_id: str, step: int) -> str | None:
        """Take the request off the queue (once): the answer it was queued with, None when it was
        not queued at that step (served or cancelled already)."""


def _reasons(exc: ClientError) -> list[str]:
    reasons = exc.response.get("CancellationReasons") or []
    return [str(reason.get("Code", "None")) for reason in reasons]


def _conflicted(reasons: list[str]) -> bool:
    """Cancelled because another transaction touched the same item (the counter): try again."""
    return "ConditionalCheckFailed" not in reasons and any(
        code in ("TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded")
        for code in reasons
    )


def _pause(attempt: int) -> None:
    time.sleep(min(0.5, 0.02 * 2**attempt) * (0.5 + random.random()))


class SlotRepository(DynamoTable, SlotStore):
    """Adapter: slots in the single table. ``client`` defaults to the process's DynamoDB client."""

    def _counter_key(self, org: str, job_type: str) -> dict[str, Any]:
        return {"pk": {"S": slots_pk(org, job_type)}, "sk": {"S": COUNTER_SK}}

    def _holder_key(self, org: str, job_type: str, request_id: str) -> dict[str, Any]:
        return {"pk": {"S": slots_pk(org, job_type)}, "sk": {"S": holder_sk(request_id)}}

    def _request_key(self, request_id: str) -> dict[str, Any]:
        return {"pk": {"S": request_pk(request_id)}, "sk": {"S": REQUEST_SK}}

    def _registry_fields(self, org: str, job_type: str, now: str) -> tuple[str, dict[str, Any]]:
        expression = (
            "SET gsi1pk = :index, gsi1sk = :entry, kind = :kind, org = :org, job_type = :job_type,"
            " updated_at = :now"
        )
        values = {
            ":index": {"S": SLOTS_INDEX},
            ":entry": {"S": f"{org}#{job_type}"},
            ":kind": {"S": "SLOT_COUNTER"},
            ":org": {"S": org},
            ":job_type": {"S": job_type},
            ":now": {"S": now},
        }
        return expression, values

    # -- admission ------------------------------------------------------------------------------

    def admit(
        self, request: JobRequestItem, *, execution_name: str, limit: int, started_at: str | None = None
    ) -> AdmitOutcome:
        now = started_at or now_iso()
        org, job_type = request.org, request.job_type
        # The request's side mirrors RequestRepository.mark_started (PENDING -> STARTED).
        start_request = {
            "Update": {
                "TableName": self._table,
                "Key": self._request_key(request.request_id),
                "UpdateExpression": "SET job_state = :started, execution_name = :name, started_at = :now,"
                " updated_at = :now ADD execution_count :one REMOVE gsi2pk, gsi2sk",
                "ConditionExpression": "job_state = :pending",
                "ExpressionAttributeValues": {
                    ":pending": {"S": str(JobState.PENDING)},
                    ":started": {"S": str(JobState.STARTED)},
                    ":name": {"S": execution_name},
                    ":now": {"S": now},
                    ":one": {"N": "1"},
                },
            }
        }
        take_slot, holder = self._slot_writes(org, job_type, request.request_id, limit=limit, now=now)
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._client.transact_write_items(TransactItems=[start_request, take_slot, holder])
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise SlotStoreError(
                        f"could not admit job request {request.request_id!r}: {exc}"
                    ) from exc
                reasons = _reasons(exc)
                if _conflicted(reasons) and attempt + 1 < _CONFLICT_RETRIES:
                    _pause(attempt)
                    continue
                return self._refusal(request, reasons)
            except BotoCoreError as exc:
                raise SlotStoreError(f"could not admit job request {request.request_id!r}: {exc}") from exc
            return AdmitOutcome.STARTED
        return AdmitOutcome.NO_SLOT  # pragma: no cover - the loop always returns

    def _refusal(self, request: JobRequestItem, reasons: list[str]) -> AdmitOutcome:
        failed = [code == "ConditionalCheckFailed" for code in reasons]
        if len(failed) == 3:
            if failed[0]:
                return AdmitOutcome.NOT_PENDING
            if failed[1]:
                return AdmitOutcome.NO_SLOT
            if failed[2]:
                return AdmitOutcome.HELD
        # No reasons (a conflicting transaction, or a client that drops them): read what is true.
        current = self._get(self._request_key(request.request_id))
        if current is None or current.get("job_state", {}).get("S") != str(JobState.PENDING):
            return AdmitOutcome.NOT_PENDING
        return AdmitOutcome.NO_SLOT

    def release(self, org: str, job_type: str, request_id: str) -> bool:
        now = now_iso()
        remove_holder = {
            "Delete": {
                "TableName": self._table,
                "Key": self._holder_key(org, job_type, request_id),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        give_back = {
            "Update": {
                "TableName": self._table,
                "Key": self._counter_key(org, job_type),
                "UpdateExpression": "SET updated_at = :now ADD running :minus",
                "ConditionExpression": "running > :zero",
                "ExpressionAttributeValues": {":now": {"S": now}, ":minus": {"N": "-1"}, ":zero": {"N": "0"}},
            }
        }
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._client.transact_write_items(TransactItems=[remove_holder, give_back])
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise SlotStoreError(f"could not release the slot of {request_id!r}: {exc}") from exc
                reasons = _reasons(exc)
                if _conflicted(reasons) and attempt + 1 < _CONFLICT_RETRIES:
                    _pause(attempt)
                    continue
                if reasons[:1] != ["None"]:
                    return False  # not held: released already (a retry, a cancel racing the end)
                # Held while the count is 0 cannot happen through this class; drop the holder.
                logger.error(
                    "slot holder without a count", extra={"request_id": request_id, "job_type": job_type}
                )
                self._delete(self._holder_key(org, job_type, request_id))
                return False
            except BotoCoreError as exc:
                raise SlotStoreError(f"could not release the slot of {request_id!r}: {exc}") from exc
            return True
        return False  # pragma: no cover - the loop always returns

    def register(self, org: str, job_type: str) -> None:
        registry, values = self._registry_fields(org, job_type, now_iso())
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._counter_key(org, job_type),
                UpdateExpression=registry + " ADD running :zero",
                ExpressionAttributeValues={**values, ":zero": {"N": "0"}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise SlotStoreError(f"could not register job type {job_type!r}: {exc}") from exc

    # -- reads ----------------------------------------------------------------------------------

    def counters(self) -> list[SlotCounter]:
        found: list[SlotCounter] = []
        try:
            paginator = self._client.get_paginator("query")
            for page in paginator.paginate(
                TableName=self._table,
                IndexName=GSI1,
                KeyConditionExpression="gsi1pk = :index",
                ExpressionAttributeValues={":index": {"S": SLOTS_INDEX}},
            ):
                found.extend(
                    SlotCounter(
                        org=item["org"]["S"],
                        job_type=item["job_type"]["S"],
                        running=int(item.get("running", {}).get("N", "0")),
                    )
                    for item in page.get("Items", [])
                )
        except (ClientError, BotoCoreError) as exc:
            raise SlotStoreError(f"could not list slot counters: {exc}") from exc
        return found

    def running(self, org: str, job_type: str) -> int:
        item = self._get(self._counter_key(org, job_type))
        return 0 if item is None else int(item.get("running", {}).get("N", "0"))

    def holders(self, org: str, job_type: str) -> list[str]:
        found: list[str] = []
        try:
            paginator = self._client.get_paginator("query")
            for page in paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={
                    ":pk": {"S": slots_pk(org, job_type)},
                    ":prefix": {"S": HOLDER_PREFIX},
                },
                ConsistentRead=True,
            ):
                found.extend(item["request_id"]["S"] for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise SlotStoreError(f"could not list the slot holders of {job_type!r}: {exc}") from exc
        return found

    def pending(self, org: str, job_type: str, *, max_items: int = 500) -> Iterator[JobRequestItem]:
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI2,
            "KeyConditionExpression": "gsi2pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pending_gsi2pk(org, job_type)}},
            "Limit": _PENDING_PAGE,
        }
        seen = 0
        while seen < max_items:
            try:
                page = self._client.query(**arguments)
            except (ClientError, BotoCoreError) as exc:
                raise SlotStoreError(f"could not list pending requests of {job_type!r}: {exc}") from exc
            for item in page.get("Items", []):
                seen += 1
                yield JobRequestItem.from_item(item)
                if seen >= max_items:
                    return
            if not page.get("LastEvaluatedKey"):
                return
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- request transitions of admission -------------------------------------------------------

    def mark_filtered(self, request_id: str, *, error_code: str, message: str) -> bool:
        now = now_iso()
        return self._update_request(
            request_id,
            "SET job_state = :failed, error_code = :code, error_message = :message, ended_at = :now,"
            " updated_at = :now REMOVE gsi2pk, gsi2sk",
            {
                ":pending": {"S": str(JobState.PENDING)},
                ":failed": {"S": str(JobState.FAILED)},
                ":code": {"S": error_code},
                ":message": {"S": message[:2000]},
                ":now": {"S": now},
            },
            "job_state = :pending",
        )

    def make_due(self, request_id: str, *, scheduled_at: str) -> bool:
        return self._update_request(
            request_id,
            "SET scheduled_at = :at, updated_at = :now",
            {
                ":pending": {"S": str(JobState.PENDING)},
                ":at": {"S": scheduled_at},
                ":now": {"S": now_iso()},
            },
            "job_state = :pending",
        )

    def requeue(self, request: JobRequestItem, *, walk: WalkState) -> JobRequestItem:
        now = now_iso()
        values = {
            ":completed": {"S": str(JobState.COMPLETED)},
            ":failed": {"S": str(JobState.FAILED)},
            ":cancelled": {"S": str(JobState.CANCELLED)},
            ":pending": {"S": str(JobState.PENDING)},
            ":walk": {"S": walk_blob(walk, None, None)},
            ":now": {"S": now},
            ":zero": {"N": "0"},
            ":gsi2pk": {"S": pending_gsi2pk(request.org, request.job_type)},
            ":gsi2sk": {"S": pending_gsi2sk(request.job_priority, request.created_at)},
        }
        # The fields cleared mirror RequestRepository.reset_for_restart; the request waits in gsi2.
        expression = (
            "SET job_state = :pending, walk_json = :walk, updated_at = :now, job_retry = :zero,"
            " gsi2pk = :gsi2pk, gsi2sk = :gsi2sk"
            " REMOVE decision_json, decision_from_step, error_code, error_message, started_at, ended_at,"
            " attempt_json, task_token, task_token_step, current_task, cancel_requested_at"
        )
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._request_key(request.request_id),
                UpdateExpression=expression,
                ConditionExpression="job_state IN (:completed, :failed, :cancelled)",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise SlotStoreError(f"could not requeue job request {request.request_id!r}: {exc}") from exc
            current = self._get(self._request_key(request.request_id))
            if current is None:
                raise RequestNotFoundError(request.request_id) from exc
            raise RequestNotFinishedError(request.request_id, JobState(current["job_state"]["S"])) from exc
        except BotoCoreError as exc:
            raise SlotStoreError(f"could not requeue job request {request.request_id!r}: {exc}") from exc
        return JobRequestItem.from_item(response["Attributes"])

    # -- retaking a slot -----------------------------------------------------------------------

    def take(self, org: str, job_type: str, request_id: str, *, limit: int) -> bool:
        take_slot, holder = self._slot_writes(org, job_type, request_id, limit=limit, now=now_iso())
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._client.transact_write_items(TransactItems=[take_slot, holder])
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise SlotStoreError(f"could not take a slot for {request_id!r}: {exc}") from exc
                reasons = _reasons(exc)
                if _conflicted(reasons) and attempt + 1 < _CONFLICT_RETRIES:
                    _pause(attempt)
                    continue
                # The holder's put failed: it holds one already.
                return reasons[1:2] == ["ConditionalCheckFailed"]
            except BotoCoreError as exc:
                raise SlotStoreError(f"could not take a slot for {request_id!r}: {exc}") from exc
            return True
        return False  # pragma: no cover - the loop always returns

    def wait_for_slot(self, request: JobRequestItem, step: int, answer: str) -> bool:
        return self._update_request(
            request.request_id,
            "SET gsi2pk = :gsi2pk, gsi2sk = :gsi2sk, slot_wait_step = :step, slot_wait_answer = :answer",
            {
                ":gsi2pk": {"S": slot_wait_gsi2pk(request.org, request.job_type)},
                ":gsi2sk": {"S": pending_gsi2sk(request.job_priority, request.created_at)},
                ":step": {"N": str(step)},
                ":answer": {"S": answer},
            },
            "step = :step",
        )

    def slot_waiters(self, org: str, job_type: str, *, max_items: int = 100) -> list[SlotWaiter]:
        try:
            response = self._client.query(
                TableName=self._table,
                IndexName=GSI2,
                KeyConditionExpression="gsi2pk = :pk",
                ExpressionAttributeValues={":pk": {"S": slot_wait_gsi2pk(org, job_type)}},
                Limit=max_items,
            )
        except (ClientError, BotoCoreError) as exc:
            raise SlotStoreError(f"could not list the slot queue of {job_type!r}: {exc}") from exc
        return [
            SlotWaiter(request_id=item["request_id"]["S"], step=int(item["slot_wait_step"]["N"]))
            for item in response.get("Items", [])
            if "slot_wait_step" in item
        ]

    def stop_waiting_for_slot(self, request_id: str, step: int) -> str | None:
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._request_key(request_id),
                UpdateExpression="REMOVE gsi2pk, gsi2sk, slot_wait_step, slot_wait_answer",
                ConditionExpression="slot_wait_step = :step",
                ExpressionAttributeValues={":step": {"N": str(step)}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return None
            raise SlotStoreError(f"could not take {request_id!r} off the slot queue: {exc}") from exc
        except BotoCoreError as exc:
            raise SlotStoreError(f"could not take {request_id!r} off the slot queue: {exc}") from exc
        answer: str = response["Attributes"]["slot_wait_answer"]["S"]
        return answer

    # -- helpers --------------------------------------------------------------------------------

    def _slot_writes(
        self, org: str, job_type: str, request_id: str, *, limit: int, now: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The two writes of taking a slot: the counter's (under ``limit``; 0: no cap) and the
        holder's (only if the request holds none)."""
        registry, values = self._registry_fields(org, job_type, now)
        take_slot: dict[str, Any] = {
            "TableName": self._table,
            "Key": self._counter_key(org, job_type),
            "UpdateExpression": registry + " ADD running :one",
            "ExpressionAttributeValues": {**values, ":one": {"N": "1"}},
        }
        if limit > 0:
            take_slot["ConditionExpression"] = "attribute_not_exists(running) OR running < :limit"
            take_slot["ExpressionAttributeValues"][":limit"] = {"N": str(limit)}
        holder = {
            "Put": {
                "TableName": self._table,
                "Item": {
                    **self._holder_key(org, job_type, request_id),
                    "kind": {"S": "SLOT_HOLDER"},
                    "org": {"S": org},
                    "job_type": {"S": job_type},
                    "request_id": {"S": request_id},
                    "acquired_at": {"S": now},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        return {"Update": take_slot}, holder

    def _update_request(
        self, request_id: str, expression: str, values: dict[str, Any], condition: str
    ) -> bool:
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._request_key(request_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise SlotStoreError(f"could not update job request {request_id!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise SlotStoreError(f"could not update job request {request_id!r}: {exc}") from exc
        return True

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise SlotStoreError(f"could not read {key['pk']['S']!r}: {exc}") from exc
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _delete(self, key: dict[str, Any]) -> None:
        try:
            self._client.delete_item(TableName=self._table, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise SlotStoreError(f"could not delete {key['sk']['S']!r}: {exc}") from exc
