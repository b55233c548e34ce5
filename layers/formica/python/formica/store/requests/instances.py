"""A task fan-out's instances: one item each under the request's partition (docs/decisions.md, D42).

- instance  ``pk=REQ#{id}``, ``sk=INST#{step:06d}#{index:04d}``; gsi2 ``INSTANCES#RUNNING`` /
            ``{started_at}#{id}#{step}#{index}`` while RUNNING

An instance is created STARTING by the look whose conditional put wins (only that look invokes
it), claimed RUNNING by the invocation that runs it (a replayed invocation finds it claimed and
runs nothing), and ended COMPLETED, FAILED or CANCELLED from RUNNING, once. The request item is
never written by an instance: the fan-out task's step is committed once, by the look that sees
every instance ended.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from formica.store.dynamo import DynamoTable, is_conditional_failure
from formica.store.requests.errors import RequestStoreError
from formica.store.schema import request_pk

INSTANCE_SK_PREFIX = "INST#"
RUNNING_INSTANCES_GSI2PK = "INSTANCES#RUNNING"
"""While an instance runs its item is in this (sparse) gsi2 partition: the sweep finds instances whose
invocation died without ending them, without a scan."""


def instance_sk(step: int, index: int) -> str:
    return f"{INSTANCE_SK_PREFIX}{step:06d}#{index:04d}"


class InstanceState(StrEnum):
    STARTING = "STARTING"
    """Created by a look; its invocation has not claimed it yet."""
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    """It saw the request cancelled or its step moved on (fail_fast) before or while it ran."""


FINAL_INSTANCE_STATES = frozenset({InstanceState.COMPLETED, InstanceState.FAILED, InstanceState.CANCELLED})


class InstanceItem(BaseModel):
    """One instance of a task fan-out: its item, and its attempt's result once it ended."""

    request_id: str
    step: int
    index: int
    task_type: str
    item: str
    """The item as the instance's templates see it (a JSON value other than a string as its JSON text)."""
    item_var: str
    state: InstanceState = InstanceState.STARTING
    exit_code: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)
    log_key: str | None = None
    created_at: str
    started_at: str | None = None
    ended_at: str | None = None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_INSTANCE_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == InstanceState.COMPLETED

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": request_pk(self.request_id)},
            "sk": {"S": instance_sk(self.step, self.index)},
            "kind": {"S": "INSTANCE"},
            "request_id": {"S": self.request_id},
            "step": {"N": str(self.step)},
            "item_index": {"N": str(self.index)},
            "task_type": {"S": self.task_type},
            "item_value": {"S": self.item},
            "item_var": {"S": self.item_var},
            "instance_state": {"S": str(self.state)},
            "created_at": {"S": self.created_at},
        }
        for name in ("exit_code", "error_code", "error_message", "log_key", "started_at", "ended_at"):
            value = getattr(self, name)
            if value is not None:
                item[name] = {"S": value}
        if self.outputs:
            item["outputs_json"] = {"S": json.dumps(self.outputs, separators=(",", ":"))}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> InstanceItem:
        def text(name: str) -> str | None:
            value = item.get(name)
            return None if value is None else str(value["S"])

        return cls(
            request_id=item["request_id"]["S"],
            step=int(item["step"]["N"]),
            index=int(item["item_index"]["N"]),
            task_type=item["task_type"]["S"],
            item=item["item_value"]["S"],
            item_var=item["item_var"]["S"],
            state=InstanceState(item["instance_state"]["S"]),
            exit_code=text("exit_code"),
            error_code=text("error_code"),
            error_message=text("error_message"),
            outputs=json.loads(text("outputs_json") or "{}"),
            log_key=text("log_key"),
            created_at=item["created_at"]["S"],
            started_at=text("started_at"),
            ended_at=text("ended_at"),
        )


class InstanceEnd(BaseModel):
    """What an instance's end records."""

    state: InstanceState
    exit_code: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)
    log_key: str | None = None
    ended_at: str


