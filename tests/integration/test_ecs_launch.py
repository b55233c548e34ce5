"""Container runs on ECS under moto: the RunTask request, task definition reuse, and the completion
handler answering a real waiting ``lambda:invoke.waitForTaskToken`` state of a moto execution.

moto's ECS neither runs containers nor reports real exit codes, so the exit codes come from the
real-shaped "ECS Task State Change" samples under events/ecs, re-pointed at the task moto started.
RunTask's parameters are captured with a botocore event hook, not by mocking the client.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
from formica.engine.masking import secret_forms
from formica.jobs.models import ArtifactsDefinition, ContainerDefinition, TaskDefinition, TaskMethod
from formica.runners.base import TaskContext
from formica.runners.container_grants import ARTIFACT_MAX_BYTES, GRANT_MARGIN_SECONDS
from formica.runners.container_secrets import SCRIPT_RUNNER
from formica.runners.ecs_events import ERR_CONTAINER_START, ERR_TASK_CANCELLED, RunKey
from formica.runners.grants import curl_config, exchange_capability
from formica.runtime import (
    build_container_service,
    default_container_service,
    install_container_service,
    reset_container_service,
)
from formica.runtime.containers import DirectReporter
from formica.settings import reset_settings
from formica.store.aws import get_client, reset_clients
from formica.store.blobs import S3BlobStore
from formica.store.grants import DynamoGrantRepository
from formica.store.schema import create_table
from formica.store.state_machine import StepFunctionsStateMachine
from moto import mock_aws

from tests.ecs_env_files import read_as_ecs_agent
from tests.event_samples import ecs_event, with_run

REGION = "us-east-1"
TABLE = "formica-ecs-test"
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/test"
BUCKET = "formica-ecs-test-artifacts"
LOG_GROUP = "/formica/containers"
REQUEST_ID = "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47"
MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
WAITING_MACHINE = {
    "StartAt": "Launch",
    "States": {
        "Launch": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "formica-launch", "Payload": {"token.$": "$$.Task.Token"}},
            "TimeoutSeconds": 60,
            "End": True,
        }
    },
}


class Captured:
    def __init__(self) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = {}

    def hook(self, operation: str) -> Any:
        def record(params: dict[str, Any], **_: Any) -> None:
            self.calls.setdefault(operation, []).append(copy.deepcopy(params))

        return record


@pytest.fixture(scope="module")
def moto_stack() -> Iterator[dict[str, Any]]:
    """One moto for the module (moto's EC2 takes seconds to start): network, cluster, logs, bucket."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "FORMICA_TABLE_NAME": TABLE,
            "FORMICA_BUCKET_NAME": BUCKET,
            "FORMICA_REGION": REGION,
            "FORMICA_CONTAINER_LOG_GROUP": LOG_GROUP,
            "FORMICA_API_URL": API_URL,
            "FORMICA_ECS_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/formica-task",
            "FORMICA_ECS_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/formica-execution",
            "FORMICA_ECS_TASK_FAMILY_PREFIX": "formica-test-",
        }.items():
            patch.setenv(name, value)
        for name in ("FORMICA_AWS_ENDPOINT_URL", "FORMICA_EKS_CLUSTER_NAME", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        with mock_aws(config=MOTO_CONFIG):
            ec2 = boto3.client("ec2", region_name=REGION)
            vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
            group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
            cluster = boto3.client("ecs", region_name=REGION).create_cluster(clusterName="formica-containers")
            patch.setenv("FORMICA_ECS_CLUSTER_ARN", cluster["cluster"]["clusterArn"])
            patch.setenv("FORMICA_ECS_SUBNET_IDS", subnet)
            patch.setenv("FORMICA_ECS_SECURITY_GROUP_IDS", group)
            boto3.client("logs", region_name=REGION).create_log_group(logGroupName=LOG_GROUP)
            boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
            machine = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
                name="waiting",
                definition=json.dumps(WAITING_MACHINE),
                roleArn="arn:aws:iam::123456789012:role/formica-sfn",
            )["stateMachineArn"]
            yield {"machine": machine, "subnet": subnet, "group": group}
    reset_container_service()
    reset_clients()
    reset_settings()


