"""The single table and the artifact bucket: one source of truth for their shapes and keys.

Tests, ``formica dev`` and (if it wants) the CDK stack create the table from ``table_definition``;
every repository builds keys with the functions below (docs/architecture.md, "DynamoDB: one table").
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

PK = "pk"
SK = "sk"
GSI1 = "gsi1"
GSI2 = "gsi2"
TTL_ATTRIBUTE = "expires_at"
KEY_ATTRIBUTES = ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")

REQUEST_SK = "REQ"
TASK_SK_PREFIX = "TASK#"
ARTIFACT_SK_PREFIX = "ART#"
DEFINITION_HEAD_SK = "HEAD"
SECONDS_PER_DAY = 86_400


class SchemaError(RuntimeError):
    """The table or bucket could not be created."""


# -- DynamoDB -----------------------------------------------------------------------------------


def table_definition(table_name: str) -> dict[str, Any]:
    """The CreateTable arguments of the Formica table (on-demand, two GSIs projecting ALL)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in KEY_ATTRIBUTES],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": f"{index}pk", "KeyType": "HASH"},
                    {"AttributeName": f"{index}sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in (GSI1, GSI2)
        ],
    }


def create_table(client: Any, table_name: str) -> None:
    """Create the table (if absent), wait for it, and turn on TTL on ``expires_at``."""
    try:
        client.create_table(**table_definition(table_name))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise SchemaError(f"could not create table {table_name!r}: {exc}") from exc
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})
    try:
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    except ClientError as exc:
        # Enabling TTL twice is refused with a ValidationException; the table is usable either way.
        if exc.response.get("Error", {}).get("Code") != "ValidationException":
            raise SchemaError(f"could not enable TTL on {table_name!r}: {exc}") from exc


def create_bucket(client: Any, bucket_name: str, region: str = "us-east-1") -> None:
    """Create the artifact bucket (if absent)."""
    arguments: dict[str, Any] = {"Bucket": bucket_name}
    if region != "us-east-1":
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**arguments)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "BucketAlreadyOwnedByYou",
            "BucketAlreadyExists",
        ):
            raise SchemaError(f"could not create bucket {bucket_name!r}: {exc}") from exc


def expires_at(retention_days: int, now: float | None = None) -> int:
    """The ``expires_at`` (TTL, epoch seconds) of an item written ``now`` and kept ``retention_days``."""
    return int(time.time() if now is None else now) + retention_days * SECONDS_PER_DAY


# -- keys ---------------------------------------------------------------------------------------


def request_pk(request_id: str) -> str:
    return f"REQ#{request_id}"


def task_sk(seq: int) -> str:
    return f"{TASK_SK_PREFIX}{seq:04d}"


def artifact_sk(artifact_id: str) -> str:
    return f"{ARTIFACT_SK_PREFIX}{artifact_id}"


def requests_gsi1pk(org: str) -> str:
    return f"ORG#{org}#REQS"


def requests_gsi1sk(created_at: str, request_id: str) -> str:
    return f"{created_at}#{request_id}"


def pending_gsi2pk(org: str, job_type: str) -> str:
    return f"ORG#{org}#PENDING#{job_type}"


def pending_gsi2sk(priority: int, created_at: str) -> str:
    """Higher priority sorts first; then older first."""
    return f"{9999 - max(0, min(priority, 9999)):04d}#{created_at}"


def definition_pk(org: str, job_type: str) -> str:
    return f"ORG#{org}#JOB#{job_type}"


def definition_version_sk(version: int) -> str:
    return f"V#{version:010d}"


def definitions_gsi1pk(org: str) -> str:
    return f"ORG#{org}#JOBS"


def token_pk(token_sha256: str) -> str:
    return f"TOKEN#{token_sha256}"


def grant_pk(capability_sha256: str) -> str:
    return f"GRANT#{capability_sha256}"


def idempotency_pk(org: str, key: str) -> str:
    return f"ORG#{org}#IDEM#{key}"


# -- S3 -----------------------------------------------------------------------------------------


def task_prefix(org: str, request_id: str, task_type: str) -> str:
    return f"{org}/{request_id}/{task_type}/"


def artifact_key(org: str, request_id: str, task_type: str, path: str) -> str:
    """``{org}/{request_id}/{task_type}/artifacts/{path}`` (path relative, no leading slash)."""
    return f"{task_prefix(org, request_id, task_type)}artifacts/{path.lstrip('/')}"


def instance_artifact_dir(index: int) -> str:
    """``instance-{index}/``: where under its task's artifact prefix an instance of a task fan-out
    (item ``index``) keeps its artifacts, so instances that write the same name keep each their own."""
    return f"instance-{index}/"


def log_key(org: str, request_id: str, task_type: str, attempt: int) -> str:
    """``{org}/{request_id}/{task_type}/logs/attempt-{n}.log``."""
    return f"{task_prefix(org, request_id, task_type)}logs/attempt-{attempt}.log"


def instance_log_key(org: str, request_id: str, task_type: str, step: int, index: int) -> str:
    """``{org}/{request_id}/{task_type}/logs/instances/step-{step}/item-{index}.log``: one instance
    of a task fan-out."""
    return f"{task_prefix(org, request_id, task_type)}logs/instances/step-{step}/item-{index}.log"


def cancel_marker_key(org: str, request_id: str, execution: str | None) -> str:
    """``{org}/{request_id}/_control/cancelled-{execution}``: written when the request is cancelled,
    so a runner that holds no credentials (the SHELL sandbox) learns it through a presigned GET. Per
    execution: a restarted request walks in a new execution, which an old marker does not stop.
    Task types cannot start with ``_``, so no task's keys meet it."""
    return f"{request_prefix(org, request_id)}_control/cancelled-{execution or 'none'}"


def request_prefix(org: str, request_id: str) -> str:
    return f"{org}/{request_id}/"
