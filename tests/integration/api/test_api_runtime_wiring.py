"""The API driving the real runtime (formica.runtime) under moto: submit starts a named execution,
cancel and restart go through the walk's own entry points. moto records executions without running
them here (the workflow tests run the state machine); what is checked is the wiring."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from formica.api.services import reset_services, use_services
from formica.runtime import reset_runtime
from formica.runtime.executions import execution_name
from formica.settings import get_settings
from formica.store.schema import cancel_marker_key

from tests.integration.api.conftest import BUCKET, DATA, ApiWorld

PASS_MACHINE = '{"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}}'


@pytest.fixture
def wired(world: ApiWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ApiWorld, Any]]:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(
        name="formica-job", definition=PASS_MACHINE, roleArn="arn:aws:iam::123456789012:role/formica-sfn"
    )["stateMachineArn"]
    monkeypatch.setenv("FORMICA_STATE_MACHINE_ARN", arn)
    from formica.settings import reset_settings

    reset_settings()
    reset_runtime()
    use_services(None)
    reset_services()  # services and runtime now come from the settings, as in the Lambda
    world.call(
        "POST",
        "/api/jobs/definitions",
        body=(DATA / "hello-job.yaml").read_text(),
        headers={"Content-Type": "application/yaml"},
    )
    try:
        yield world, sfn
    finally:
        reset_runtime()


def test_submit_starts_one_named_execution_and_cancel_and_restart_use_the_walk(
    wired: tuple[ApiWorld, Any],
) -> None:
    world, sfn = wired

    submitted = world.call(
        "POST", "/jobs/requests", json_body={"job_type": "hello-job"}, headers={"Idempotency-Key": "k"}
    )
    repeat = world.call(
        "POST", "/jobs/requests", json_body={"job_type": "hello-job"}, headers={"Idempotency-Key": "k"}
    )
    request_id = submitted.json()["id"]
    arn = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    early_restart = world.call("POST", f"/api/jobs/requests/{request_id}/restart")
    cancelled = world.call("POST", f"/api/jobs/requests/{request_id}/cancel")
    restarted = world.call("POST", f"/api/jobs/requests/{request_id}/restart")

    assert (submitted.status, submitted.json()["job_state"]) == (201, "STARTED")
    assert repeat.status == 200 and repeat.json()["id"] == request_id
    assert [execution["name"] for execution in executions] == [execution_name(request_id, 1)]
    assert early_restart.status == 409
    assert (cancelled.status, cancelled.json()["job_state"]) == (200, "CANCELLED")
    assert cancelled.json()["error_code"] is not None
    assert restarted.status == 200 and restarted.json()["job_state"] != "CANCELLED"
    names = sorted(execution["name"] for execution in sfn.list_executions(stateMachineArn=arn)["executions"])
    assert names == sorted([execution_name(request_id, 1), execution_name(request_id, 2)])


def test_raising_the_limit_starts_the_waiting_requests_at_once(wired: tuple[ApiWorld, Any]) -> None:
    world, sfn = wired
    limited = world.call(
        "PUT", "/api/jobs/definitions/hello-job/concurrency", json_body={"max_concurrency": 1}
    )
    assert limited.status == 200
    ids = [
        world.call("POST", "/jobs/requests", json_body={"job_type": "hello-job"}).json()["id"]
        for _ in range(3)
    ]

    def states() -> list[str]:
        return [world.call("GET", f"/api/jobs/requests/{i}").json()["job_state"] for i in ids]

    assert states() == ["STARTED", "PENDING", "PENDING"]
    raised = world.call(
        "PUT", "/api/jobs/definitions/hello-job/concurrency", json_body={"max_concurrency": 3}
    )
    assert raised.status == 200 and raised.json()["max_concurrency"] == 3
    assert states() == ["STARTED", "STARTED", "STARTED"]
    arn = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    names = sorted(execution["name"] for execution in sfn.list_executions(stateMachineArn=arn)["executions"])
    assert names == sorted(execution_name(i, 1) for i in ids)


def test_a_cancel_through_the_api_writes_the_marker_a_sandboxed_script_polls(
    wired: tuple[ApiWorld, Any],
) -> None:
    # The API function is told of no sandbox (only the SHELL task function is, in AWS): its cancel
    # must still write the marker, or a running sandboxed script would go on to its timeout
    world, _ = wired
    assert get_settings().shell_sandbox_function is None
    request_id = world.call("POST", "/jobs/requests", json_body={"job_type": "hello-job"}).json()["id"]
    execution = world.services.requests.get(request_id)
    assert execution is not None and execution.execution_name is not None

    cancelled = world.call("POST", f"/api/jobs/requests/{request_id}/cancel")

    assert cancelled.status == 200
    marker = cancel_marker_key("acme", request_id, execution.execution_name)
    assert world.s3.get_object(Bucket=BUCKET, Key=marker)["Body"].read() == b"cancelled\n"