@pytest.fixture
def aws(moto_stack: dict[str, Any]) -> dict[str, Any]:
    """A fresh table, fresh settings, clients and service, and RunTask & co. captured."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    if TABLE in ddb.list_tables()["TableNames"]:
        ddb.delete_table(TableName=TABLE)
    create_table(ddb, TABLE)
    reset_settings()
    reset_clients()
    _fresh_service()
    captured = Captured()
    ecs = get_client("ecs")
    for operation in ("RunTask", "RegisterTaskDefinition", "StopTask"):
        ecs.meta.events.register(f"provide-client-params.ecs.{operation}", captured.hook(operation))
    return {**moto_stack, "captured": captured, "sfn": get_client("stepfunctions")}


def _fresh_service() -> None:
    """A new service (as in a cold Lambda) that answers the run's own token: no job request here."""
    reset_container_service()
    reporter = DirectReporter(
        StepFunctionsStateMachine(None, get_client("stepfunctions")), S3BlobStore(BUCKET)
    )
    install_container_service(build_container_service(reporter=reporter))


def _task(**changes: Any) -> TaskDefinition:
    values: dict[str, Any] = {
        "task_type": "init",
        "method": TaskMethod.DOCKER,
        "container": ContainerDefinition(image="alpine", cpu_limit="500m", memory_limit="1Gi"),
        "script": ["ls -l / > ls.txt", "env > env.txt"],
        "after_script": ["ls -l"],
        "artifacts": ArtifactsDefinition(paths=["env.txt", "ls.txt"]),
        "environment": {"STAGE": "test"},
    }
    values.update(changes)
    return TaskDefinition.model_validate(values)


def _ctx(task: TaskDefinition, attempt: int = 1) -> TaskContext:
    return TaskContext(
        org="acme",
        request_id=REQUEST_ID,
        job_type="docker-job",
        task_type=task.task_type,
        attempt=attempt,
        timeout_seconds=600,
        params={"Target": "prod"},
    )


