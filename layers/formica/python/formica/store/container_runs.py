"""Container runs: one item per launched container attempt, the bridge between a waiting Launch state
and the container that will report back.

Item (docs/architecture.md, the table contract): ``pk=REQ#{request_id}``, ``sk=RUN#{step:010d}``, and
while the run is LAUNCHED (sparse) ``gsi2pk=RUNS#LAUNCHED``, ``gsi2sk={created_at}#{request_id}#{step}``
so the reconciler finds unfinished runs, oldest first, with one Query.

``finish`` is a conditional write (status LAUNCHED -> FINISHED): of a STOPPED event, a duplicate of it,
the reconciler and a cancellation, exactly one wins and only the winner sends the task token back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from formica.store.dynamo import DynamoTable, is_conditional_failure
from formica.store.schema import GSI2, request_pk

RUN_SK_PREFIX = "RUN#"
LAUNCHED_GSI2PK = "RUNS#LAUNCHED"

ContainerRuntimeName = Literal["ecs", "eks", "local"]


class ContainerRunStatus(StrEnum):
    LAUNCHED = "LAUNCHED"
    FINISHED = "FINISHED"


class ContainerRunStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while reading or writing container runs."""


def run_pk(request_id: str) -> str:
    return request_pk(request_id)


def run_sk(step: int) -> str:
    return f"{RUN_SK_PREFIX}{step:010d}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class ContainerRunItem(BaseModel):
    """One container attempt: where it runs, the token to answer, and how it ended."""

    request_id: str
    step: int
    runtime: ContainerRuntimeName
    task_token: str
    org: str
    task_type: str
    attempt: int = 1
    status: ContainerRunStatus = ContainerRunStatus.LAUNCHED
    created_at: str
    # After this instant (ISO-8601 UTC) the reconciler stops the container as timed out.
    deadline_at: str | None = None
    ecs_task_arn: str | None = None
    k8s_job_name: str | None = None
    k8s_namespace: str | None = None
    finished_at: str | None = None
    exit_code: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def is_finished(self) -> bool:
        return self.status is ContainerRunStatus.FINISHED

    def gsi2sk(self) -> str:
        return f"{self.created_at}#{self.request_id}#{self.step:010d}"


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(run: ContainerRunItem) -> dict[str, Any]:
    """The DynamoDB item (low-level attribute values) of a run."""
    attributes: dict[str, Any] = {
        "pk": run_pk(run.request_id),
        "sk": run_sk(run.step),
        "kind": "RUN",
        **{key: value for key, value in run.model_dump(mode="json").items() if value is not None},
    }
    if run.status is ContainerRunStatus.LAUNCHED:
        attributes["gsi2pk"] = LAUNCHED_GSI2PK
        attributes["gsi2sk"] = run.gsi2sk()
    return {key: _serializer.serialize(value) for key, value in attributes.items()}


def from_item(item: dict[str, Any]) -> ContainerRunItem:
    values = {key: _deserializer.deserialize(value) for key, value in item.items()}
    fields = {key: value for key, value in values.items() if key in ContainerRunItem.model_fields}
    fields["step"] = int(fields["step"])
    fields["attempt"] = int(fields.get("attempt", 1))
    return ContainerRunItem.model_validate(fields)


def handle_fields(
    *,
    task_token: str | None,
    ecs_task_arn: str | None,
    k8s_job_name: str | None,
    k8s_namespace: str | None,
) -> dict[str, str]:
    """The handles ``set_handle`` was given (None means "leave as is")."""
    handles = {
        "task_token": task_token,
        "ecs_task_arn": ecs_task_arn,
        "k8s_job_name": k8s_job_name,
        "k8s_namespace": k8s_namespace,
    }
    return {name: value for name, value in handles.items() if value is not None}


class ContainerRunRepository(ABC):
    """Port: container runs."""

    @abstractmethod
    def create(self, run: ContainerRunItem) -> bool:
        """Store a new run; False (and nothing written) when a run with this request and step exists."""

    @abstractmethod
    def get(self, request_id: str, step: int) -> ContainerRunItem | None:
        """The run of this request and step, strongly consistent; None when absent."""

    @abstractmethod
    def set_handle(
        self,
        request_id: str,
        step: int,
        *,
        task_token: str | None = None,
        ecs_task_arn: str | None = None,
        k8s_job_name: str | None = None,
        k8s_namespace: str | None = None,
    ) -> bool:
        """Record what was launched (or a newer task token) on a LAUNCHED run; False if it is finished."""

    @abstractmethod
    def finish(
        self,
        request_id: str,
        step: int,
        *,
        exit_code: str,
        error_code: str | None,
        error_message: str | None,
    ) -> ContainerRunItem | None:
        """LAUNCHED -> FINISHED with the result. The finished run if THIS call did it, else None."""

    @abstractmethod
    def list_launched(self, *, created_before: str | None = None, limit: int = 100) -> list[ContainerRunItem]:
        """LAUNCHED runs, oldest first, optionally only those created before an ISO instant."""

    @abstractmethod
    def list_for_request(self, request_id: str) -> list[ContainerRunItem]:
        """Every run of a request, by step."""