class InstanceRecords(DynamoTable):
    """The task fan-out methods of ``RequestRepository`` (boto3, the single table)."""

    def _expires_at(self) -> int | None:
        return None

    def put_instance(self, instance: InstanceItem) -> bool:
        """Create an instance STARTING; False when a look created it already (it is not invoked again)."""
        item = instance.to_item()
        expiry = self._expires_at()
        if expiry is not None:
            item["expires_at"] = {"N": str(expiry)}
        try:
            return self._put_if_absent(item)
        except (ClientError, BotoCoreError) as exc:
            what = f"instance {instance.index} of {instance.request_id!r}"
            raise RequestStoreError(f"could not record {what}: {exc}") from exc

    def claim_instance(self, request_id: str, step: int, index: int, started_at: str) -> InstanceItem | None:
        """STARTING -> RUNNING, once: the instance as claimed, or None when it was claimed (or ended)
        before, or never created."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": instance_sk(step, index)}},
                UpdateExpression=(
                    "SET instance_state = :running, started_at = :at, gsi2pk = :gsi2pk, gsi2sk = :gsi2sk"
                ),
                ConditionExpression="instance_state = :starting",
                ExpressionAttributeValues={
                    ":running": {"S": str(InstanceState.RUNNING)},
                    ":starting": {"S": str(InstanceState.STARTING)},
                    ":at": {"S": started_at},
                    ":gsi2pk": {"S": RUNNING_INSTANCES_GSI2PK},
                    ":gsi2sk": {"S": f"{started_at}#{request_id}#{step}#{index}"},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return None
            raise RequestStoreError(f"could not claim instance {index} of {request_id!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise RequestStoreError(f"could not claim instance {index} of {request_id!r}: {exc}") from exc
        return InstanceItem.from_item(response["Attributes"])

    def end_instance(self, request_id: str, step: int, index: int, end: InstanceEnd) -> bool:
        """RUNNING (or STARTING, for an instance cancelled before it ran) -> its end, once: False when
        it had ended already."""
        values: dict[str, Any] = {
            ":state": {"S": str(end.state)},
            ":ended": {"S": end.ended_at},
            ":running": {"S": str(InstanceState.RUNNING)},
            ":starting": {"S": str(InstanceState.STARTING)},
        }
        expression = "SET instance_state = :state, ended_at = :ended"
        fields = {
            "exit_code": end.exit_code,
            "error_code": end.error_code,
            "error_message": end.error_message[:2000] if end.error_message else None,
            "log_key": end.log_key,
        }
        if end.outputs:
            fields["outputs_json"] = json.dumps(end.outputs, separators=(",", ":"))
        for name, value in fields.items():
            if value is not None:
                values[f":{name}"] = {"S": value}
                expression += f", {name} = :{name}"
        expression += " REMOVE gsi2pk, gsi2sk"
        try:
            return self._update_if(
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": instance_sk(step, index)}},
                UpdateExpression=expression,
                ConditionExpression="instance_state IN (:running, :starting)",
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not end instance {index} of {request_id!r}: {exc}") from exc

    def list_instances(self, request_id: str, step: int) -> list[InstanceItem]:
        """The instances of the task fan-out at ``step``, by index (one consistent Query)."""
        try:
            items, _ = self._query_prefix_items(request_pk(request_id), f"{INSTANCE_SK_PREFIX}{step:06d}#")
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not list the instances of {request_id!r}: {exc}") from exc
        return [InstanceItem.from_item(item) for item in items]

    def list_all_instances(self, request_id: str) -> list[InstanceItem]:
        """Every instance of every task fan-out of the request, by step and index (one Query)."""
        try:
            items, _ = self._query_prefix_items(request_pk(request_id), INSTANCE_SK_PREFIX)
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not list the instances of {request_id!r}: {exc}") from exc
        return [InstanceItem.from_item(item) for item in items]

    def running_instances(self, *, max_items: int = 500) -> list[InstanceItem]:
        """Instances of any request still RUNNING, longest running first (gsi2, eventually consistent)."""
        try:
            items = self._gsi2_items(RUNNING_INSTANCES_GSI2PK, max_items=max_items)
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not list running instances: {exc}") from exc
        return [InstanceItem.from_item(item) for item in items]

    def get_instance(self, request_id: str, step: int, index: int) -> InstanceItem | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": instance_sk(step, index)}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not read instance {index} of {request_id!r}: {exc}") from exc
        item = response.get("Item")
        return None if item is None else InstanceItem.from_item(item)