def _waiting_token(aws: dict[str, Any], name: str) -> tuple[str, str]:
    """Start an execution whose Launch state waits for a token; returns (execution ARN, token)."""
    sfn = aws["sfn"]
    arn = sfn.start_execution(stateMachineArn=aws["machine"], name=name, input="{}")["executionArn"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for event in sfn.get_execution_history(executionArn=arn)["events"]:
            if event["type"] == "TaskScheduled":
                parameters = json.loads(event["taskScheduledEventDetails"]["parameters"])
                return arn, str(parameters["Payload"]["token"])
        time.sleep(0.02)
    raise AssertionError("the Launch state never scheduled")


def _result(aws: dict[str, Any], execution_arn: str) -> tuple[str, dict[str, Any] | None]:
    sfn = aws["sfn"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            output = described.get("output")
            return described["status"], json.loads(output) if output else None
        time.sleep(0.02)
    return "RUNNING", None


def test_launch_runs_the_task_with_the_script_env_network_and_run_key(aws: dict[str, Any]) -> None:
    task = _task(container=ContainerDefinition(image="alpine:launch", cpu_limit="500m", memory_limit="1Gi"))
    run = default_container_service().launch(REQUEST_ID, 12, task, _ctx(task), "token-1")

    request = aws["captured"].calls["RunTask"][0]
    assert request["launchType"] == "FARGATE"
    assert request["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == [aws["subnet"]]
    assert request["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == [aws["group"]]
    assert RunKey.from_started_by(request["startedBy"]) == RunKey(REQUEST_ID, 12)
    overrides = {o["name"]: o for o in request["overrides"]["containerOverrides"]}
    main = overrides["main"]
    assert "ls -l / > ls.txt" in main["command"][0]
    assert "after_script" in main["command"][0]
    assert {e["name"]: e["value"] for e in main["environment"]}.items() >= {
        "Target": "prod",
        "STAGE": "test",
        "FORMICA_RUN_KEY": f"{REQUEST_ID}/12",
    }.items()
    assert overrides["artifacts"]["command"] == [
        "formica-artifacts",
        "onSuccess",
        f"acme/{REQUEST_ID}/init/artifacts/",
        "env.txt",
        "ls.txt",
    ]
    grants_at = f"acme/{REQUEST_ID}/init/grants/attempt-12/"
    assert overrides["artifacts"]["environmentFiles"] == [
        {"value": f"arn:aws:s3:::{BUCKET}/{grants_at}artifacts.env", "type": "s3"}
    ]
    assert "dependencies" not in overrides  # no dependencies: nothing granted, nothing to override
    assert "X-Amz-Signature" not in json.dumps(request)  # grants travel in env files only
    family = request["taskDefinition"].rsplit("/", 1)[1]
    assert family.startswith("formica-test-")

    registered = aws["captured"].calls["RegisterTaskDefinition"][0]
    assert (registered["cpu"], registered["memory"]) == ("512", "1024")
    assert "taskRoleArn" not in registered  # the containers get no AWS credentials at all
    main_definition = next(c for c in registered["containerDefinitions"] if c["name"] == "main")
    assert main_definition["workingDirectory"] == "/workspace"
    assert main_definition["entryPoint"] == ["sh", "-c"]

    assert run.ecs_task_arn is not None
    stored = default_container_service().runs.get(REQUEST_ID, 12)
    assert stored is not None
    assert (stored.ecs_task_arn, stored.task_token, stored.status) == (
        run.ecs_task_arn,
        "token-1",
        "LAUNCHED",
    )
    described = get_client("ecs").describe_tasks(cluster=request["cluster"], tasks=[run.ecs_task_arn])[
        "tasks"
    ][0]
    assert described["startedBy"] == request["startedBy"]


def test_task_definitions_are_registered_once_per_content(aws: dict[str, Any]) -> None:
    # An image no other test uses: the module shares one moto, so its task definitions persist.
    task = _task(container=ContainerDefinition(image="alpine:reuse", cpu_limit="500m", memory_limit="1Gi"))
    default_container_service().launch(REQUEST_ID, 1, task, _ctx(task), "t1")
    default_container_service().launch(REQUEST_ID, 2, task, _ctx(task), "t2")
    _fresh_service()  # a cold Lambda: no in-process cache, DescribeTaskDefinition finds it
    default_container_service().launch(REQUEST_ID, 3, task, _ctx(task), "t3")

    calls = aws["captured"].calls
    assert len(calls["RegisterTaskDefinition"]) == 1
    assert len({c["taskDefinition"] for c in calls["RunTask"]}) == 1

    bigger = _task(container=ContainerDefinition(image="alpine:reuse", cpu_limit="2", memory_limit="8Gi"))
    default_container_service().launch(REQUEST_ID, 4, bigger, _ctx(bigger), "t4")
    assert len(calls["RegisterTaskDefinition"]) == 2
    assert (calls["RegisterTaskDefinition"][1]["cpu"], calls["RegisterTaskDefinition"][1]["memory"]) == (
        "2048",
        "8192",
    )


@pytest.mark.parametrize(
    ("sample", "exit_code", "error_code"),
    [
        ("task-stopped-exit-0", "0", None),
        ("task-stopped-exit-3", "3", None),
        ("task-stopped-sidecar-137", "0", None),
        ("task-stopped-image-pull-failure", "", ERR_CONTAINER_START),
        ("task-stopped-essential-container-exited", "", ERR_CONTAINER_START),
    ],
)
def test_the_stopped_event_answers_the_waiting_state(
    aws: dict[str, Any], sample: str, exit_code: str, error_code: str | None
) -> None:
    execution, token = _waiting_token(aws, f"run-{sample}")
    task = _task()
    run = default_container_service().launch(REQUEST_ID, 12, task, _ctx(task), token)
    event = with_run(ecs_event(sample), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=12)

    assert default_container_service().complete(event) is True

    status, output = _result(aws, execution)
    assert status == "SUCCEEDED"
    assert output is not None
    assert (output["exit_code"], output["error_code"]) == (exit_code, error_code)
    if error_code:
        assert output["error_message"]
    stored = default_container_service().runs.get(REQUEST_ID, 12)
    assert stored is not None and stored.status == "FINISHED" and stored.exit_code == exit_code


def test_a_duplicate_or_foreign_event_changes_nothing(aws: dict[str, Any]) -> None:
    execution, token = _waiting_token(aws, "dup")
    task = _task()
    run = default_container_service().launch(REQUEST_ID, 5, task, _ctx(task), token)
    other = with_run(
        ecs_event("task-stopped-exit-3"), task_arn=str(run.ecs_task_arn) + "0", request_id=REQUEST_ID, step=5
    )
    event = with_run(
        ecs_event("task-stopped-exit-0"), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=5
    )

    assert (
        default_container_service().complete(other) is False
    )  # another task of the same run key: not this run's
    assert default_container_service().complete(event) is True
    assert default_container_service().complete(event) is False
    assert default_container_service().complete(ecs_event("task-running")) is False

    assert _result(aws, execution) == (
        "SUCCEEDED",
        {"exit_code": "0", "error_code": None, "error_message": None},
    )


def test_the_log_is_copied_to_s3(aws: dict[str, Any]) -> None:
    task = _task()
    run = default_container_service().launch(REQUEST_ID, 12, task, _ctx(task, attempt=2), "token-log")
    task_id = str(run.ecs_task_arn).rsplit("/", 1)[1]
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=f"formica/main/{task_id}")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=f"formica/main/{task_id}",
        logEvents=[{"timestamp": now, "message": "$ ls -l"}, {"timestamp": now + 1, "message": "total 0"}],
    )
    event = with_run(
        ecs_event("task-stopped-exit-0"), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=12
    )

    default_container_service().complete(
        event
    )  # the token is made up: answering it fails quietly, the log is still copied

    body = (
        boto3.client("s3", region_name=REGION)
        .get_object(Bucket=BUCKET, Key=f"acme/{REQUEST_ID}/init/logs/attempt-2.log")["Body"]
        .read()
    )
    assert body == b"$ ls -l\ntotal 0\n"


def test_a_replayed_launch_starts_nothing_and_answers_the_new_token(aws: dict[str, Any]) -> None:
    first_execution, first_token = _waiting_token(aws, "first")
    second_execution, second_token = _waiting_token(aws, "second")
    task = _task()

    run = default_container_service().launch(REQUEST_ID, 8, task, _ctx(task), first_token)
    again = default_container_service().launch(REQUEST_ID, 8, task, _ctx(task), second_token)

    assert len(aws["captured"].calls["RunTask"]) == 1
    assert again.ecs_task_arn == run.ecs_task_arn
    default_container_service().complete(
        with_run(
            ecs_event("task-stopped-exit-3"), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=8
        )
    )
    assert _result(aws, second_execution)[1] == {"exit_code": "3", "error_code": None, "error_message": None}
    aws["sfn"].send_task_failure(taskToken=first_token, error="test", cause="done")
    assert _result(aws, first_execution)[0] == "FAILED"


def test_a_launch_after_the_run_finished_answers_with_the_stored_result(aws: dict[str, Any]) -> None:
    task = _task()
    run = default_container_service().launch(REQUEST_ID, 9, task, _ctx(task), "gone-token")
    default_container_service().complete(
        with_run(
            ecs_event("task-stopped-exit-3"), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=9
        )
    )
    execution, token = _waiting_token(aws, "late")

    default_container_service().launch(REQUEST_ID, 9, task, _ctx(task), token)

    assert len(aws["captured"].calls["RunTask"]) == 1
    assert _result(aws, execution)[1] == {"exit_code": "3", "error_code": None, "error_message": None}


def test_a_launch_that_cannot_start_answers_err_container_start(aws: dict[str, Any]) -> None:
    execution, token = _waiting_token(aws, "too-big")
    task = _task(container=ContainerDefinition(image="alpine", cpu_limit="64"))

    default_container_service().launch(REQUEST_ID, 4, task, _ctx(task), token)

    assert "RunTask" not in aws["captured"].calls
    status, output = _result(aws, execution)
    assert status == "SUCCEEDED"
    assert output is not None
    assert output["error_code"] == ERR_CONTAINER_START
    assert "no Fargate size" in output["error_message"]


def test_cancel_stops_the_task_and_answers_cancelled(aws: dict[str, Any]) -> None:
    execution, token = _waiting_token(aws, "cancel")
    task = _task()
    run = default_container_service().launch(REQUEST_ID, 6, task, _ctx(task), token)

    assert default_container_service().cancel_runs(REQUEST_ID) == 1
    assert default_container_service().cancel_runs(REQUEST_ID) == 0

    stop = aws["captured"].calls["StopTask"][0]
    assert stop["task"] == run.ecs_task_arn
    assert stop["reason"] == "formica: job cancelled"
    status, output = _result(aws, execution)
    assert status == "SUCCEEDED"
    assert output is not None and output["error_code"] == ERR_TASK_CANCELLED
    # The STOPPED event that follows finds the run settled and sends nothing.
    late = with_run(
        ecs_event("task-stopped-user-initiated"),
        task_arn=str(run.ecs_task_arn),
        request_id=REQUEST_ID,
        step=6,
    )
    assert default_container_service().complete(late) is False


class RecordingReporter:
    """Keeps what the service reports (and answers like the direct reporter)."""

    def __init__(self, inner: DirectReporter) -> None:
        self.inner = inner
        self.reports: list[tuple[Any, Any]] = []

    def __call__(self, run: Any, outcome: Any) -> bool:
        self.reports.append((run, outcome))
        return self.inner(run, outcome)


def test_the_outcome_carries_this_attempts_artifacts_and_log(aws: dict[str, Any]) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    prefix = f"acme/{REQUEST_ID}/init/artifacts/"
    s3.put_object(Bucket=BUCKET, Key=prefix + "stale.txt", Body=b"from an earlier attempt")
    time.sleep(1.2)  # S3 times have one-second resolution: the earlier attempt's file is older
    reporter = RecordingReporter(
        DirectReporter(StepFunctionsStateMachine(None, get_client("stepfunctions")), S3BlobStore(BUCKET))
    )
    install_container_service(build_container_service(reporter=reporter))
    task = _task()
    run = default_container_service().launch(REQUEST_ID, 14, task, _ctx(task), "token-artifacts")
    s3.put_object(Bucket=BUCKET, Key=prefix + "env.txt", Body=b"A=1\n", Metadata={"sha256": "ab" * 32})
    s3.put_object(Bucket=BUCKET, Key=prefix + "data/a.json", Body=b"{}")

    default_container_service().complete(
        with_run(
            ecs_event("task-stopped-exit-0"), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=14
        )
    )

    (_, outcome), *_ = reporter.reports
    assert outcome.exit_code == "0"
    artifacts = {a.name: a for a in outcome.artifacts}
    assert sorted(artifacts) == ["data/a.json", "env.txt"]
    assert artifacts["env.txt"].key == prefix + "env.txt"
    assert (artifacts["env.txt"].size, artifacts["env.txt"].sha256) == (4, "ab" * 32)
    assert artifacts["data/a.json"].sha256 == ""  # directory uploads carry no checksum


def _helper_environment(env_key: str) -> dict[str, str]:
    """The variables the ECS agent gives a helper: its ``.env`` file's lines, as Docker reads them."""
    text = (
        boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=env_key)["Body"].read().decode()
    )
    return dict(line.split("=", 1) for line in text.splitlines())


def _curl_config(env_key: str) -> list[tuple[str, str]]:
    """What the helper of ``env_key`` gets for its capability at the grants route (the route's own
    logic, on this table and bucket), as (option, value) lines unescaped as curl reads them."""
    environment = _helper_environment(env_key)
    assert environment["FORMICA_GRANTS_URL"] == API_URL + "/api/grants"
    grant = exchange_capability(
        DynamoGrantRepository(TABLE),
        S3BlobStore(BUCKET),
        environment["FORMICA_CAPABILITY"],
        now=datetime.now(UTC),
    )
    text = curl_config(grant)
    lines = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        option, quoted = line.split(" = ", 1)
        value = re.sub(
            r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r", "v": "\v"}.get(m[1], m[1]), quoted[1:-1]
        )
        lines.append((option, value))
    return lines


def test_the_upload_grant_is_a_policy_for_this_tasks_prefix_until_the_deadline(aws: dict[str, Any]) -> None:
    # moto accepts any presigned POST (it enforces no policy): the policy itself is what is checked.
    task = _task()
    launched_at = datetime.now(UTC)
    default_container_service().launch(REQUEST_ID, 21, task, _ctx(task), "token-policy")

    grants_at = f"acme/{REQUEST_ID}/init/grants/attempt-21/"
    lines = _curl_config(grants_at + "artifacts.env")
    fields = dict(value.split("=", 1) for option, value in lines if option == "form-string")
    (url,) = [value for option, value in lines if option == "url"]
    assert BUCKET in url
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    prefix = f"acme/{REQUEST_ID}/init/artifacts/"
    assert ["starts-with", "$key", prefix] in conditions  # the trailing slash: not ".../init/artifactsX"
    # Every condition on the key is that one (boto3 adds its own copy for the "${filename}" key).
    key_conditions = [c for c in conditions if isinstance(c, list) and c[1] == "$key"]
    assert key_conditions and all(c == ["starts-with", "$key", prefix] for c in key_conditions)
    assert not [c for c in conditions if isinstance(c, dict) and "key" in c]
    assert ["content-length-range", 0, ARTIFACT_MAX_BYTES] in conditions
    assert ["starts-with", "$Content-Type", ""] in conditions
    assert ["starts-with", "$x-amz-meta-sha256", ""] in conditions
    assert {"bucket": BUCKET} in conditions
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    deadline = launched_at + timedelta(seconds=_ctx(task).timeout_seconds)
    expected = deadline + timedelta(seconds=GRANT_MARGIN_SECONDS)
    # Exchanged at once, the POST lives until the capability ends (the deadline plus the margin).
    assert abs((expiration - expected).total_seconds()) < 30
    # The env file ECS reads holds the route and the capability, and nothing signed.
    assert set(_helper_environment(grants_at + "artifacts.env")) == {
        "FORMICA_GRANTS_URL",
        "FORMICA_CAPABILITY",
    }


def test_dependencies_are_granted_one_presigned_get_each(aws: dict[str, Any]) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    source = f"acme/{REQUEST_ID}/compile/artifacts/"
    s3.put_object(Bucket=BUCKET, Key=source + "bin/app", Body=b"binary")
    s3.put_object(Bucket=BUCKET, Key=source + "../../../etc/evil", Body=b"no")
    task = _task(task_type="ship", dependencies=["compile"], artifacts=None)

    default_container_service().launch(REQUEST_ID, 22, task, _ctx(task), "token-deps")

    request = aws["captured"].calls["RunTask"][-1]
    overrides = {o["name"]: o for o in request["overrides"]["containerOverrides"]}
    grants_at = f"acme/{REQUEST_ID}/ship/grants/attempt-22/"
    assert overrides["dependencies"]["environmentFiles"] == [
        {"value": f"arn:aws:s3:::{BUCKET}/{grants_at}dependencies.env", "type": "s3"}
    ]
    assert "environmentFiles" not in overrides["artifacts"]  # nothing to upload, nothing granted
    lines = _curl_config(grants_at + "dependencies.env")
    assert [option for option, _ in lines] == ["url", "output"]
    (url, output) = (lines[0][1], lines[1][1])
    assert output == "./bin/app"
    assert unquote(urlsplit(url).path).endswith(source + "bin/app")
    expires = int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])
    assert 600 + GRANT_MARGIN_SECONDS - 30 <= expires <= 600 + GRANT_MARGIN_SECONDS


