"""The recorder names a call's resources as its handler's invocation was given them."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tests.iamcheck import recorder

REGION = "us-east-1"
TABLE = "formica-recorder-test"


def test_a_handler_that_outlives_its_tests_environment_names_its_invocations_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a handler invoked while the test's table is configured, which writes after the test
    # restored its environment (as a dispatched invocation still running at the test's end does)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "FORMICA_TABLE_NAME": TABLE,
    }.items():
        monkeypatch.setenv(name, value)
    item = {"pk": {"S": "late"}}

    def handler(event: object, context: object) -> None:
        monkeypatch.delenv("FORMICA_TABLE_NAME")
        boto3.client("dynamodb", region_name=REGION).put_item(TableName=TABLE, Item=item)

    with mock_aws():
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        # When it runs as a function
        recorder._attributed("probe_function", handler)({}, None)
    # Then its write is recorded on the stack's table, not on the test's name for it
    recorded = {call for call in recorder.CALLS if call.function == "probe_function"}
    arn = f"arn:aws:dynamodb:{REGION}:{recorder.ACCOUNT}:table"
    assert recorder.Call("probe_function", "dynamodb:PutItem", f"{arn}/<TABLE>") in recorded
    assert not [call for call in recorded if TABLE in call.resource]
    # And outside a handler the environment names the resources (nothing configured: kept as is)
    assert recorder.canonical(f"{arn}/{TABLE}") == f"{arn}/{TABLE}"
    with recorder._lock:
        recorder.CALLS.difference_update(recorded)
