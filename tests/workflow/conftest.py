"""The real ASL executed by moto, every Lambda dispatched in-process to its handler.

Fixtures: ``walk`` (moto with the state machine interpreter on, the table, the bucket, the state
machine from cdk/statemachine/job.asl.json, the Lambda shim installed, settings pointed at all
of it) and ``web`` (an HTTP server on 127.0.0.1 that the HTTP tasks call).
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import boto3
import pytest
from formica.api import configs as config_routes
from formica.api.services import ApiServices
from formica.engine.walk import JobState
from formica.jobs import parse_definition
from formica.local.lambda_dispatch import dispatch_lambda_invocations
from formica.local.moto_locks import serialize_dynamodb
from formica.local.statemachine import create_local_state_machine
from formica.runtime import (
    default_container_service,
    get_runtime,
    reset_container_service,
    reset_runtime,
    start_request,
)
from formica.settings import get_settings, reset_settings
from formica.store.aws import get_client, reset_clients
from formica.store.blobs import S3BlobStore
from formica.store.configs import ConfigItem, ConfigRepository, SsmConfigSecretStore
from formica.store.container_runs import ContainerRunItem
from formica.store.definitions import DefinitionRepository
from formica.store.grants import DynamoGrantRepository
from formica.store.idempotency import IdempotencyRepository
from formica.store.requests import JobRequestItem, RequestRepository, TaskExecutionItem, now_iso
from formica.store.schema import create_bucket, create_table
from formica.store.tokens import TokenRepository
from moto import mock_aws

from tests.event_samples import ecs_event, with_run
from tests.fakes.loopback import serving, url_of

TABLE = "formica-walk-test"
BUCKET = "formica-walk-test-artifacts"
REGION = "us-east-1"
ORG = "acme"
MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@dataclass
class Walk:
    """Drives jobs through the state machine and reads what they left behind."""

    state_machine_arn: str
    ddb: Any
    s3: Any
    sfn: Any
    submitted: list[str] = field(default_factory=list)

    def upload(self, yaml_text: str) -> int:
        definition = parse_definition(yaml_text)
        version, _, _ = DefinitionRepository(TABLE, client=self.ddb).put_version(ORG, yaml_text, definition)
        return version.version

    def submit(self, job_type: str, params: dict[str, Any] | None = None, *, start: bool = True) -> str:
        version = DefinitionRepository(TABLE, client=self.ddb).get_version(ORG, job_type)
        assert version is not None, f"job type {job_type} not uploaded"
        request_id = f"req-{len(self.submitted) + 1:03d}-{int(time.time() * 1000) % 100000}"
        now = now_iso()
        get_runtime().requests.create(
            JobRequestItem(
                request_id=request_id,
                org=ORG,
                job_type=job_type,
                job_version=version.version,
                params=params or {},
                created_at=now,
                updated_at=now,
            )
        )
        self.submitted.append(request_id)
        if start:
            start_request(request_id, get_runtime())
        return request_id

    def request(self, request_id: str) -> JobRequestItem:
        request = get_runtime().requests.get(request_id)
        assert request is not None
        return request

    def wait(self, request_id: str, timeout: float = 60.0) -> JobRequestItem:
        """Wait until the request is final and its last execution has ended."""
        started = time.monotonic()
        while time.monotonic() < started + timeout:
            request = self.request(request_id)
            if request.is_final and self.execution_status(request) != "RUNNING":
                return request
            # Look often at first, then rarely: every read competes with the walk for the GIL.
            time.sleep(0.05 if time.monotonic() - started < 3 else 0.5)
        raise AssertionError(f"request {request_id} did not finish: {self.request(request_id)!r}")

    def wait_for(self, request_id: str, predicate: Any, timeout: float = 30.0) -> JobRequestItem:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            request = self.request(request_id)
            if predicate(request):
                return request
            time.sleep(0.05)
        raise AssertionError(f"condition not reached for {request_id}: {self.request(request_id)!r}")

    def execution_arn(self, name: str) -> str:
        prefix, _, machine = self.state_machine_arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{machine}:{name}"

    def execution_status(self, request: JobRequestItem) -> str:
        if request.execution_name is None:
            return "NONE"
        described = self.sfn.describe_execution(executionArn=self.execution_arn(request.execution_name))
        return str(described["status"])

    def tasks(self, request_id: str) -> list[TaskExecutionItem]:
        return get_runtime().requests.list_tasks(request_id)

    def history(self, execution_name: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {"executionArn": self.execution_arn(execution_name), "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**arguments)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            arguments["nextToken"] = page["nextToken"]

    def blob(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body

    def log(self, request_id: str, task_type: str) -> str:
        tasks = self.tasks(request_id)
        keys = [task.log_key for task in tasks if task.task_type == task_type and task.log_key]
        assert keys, f"no log for {task_type}"
        return self.blob(keys[-1]).decode()


def final(states: JobState) -> bool:
    return states.is_final


@pytest.fixture
def walk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Walk]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "FORMICA_TABLE_NAME": TABLE,
        "FORMICA_BUCKET_NAME": BUCKET,
        "FORMICA_REGION": REGION,
        "FORMICA_CONTAINER_RUNTIME": "local",
        "FORMICA_LOCAL_CONTAINER_MODE": "host",
        "FORMICA_WORK_ROOT": str(tmp_path / "work"),
        # A task fan-out's instances run in the task functions, dispatched in-process.
        "FORMICA_HTTP_TASK_FUNCTION": "formica-http-task",
        "FORMICA_SHELL_TASK_FUNCTION": "formica-shell-task",
        # The test web server is on 127.0.0.1: open loopback to HTTP tasks (AWS's default refuses it).
        "FORMICA_HTTP_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "formica",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "FORMICA_AWS_ENDPOINT_URL", "FORMICA_STATE_MACHINE_ARN"):
        monkeypatch.delenv(name, raising=False)

    def reset() -> None:
        reset_settings()
        reset_clients()
        reset_runtime()

    reset()
    # Serialized like formica dev's moto: DynamoDB's conditional writes are atomic, moto's are not.
    with mock_aws(config=MOTO_CONFIG), dispatch_lambda_invocations(), serialize_dynamodb():
        ddb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        create_table(ddb, TABLE)
        create_bucket(s3, BUCKET, REGION)
        arn = create_local_state_machine(sfn)
        monkeypatch.setenv("FORMICA_STATE_MACHINE_ARN", arn)
        reset()
        harness = Walk(state_machine_arn=arn, ddb=ddb, s3=s3, sfn=sfn)
        try:
            yield harness
        finally:
            _drain(harness)
            reset()


def _walked_requests(harness: Walk) -> list[str]:
    """Every request the test started: those it submitted and, level by level, their children."""
    found: list[str] = []
    level = list(harness.submitted)
    while level:
        found.extend(level)
        level = [child.child_id for parent in level for child in get_runtime().requests.list_children(parent)]
    return found


def _drain(harness: Walk, timeout: float = 30.0) -> None:
    """Cancel whatever the test left walking (children included) and wait, bounded, for moto's
    executions to stop, so that no walk of this test writes after its settings are gone (or into
    the next test's moto)."""
    from formica.runtime import cancel_request
    from formica.store.requests import RequestFinishedError

    for request_id in _walked_requests(harness):
        request = get_runtime().requests.get(request_id)
        if request is not None and not request.is_final:
            with contextlib.suppress(RequestFinishedError):  # it ended between the read and the cancel
                cancel_request(ORG, request_id, get_runtime())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = harness.sfn.list_executions(
            stateMachineArn=harness.state_machine_arn, statusFilter="RUNNING"
        )["executions"]
        if not running:
            return
        time.sleep(0.2)


class _Web:
    """What the local HTTP server answers: path -> (status, body); counts hits per path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str]] = {"/todos/1": (200, json.dumps({"id": 1, "title": "t"}))}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        self.base_url = ""

    def hit(self, path: str) -> tuple[int, str]:
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
        if path.startswith("/status/"):
            return int(path.rsplit("/", 1)[-1]), "status"
        return self.routes.get(path, (404, "not found"))


@pytest.fixture
def web() -> Iterator[_Web]:
    state = _Web()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = state.hit(self.path.split("?", 1)[0])
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    with serving(Handler) as server:
        state.base_url = url_of(server)
        yield state


def put_secret_config(walk: Walk, name: str, value: str, *, prefix: str | None = None) -> None:
    """An organisation's secret config as the API stores it: the value in moto's SSM under
    ``prefix`` (the settings' by default), the item in the table; the walk's runtime reads both."""
    runtime = get_runtime()
    secrets = SsmConfigSecretStore(
        prefix or get_settings().configs_parameter_prefix, client=boto3.client("ssm", region_name=REGION)
    )
    runtime.configs = ConfigRepository(TABLE, client=walk.ddb)
    runtime.config_secrets = secrets
    reference = secrets.reference(ORG, None, name)
    secrets.put(reference, value)
    now = now_iso()
    runtime.configs.create(
        ConfigItem(
            org=ORG,
            job_type=None,
            name=name,
            secret=True,
            value=None,
            secret_ref=reference,
            created_at=now,
            updated_at=now,
        )
    )


SECRET = "sk-live-9f8e7d"
"""The secret config ``ApiKey`` that ``secret_config`` stores."""


@pytest.fixture
def secret_config(walk: Walk) -> None:
    """The organisation holds a secret config ApiKey (in moto's SSM) that a job can render."""
    put_secret_config(walk, "ApiKey", SECRET, prefix="/formica/test-sub-workflow")


@pytest.fixture
def ecs_walk(walk: Walk, monkeypatch: pytest.MonkeyPatch) -> Iterator[Walk]:
    """The walk fixture with containers on (moto's) ECS Fargate instead of the local runner."""
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    cluster = boto3.client("ecs", region_name=REGION).create_cluster(clusterName="formica")["cluster"]
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName="/formica/containers")
    for name, value in {
        "FORMICA_CONTAINER_RUNTIME": "ecs",
        "FORMICA_ECS_CLUSTER_ARN": cluster["clusterArn"],
        "FORMICA_ECS_SUBNET_IDS": subnet,
        "FORMICA_ECS_SECURITY_GROUP_IDS": group,
        "FORMICA_ECS_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/task",
        "FORMICA_ECS_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/execution",
        "FORMICA_CONTAINER_LOG_GROUP": "/formica/containers",
        "FORMICA_API_URL": "https://abc123.execute-api.us-east-1.amazonaws.com/test",
    }.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    reset_clients()
    reset_runtime()
    reset_container_service()
    yield walk
    reset_container_service()


def launched_run(request_id: str, step_after: int = 0, timeout: float = 15.0) -> ContainerRunItem:
    """The run Launch recorded for the request (the first one after ``step_after``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [
            r for r in default_container_service().runs.list_for_request(request_id) if r.step > step_after
        ]
        if runs and runs[0].ecs_task_arn:
            return runs[0]
        time.sleep(0.05)
    raise AssertionError(f"no container launched for {request_id}")


# -- configs and secrets through the API's logic, read by the walk from moto's SSM ------------------

CONFIGS_KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/formica-test-configs"
CONFIGS_PREFIX = "/formica/test-configs"


def secret_forms(secret: str) -> list[str]:
    """A secret and the encodings of it a mask must catch (base64, URL-safe, URL-quoted)."""
    raw = secret.encode()
    return [
        secret,
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        quote(secret, safe=""),
        quote_plus(secret),
    ]


@pytest.fixture
def configured(walk: Walk, monkeypatch: pytest.MonkeyPatch) -> ApiServices:
    """The walk's runtime reads configs from moto, secrets under CONFIGS_PREFIX with
    CONFIGS_KMS_KEY; the API's services write them there."""
    monkeypatch.setenv("FORMICA_CONFIGS_PARAMETER_PREFIX", CONFIGS_PREFIX)
    monkeypatch.setenv("FORMICA_CONFIGS_KMS_KEY_ID", CONFIGS_KMS_KEY)
    reset_settings()
    ssm = boto3.client("ssm", region_name=REGION)
    runtime = get_runtime()
    runtime.configs = ConfigRepository(TABLE, client=walk.ddb)
    runtime.config_secrets = SsmConfigSecretStore(CONFIGS_PREFIX, CONFIGS_KMS_KEY, client=ssm)
    requests = RequestRepository(TABLE, client=walk.ddb)
    return ApiServices(
        definitions=DefinitionRepository(TABLE, client=walk.ddb),
        requests=requests,
        tokens=TokenRepository(TABLE, client=walk.ddb),
        idempotency=IdempotencyRepository(TABLE, client=walk.ddb),
        blobs=S3BlobStore(BUCKET, client=walk.s3),
        grants=DynamoGrantRepository(TABLE, client=walk.ddb),
        configs=runtime.configs,
        config_secrets=runtime.config_secrets,
    )


def set_config(
    services: ApiServices, name: str, value: str, *, secret: bool = False, job_type: str | None = None
) -> None:
    """Create a config of the organisation (or of ``job_type``) through the API's logic."""
    body = config_routes.CreateConfigRequest(name=name, value=value, secret=secret)
    config_routes.create_config(services, ORG, body, job_type=job_type)


# -- ECS on moto: what RunTask was asked, and ECS's STOPPED event played back ----------------------


def stop_ecs_task(run: ContainerRunItem, sample: str, *, log_lines: list[str] | None = None) -> None:
    """Play ECS: the main container's log lines, then the STOPPED event through the handler's function."""
    if log_lines:
        logs = boto3.client("logs", region_name=REGION)
        stream = f"formica/main/{str(run.ecs_task_arn).rsplit('/', 1)[1]}"
        logs.create_log_stream(logGroupName="/formica/containers", logStreamName=stream)
        now = int(time.time() * 1000)
        logs.put_log_events(
            logGroupName="/formica/containers",
            logStreamName=stream,
            logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(log_lines)],
        )
    event = with_run(
        ecs_event(sample), task_arn=str(run.ecs_task_arn), request_id=run.request_id, step=run.step
    )
    assert default_container_service().complete(event) is True


def run_task_calls() -> list[dict[str, Any]]:
    """The RunTask requests the ECS client sends from now on, as sent."""
    calls: list[dict[str, Any]] = []
    get_client("ecs").meta.events.register(
        "provide-client-params.ecs.RunTask", lambda params, **_: calls.append(params)
    )
    return calls
