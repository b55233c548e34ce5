"""An invocation's meter counts its DynamoDB and S3 requests through the process's clients, and a
request item's usage counters add up atomically."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from formica.engine.usage import LambdaUsage, RequestUsage
from formica.settings import reset_settings
from formica.store.aws import get_client, reset_clients
from formica.store.requests import JobRequestItem, RequestRepository, now_iso
from formica.store.schema import create_bucket
from formica.store.usage import InvocationMeter, metering, usage_from_item

from tests.integration.store.conftest import TABLE


@pytest.fixture
def clients(ddb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    monkeypatch.setenv("FORMICA_REGION", "us-east-1")
    monkeypatch.setenv("FORMICA_TABLE_NAME", TABLE)
    monkeypatch.setenv("FORMICA_BUCKET_NAME", "usage-bucket")
    monkeypatch.delenv("FORMICA_AWS_ENDPOINT_URL", raising=False)
    reset_settings()
    reset_clients()
    s3 = get_client("s3")
    create_bucket(s3, "usage-bucket", "us-east-1")
    yield get_client("dynamodb"), s3
    reset_clients()
    reset_settings()


def test_meter_counts_requests_by_price_tier(clients: tuple[Any, Any]) -> None:
    dynamodb, s3 = clients
    key = {"pk": {"S": "X"}, "sk": {"S": "Y"}}
    with metering("advance", memory_mb=512) as meter:
        dynamodb.put_item(TableName=TABLE, Item=key)
        dynamodb.get_item(TableName=TABLE, Key=key)
        dynamodb.batch_write_item(
            RequestItems={
                TABLE: [{"PutRequest": {"Item": {"pk": {"S": f"B{i}"}, "sk": {"S": "B"}}}} for i in range(3)]
            }
        )
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "T1"}, "sk": {"S": "T"}}}},
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "T2"}, "sk": {"S": "T"}}}},
            ]
        )
        s3.put_object(Bucket="usage-bucket", Key="a", Body=b"x")
        s3.get_object(Bucket="usage-bucket", Key="a")["Body"].read()
        s3.generate_presigned_url("get_object", Params={"Bucket": "usage-bucket", "Key": "a"})
        s3.delete_object(Bucket="usage-bucket", Key="a")
        taken = meter.take()
    # Outside a meter nothing is counted (and nothing fails)
    dynamodb.get_item(TableName=TABLE, Key=key)
    assert (taken.dynamodb_read_units, taken.dynamodb_write_units) == (1, 1 + 3 + 2 * 2)
    assert (taken.s3_write_requests, taken.s3_read_requests) == (1, 1)  # presign and delete are free
    assert taken.lambdas["advance"].invocations == 1


def test_meter_bills_the_whole_invocation_once_rounded_up() -> None:
    now = [0.0]
    meter = InvocationMeter("http_task", 256, clock=lambda: now[0])
    now[0] = 0.0104  # 10.4 ms: billed 11
    first = meter.take()
    now[0] = 0.0209  # 20.9 ms in all: billed 21, 10 more
    second = meter.take()
    assert first.lambdas["http_task"] == LambdaUsage(invocations=1, mb_ms=11 * 256)
    assert second.lambdas["http_task"] == LambdaUsage(invocations=0, mb_ms=10 * 256)
    meter.give_back(RequestUsage(dynamodb_write_units=2))
    assert meter.take().dynamodb_write_units == 2


def test_usage_adds_up_on_the_request_item(repo: RequestRepository, ddb: Any) -> None:
    now = now_iso()
    repo.create(
        JobRequestItem(
            request_id="r1", org="acme", job_type="j", job_version=1, created_at=now, updated_at=now
        )
    )
    usage = RequestUsage(
        transitions=4, lambdas={"launch": LambdaUsage(invocations=1, mb_ms=2048)}, s3_read_requests=2
    )
    assert repo.add_usage("r1", usage)
    assert repo.add_usage("r1", usage)
    assert not repo.add_usage("missing", usage)  # no item is created for an unknown request
    stored = repo.get("r1")
    assert stored is not None
    assert stored.usage == usage.plus(usage)
    item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": "REQ#r1"}, "sk": {"S": "REQ"}})["Item"]
    assert usage_from_item(item).transitions == 8
    assert (
        ddb.get_item(TableName=TABLE, Key={"pk": {"S": "REQ#missing"}, "sk": {"S": "REQ"}}).get("Item")
        is None
    )
