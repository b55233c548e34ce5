"""Fixtures for the request store: moto in-process, the table made by formica.store.schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from formica.local.moto_locks import serialize_dynamodb
from formica.store.grants import DynamoGrantRepository, GrantRepository
from formica.store.requests import RequestRepository
from formica.store.schema import create_table
from moto import mock_aws

from tests.fakes.grants import InMemoryGrantRepository

TABLE = "formica-store-test"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # Real DynamoDB checks a condition and writes atomically; moto 5.2 does not under threads, so
    # the racing tests run on a serialized moto (see formica.local.moto_locks).
    with mock_aws(), serialize_dynamodb():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield client


@pytest.fixture
def repo(ddb: Any) -> RequestRepository:
    return RequestRepository(TABLE, client=ddb)


@pytest.fixture(params=["dynamodb", "fake"])
def grants(request: pytest.FixtureRequest, ddb: Any) -> GrantRepository:
    """Attempt capabilities in the table, and the in-memory fake held to the same rules."""
    return (
        DynamoGrantRepository(TABLE, client=ddb) if request.param == "dynamodb" else InMemoryGrantRepository()
    )