# --- secret configs: in the attempt's main.env, never in RunTask's parameters ----------------

SECRET = "s3cr3t-Pa55word/+="
PEM_SECRET = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\r\n0wq\\n 'q' $HOME\n-----END KEY-----\n"


def _secret_ctx(task: TaskDefinition, params: dict[str, Any], *secrets: str) -> TaskContext:
    """An attempt whose job has secret configs: their values are among its variables (exported
    configs) and in ``secrets``, as the walk gives them."""
    ctx = _ctx(task)
    return TaskContext(**{**ctx.__dict__, "params": {**ctx.params, **params}, "secrets": secrets})


def _bucket_keys(prefix: str) -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [str(item["Key"]) for item in listed.get("Contents", [])]


def _main_env_file(key: str) -> str:
    s3 = boto3.client("s3", region_name=REGION)
    return str(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8"))


def test_a_secret_config_reaches_the_container_through_its_env_file_only(aws: dict[str, Any]) -> None:
    # Given a container task whose job has a secret config, used as itself, inside another variable
    # and rendered into the script by a template
    execution, token = _waiting_token(aws, "secret-env")
    task = _task(task_type="deploy", artifacts=None, script=[f"echo 'deploy:{SECRET}' | wc -c"])
    basic = base64.b64encode(f"deploy:{SECRET}".encode()).decode()
    ctx = _secret_ctx(task, {"DB_PASSWORD": SECRET, "AUTH_HEADER": f"Basic {basic}"}, SECRET)

    # When Launch starts it
    run = default_container_service().launch(REQUEST_ID, 31, task, ctx, token)

    # Then neither the RunTask request nor the task ECS describes holds any form of the secret
    assert run.ecs_task_arn is not None
    request = aws["captured"].calls["RunTask"][-1]
    described = get_client("ecs").describe_tasks(cluster=request["cluster"], tasks=[run.ecs_task_arn])
    (task_described,) = described["tasks"]
    recorded = json.dumps(request) + json.dumps(task_described, default=str)
    assert "main.env" in json.dumps(task_described["overrides"])  # moto keeps the overrides
    for form in secret_forms(SECRET):
        assert form not in recorded
    # The other variables stay in the main container's environment; main.env is named instead.
    grants_at = f"acme/{REQUEST_ID}/deploy/grants/attempt-31/"
    overrides = {o["name"]: o for o in task_described["overrides"]["containerOverrides"]}
    environment = {e["name"]: e["value"] for e in overrides["main"]["environment"]}
    assert environment.items() >= {"Target": "prod", "STAGE": "test"}.items()
    assert {"DB_PASSWORD", "AUTH_HEADER"}.isdisjoint(environment)
    assert overrides["main"]["environmentFiles"] == [
        {"value": f"arn:aws:s3:::{BUCKET}/{grants_at}main.env", "type": "s3"}
    ]
    # The file holds them, as the ECS agent will read it, while the run is live
    carried = read_as_ecs_agent(_main_env_file(grants_at + "main.env"))
    assert carried.items() >= {"DB_PASSWORD": SECRET, "AUTH_HEADER": f"Basic {basic}"}.items()
    assert carried.keys() == {"DB_PASSWORD", "AUTH_HEADER", "FORMICA_SCRIPT"}
    assert overrides["main"]["command"] == [SCRIPT_RUNNER]

    # And once the run is settled, the files holding a secret are gone
    default_container_service().complete(
        with_run(ecs_event("task-stopped-exit-0"), task_arn=run.ecs_task_arn, request_id=REQUEST_ID, step=31)
    )
    assert _result(aws, execution)[0] == "SUCCEEDED"
    remaining = _bucket_keys(grants_at)
    assert grants_at + "main.env" not in remaining
    assert grants_at + "logs.env" not in remaining


def test_a_cancelled_runs_secret_env_file_is_deleted(aws: dict[str, Any]) -> None:
    task = _task(task_type="deploy", artifacts=None)
    ctx = _secret_ctx(task, {"DB_PASSWORD": SECRET}, SECRET)
    default_container_service().launch(REQUEST_ID, 32, task, ctx, "token-cancel-secret")
    grants_at = f"acme/{REQUEST_ID}/deploy/grants/attempt-32/"
    assert grants_at + "main.env" in _bucket_keys(grants_at)

    assert default_container_service().cancel_runs(REQUEST_ID) == 1

    assert grants_at + "main.env" not in _bucket_keys(grants_at)


def test_a_multi_line_secret_is_one_line_of_the_env_file_and_the_script_sees_it_whole(
    aws: dict[str, Any], tmp_path: Path
) -> None:
    # Given a secret holding line breaks (a key), and a task that prints it from its environment
    task = _task(
        task_type="sign",
        artifacts=None,
        after_script=[],
        script=['printf "%s" "$SIGNING_KEY" > key.txt'],
        working_dir=str(tmp_path),
    )
    ctx = _secret_ctx(task, {"SIGNING_KEY": PEM_SECRET}, PEM_SECRET)

    # When Launch starts it
    run = default_container_service().launch(REQUEST_ID, 33, task, ctx, "token-pem")

    # Then the env file has one line per variable, and no line of the key is in the task ECS describes
    assert run.ecs_task_arn is not None and run.error_code is None
    grants_at = f"acme/{REQUEST_ID}/sign/grants/attempt-33/"
    text = _main_env_file(grants_at + "main.env")
    assert text.count("\n") == 1
    (described,) = get_client("ecs").describe_tasks(
        cluster=aws["captured"].calls["RunTask"][-1]["cluster"], tasks=[run.ecs_task_arn]
    )["tasks"]
    recorded = json.dumps(described, default=str)
    assert all(line not in recorded for line in PEM_SECRET.splitlines() if line)
    # And the main container (its override's command under `sh -c`, its override's environment and
    # the env file as the agent reads them) writes the exact key
    main = next(o for o in described["overrides"]["containerOverrides"] if o["name"] == "main")
    environment = {e["name"]: e["value"] for e in main["environment"]} | read_as_ecs_agent(text)
    result = subprocess.run(
        ["sh", "-c", main["command"][0]],
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "key.txt").read_bytes() == PEM_SECRET.encode()


def test_the_reconciler_settling_an_overdue_run_deletes_its_secret_env_file(aws: dict[str, Any]) -> None:
    # Given a run with a secret variable whose deadline (one second) has passed
    task = _task(task_type="deploy", artifacts=None)
    ctx = TaskContext(**{**_secret_ctx(task, {"DB_PASSWORD": SECRET}, SECRET).__dict__, "timeout_seconds": 1})
    default_container_service().launch(REQUEST_ID, 34, task, ctx, "token-overdue-secret")
    grants_at = f"acme/{REQUEST_ID}/deploy/grants/attempt-34/"
    assert grants_at + "main.env" in _bucket_keys(grants_at)
    time.sleep(1.1)

    # When the sweep finds it
    report = default_container_service().reconcile(stale_after_seconds=0)

    # Then it is stopped and settled, and its main.env is gone
    assert report.stopped == 1
    run = default_container_service().runs.get(REQUEST_ID, 34)
    assert run is not None and run.is_finished and run.error_code == "ERR_TASK_TIMED_OUT"
    assert grants_at + "main.env" not in _bucket_keys(grants_at)
