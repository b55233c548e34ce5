"""The moto shim itself: invocations of formica-* functions run their handlers in-process."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import boto3
import moto
import pytest
from formica.local import lambda_dispatch
from formica.local.lambda_dispatch import (
    LambdaDispatchError,
    dispatch_lambda_invocations,
    function_arn,
    function_folder,
)
from moto import mock_aws

CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


class ProbeError(RuntimeError):
    """Raised by the probe handler on request."""


def probe_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("fail"):
        raise ProbeError("asked to fail")
    return {
        "echo": event,
        "function": context.function_name,
        "remaining": context.get_remaining_time_in_millis() > 0,
    }


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A function folder ``functions/probe`` whose handler is probe_handler."""
    module = types.ModuleType("functions.probe.app")
    module.handler = probe_handler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "functions.probe.app", module)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config=CONFIG):
        yield


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("formica-advance", "advance"),
        ("formica-http-task", "http_task"),
        ("formica-continue-execution:$LATEST", "continue_execution"),
        ("arn:aws:lambda:us-east-1:123456789012:function:formica-shell-task", "shell_task"),
        ("arn:aws:lambda:us-east-1:123456789012:function:formica-launch:live", "launch"),
        ("someone-else", None),
        ("arn:aws:lambda:us-east-1:123456789012:function:other", None),
    ],
)
def test_function_names_map_to_folders(name: str, folder: str | None) -> None:
    assert function_folder(name) == folder


def test_an_invocation_runs_the_handler_and_an_exception_is_an_unhandled_error(probe: None) -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    with dispatch_lambda_invocations():
        ok = client.invoke(FunctionName=function_arn("probe", "us-east-1"), Payload=json.dumps({"a": 1}))
        failed = client.invoke(FunctionName="formica-probe", Payload=json.dumps({"fail": True}))
        other = client.invoke(FunctionName="not-formica", Payload=json.dumps({"b": 2}))
    assert "FunctionError" not in ok
    assert json.loads(ok["Payload"].read()) == {
        "echo": {"a": 1},
        "function": "formica-probe",
        "remaining": True,
    }
    assert failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert (error["errorType"], error["errorMessage"]) == ("ProbeError", "asked to fail")
    assert json.loads(other["Payload"].read()) == {"b": 2}  # moto's own behaviour: the echo
    # Uninstalled: moto is back to echoing, the handler no longer runs
    after = client.invoke(FunctionName="formica-probe", Payload=json.dumps({"a": 1}))
    assert json.loads(after["Payload"].read()) == {"a": 1}


def test_the_state_machine_catches_a_handler_error_by_its_class_name(probe: None) -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "formica-probe", "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "Catch": [{"ErrorEquals": ["ProbeError"], "ResultPath": "$.error", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    arn = sfn.create_state_machine(
        name="probe", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    with dispatch_lambda_invocations():
        results = {}
        for name, payload in (("ok", {"x": 1}), ("bad", {"fail": True})):
            execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))
            results[name] = _finished(sfn, execution["executionArn"])
    assert json.loads(results["ok"]["output"])["echo"] == {"x": 1}
    assert json.loads(results["bad"]["output"])["error"]["Error"] == "ProbeError"


def _finished(sfn: Any, arn: str) -> dict[str, Any]:
    import time

    for _ in range(200):
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.02)
    raise AssertionError("execution did not finish")


def test_another_moto_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(LambdaDispatchError, match=r"5\.2\."), dispatch_lambda_invocations():
        pass


def test_the_pinned_version_is_the_installed_one() -> None:
    assert moto.__version__.startswith(lambda_dispatch.SUPPORTED_MOTO)