class DynamoContainerRunRepository(DynamoTable, ContainerRunRepository):
    """Adapter: runs in the single table. ``client`` defaults to the process's DynamoDB client."""

    def _key(self, request_id: str, step: int) -> dict[str, Any]:
        return {"pk": {"S": run_pk(request_id)}, "sk": {"S": run_sk(step)}}

    def create(self, run: ContainerRunItem) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(run),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise ContainerRunStoreError(f"could not store run {run.request_id}/{run.step}: {exc}") from exc
        except BotoCoreError as exc:
            raise ContainerRunStoreError(f"could not store run {run.request_id}/{run.step}: {exc}") from exc
        return True

    def get(self, request_id: str, step: int) -> ContainerRunItem | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key=self._key(request_id, step), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise ContainerRunStoreError(f"could not read run {request_id}/{step}: {exc}") from exc
        item = response.get("Item")
        return from_item(item) if item else None

    def set_handle(
        self,
        request_id: str,
        step: int,
        *,
        task_token: str | None = None,
        ecs_task_arn: str | None = None,
        k8s_job_name: str | None = None,
        k8s_namespace: str | None = None,
    ) -> bool:
        present = handle_fields(
            task_token=task_token,
            ecs_task_arn=ecs_task_arn,
            k8s_job_name=k8s_job_name,
            k8s_namespace=k8s_namespace,
        )
        if not present:
            return True
        names = {f"#{name}": name for name in present}
        values: dict[str, Any] = {f":{name}": {"S": value} for name, value in present.items()}
        values[":launched"] = {"S": ContainerRunStatus.LAUNCHED.value}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(request_id, step),
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in present),
                ConditionExpression="#status = :launched",
                ExpressionAttributeNames={**names, "#status": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise ContainerRunStoreError(f"could not update run {request_id}/{step}: {exc}") from exc
        except BotoCoreError as exc:
            raise ContainerRunStoreError(f"could not update run {request_id}/{step}: {exc}") from exc
        return True

    def finish(
        self,
        request_id: str,
        step: int,
        *,
        exit_code: str,
        error_code: str | None,
        error_message: str | None,
    ) -> ContainerRunItem | None:
        sets = ["#status = :finished", "finished_at = :now", "exit_code = :exit_code"]
        values: dict[str, Any] = {
            ":finished": {"S": ContainerRunStatus.FINISHED.value},
            ":launched": {"S": ContainerRunStatus.LAUNCHED.value},
            ":now": {"S": now_iso()},
            ":exit_code": {"S": exit_code},
        }
        if error_code is not None:
            sets.append("error_code = :error_code")
            values[":error_code"] = {"S": error_code}
        if error_message is not None:
            sets.append("error_message = :error_message")
            values[":error_message"] = {"S": error_message}
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=self._key(request_id, step),
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE gsi2pk, gsi2sk",
                ConditionExpression="#status = :launched",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return None
            raise ContainerRunStoreError(f"could not finish run {request_id}/{step}: {exc}") from exc
        except BotoCoreError as exc:
            raise ContainerRunStoreError(f"could not finish run {request_id}/{step}: {exc}") from exc
        return from_item(response["Attributes"])

    def list_launched(self, *, created_before: str | None = None, limit: int = 100) -> list[ContainerRunItem]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI2,
            "KeyConditionExpression": "gsi2pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": LAUNCHED_GSI2PK}},
            "ScanIndexForward": True,
        }
        if created_before is not None:
            query["KeyConditionExpression"] += " AND gsi2sk < :before"
            query["ExpressionAttributeValues"][":before"] = {"S": created_before}
        runs: list[ContainerRunItem] = []
        try:
            paginator = self._client.get_paginator("query")
            for page in paginator.paginate(**query):
                for item in page.get("Items", []):
                    runs.append(from_item(item))
                    if len(runs) >= limit:
                        return runs
        except (ClientError, BotoCoreError) as exc:
            raise ContainerRunStoreError(f"could not list launched runs: {exc}") from exc
        return runs

    def list_for_request(self, request_id: str) -> list[ContainerRunItem]:
        runs: list[ContainerRunItem] = []
        try:
            paginator = self._client.get_paginator("query")
            for page in paginator.paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
                ExpressionAttributeValues={":pk": {"S": run_pk(request_id)}, ":run": {"S": RUN_SK_PREFIX}},
                ConsistentRead=True,
            ):
                runs.extend(from_item(item) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise ContainerRunStoreError(f"could not list runs of {request_id}: {exc}") from exc
        return runs
