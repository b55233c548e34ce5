"""Fixtures for the API and its repositories: moto in-process, one table and one bucket."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from formica.api.services import ApiServices, reset_services, use_services
from formica.local.moto_locks import serialize_dynamodb
from formica.settings import reset_settings
from formica.store.aws import reset_clients
from formica.store.blobs import S3BlobStore
from formica.store.configs import ConfigRepository, SsmConfigSecretStore
from formica.store.definitions import DefinitionRepository
from formica.store.grants import DynamoGrantRepository
from formica.store.idempotency import IdempotencyRepository
from formica.store.requests import RequestRepository, now_iso
from formica.store.tokens import TokenRepository
from moto import mock_aws

from tests.integration.api.gateway import Gateway
from tests.integration.api.tables import BUCKET, TABLE, create_formica_table

DATA = Path(__file__).parent / "data"
"""Job definitions the API tests upload."""
CONFIGS_PREFIX = "/formica/api-test"
CONFIGS_KMS_KEY = "alias/formica-api-test-configs"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process with fake credentials; nothing leaves the process. DynamoDB is serialized
    (formica.local.moto_locks) because moto's conditional writes are not atomic under threads."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws(), serialize_dynamodb():
        yield


@pytest.fixture
def ddb(aws: None) -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_formica_table(client, TABLE)
    return client


@dataclass
class FakeRuntime:
    """The walk's entry points, reduced to their state changes on the real request store."""

    requests: RequestRepository
    started: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    restarted_hard: list[bool] = field(default_factory=list)
    woken: list[str] = field(default_factory=list)
    verdicts: list[Any] = field(default_factory=list)
    resumed: list[tuple[str, str]] = field(default_factory=list)

    def start(self, request_id: str) -> None:
        self.started.append(request_id)
        self.requests.mark_started(request_id, execution_name=f"exec-{request_id}")

    def cancel(self, org: str, request_id: str) -> None:
        self.cancelled.append(request_id)
        self.requests.mark_cancelled(
            request_id, error_code="ERR_JOB_CANCELLED", message="cancelled by the user"
        )

    def restart(self, org: str, request_id: str, *, hard: bool = False) -> None:
        self.restarted.append(request_id)
        self.restarted_hard.append(hard)

    def trigger(self, org: str, request_id: str) -> None:
        self.start(request_id)

    def start_waiting(self, org: str, job_type: str) -> None:
        self.woken.append(job_type)

    def answer_verdict(self, outcome: Any) -> None:
        self.verdicts.append(outcome)

    def resume(self, org: str, request_id: str, *, by: str) -> None:
        self.resumed.append((request_id, by))


@dataclass
class ApiWorld:
    gateway: Gateway
    services: ApiServices
    runtime: FakeRuntime
    ddb: Any
    s3: Any
    acme_token: str
    other_token: str

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("token", self.acme_token)
        return self.gateway.call(method, path, **kwargs)


@pytest.fixture
def world(ddb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiWorld]:
    """Both handlers wired to moto, two organisations with one token each."""
    monkeypatch.setenv("FORMICA_TABLE_NAME", TABLE)
    monkeypatch.setenv("FORMICA_BUCKET_NAME", BUCKET)
    monkeypatch.delenv("FORMICA_AWS_ENDPOINT_URL", raising=False)
    reset_settings()
    reset_clients()
    reset_services()
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    requests = RequestRepository(TABLE, client=ddb)
    runtime = FakeRuntime(requests)
    tokens = TokenRepository(TABLE, client=ddb)
    services = ApiServices(
        definitions=DefinitionRepository(TABLE, client=ddb),
        requests=requests,
        tokens=tokens,
        idempotency=IdempotencyRepository(TABLE, client=ddb),
        grants=DynamoGrantRepository(TABLE, client=ddb),
        blobs=S3BlobStore(BUCKET, client=s3),
        runtime=runtime,
        configs=ConfigRepository(TABLE, client=ddb),
        config_secrets=SsmConfigSecretStore(
            CONFIGS_PREFIX, CONFIGS_KMS_KEY, client=boto3.client("ssm", region_name="us-east-1")
        ),
    )
    use_services(services)
    _, acme = tokens.create("acme", "tests")
    _, other = tokens.create("other", "tests")
    from functions.api.app import handler as api_handler
    from functions.authorizer.app import handler as authorizer_handler

    try:
        yield ApiWorld(Gateway(api_handler, authorizer_handler), services, runtime, ddb, s3, acme, other)
    finally:
        use_services(None)
        reset_services()
        reset_clients()
        reset_settings()


@pytest.fixture
def defined(world: ApiWorld) -> ApiWorld:
    """The world with hello-job and params-job uploaded by the acme token."""
    for name in ("hello-job.yaml", "params-job.yaml"):
        response = world.call(
            "POST",
            "/api/jobs/definitions",
            body=(DATA / name).read_text(),
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status == 201
    return world


def submit(world: ApiWorld, body: dict[str, Any], **kwargs: Any) -> Any:
    """POST /api/jobs/requests with ``body`` (by default as the acme token)."""
    return world.call("POST", "/api/jobs/requests", json_body=body, **kwargs)


def finish(world: ApiWorld, request_id: str, state: str = "COMPLETED") -> None:
    """Given: the walk ended the request (what the state machine's last Advance writes)."""
    world.ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"REQ#{request_id}"}, "sk": {"S": "REQ"}},
        UpdateExpression="SET job_state = :s, ended_at = :now",
        ExpressionAttributeValues={":s": {"S": state}, ":now": {"S": now_iso()}},
    )
