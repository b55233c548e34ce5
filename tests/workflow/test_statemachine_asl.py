"""The ASL file: valid, every placeholder known, every action routed, every Lambda state guarded."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from formica.engine.walk import Action
from formica.local.statemachine import ASL_PATH, PLACEHOLDER_FUNCTIONS, local_definition

from tests.checkers import asl_validator_installed, require_checker

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def asl() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(ASL_PATH.read_text())
    return loaded


def test_asl_validator_accepts_the_file() -> None:
    require_checker(
        "asl-validator", present=asl_validator_installed(ROOT), fix="`make install` (or `npm install`)"
    )
    result = subprocess.run(
        ["npx", "asl-validator", "--json-path", str(ASL_PATH)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_placeholder_names_a_function_folder() -> None:
    used = set(re.findall(r"\$\{([A-Za-z0-9]+)\}", ASL_PATH.read_text()))
    assert used == set(PLACEHOLDER_FUNCTIONS)
    for folder in PLACEHOLDER_FUNCTIONS.values():
        assert (ROOT / "functions" / folder / "app.py").exists(), folder
    assert "${" not in local_definition("eu-west-1")


def test_the_choice_routes_every_action() -> None:
    route = asl()["States"]["Route"]
    routed: set[str] = set()
    for choice in route["Choices"]:
        for rule in choice.get("And", [choice]):
            if rule["Variable"] == "$.action" and "StringEquals" in rule:
                routed.add(rule["StringEquals"])
    assert routed | {route["Default"] and "FAIL"} == {action.value for action in Action}
    assert route["Default"] == "Failed"


def test_an_execution_begins_at_the_choice_and_decides_itself_without_a_decision() -> None:
    # The starter passes the first decision as the input (D13); {"request_id"} alone goes to Begin,
    # which asks Advance for it. The presence test comes first: AWS fails a Choice rule whose
    # Variable is missing.
    states = asl()["States"]
    assert asl()["StartAt"] == "Route"
    assert states["Route"]["Choices"][0] == {"Variable": "$.action", "IsPresent": False, "Next": "Begin"}
    begin = states["Begin"]
    assert begin["Parameters"]["Payload"] == {
        "request_id.$": "$.request_id",
        "execution.$": "$$.Execution.Name",
    }
    assert (begin["Next"], begin["Catch"][0]["Next"]) == ("Route", "AdvanceFailed")


def test_every_lambda_state_retries_service_errors_and_catches_the_rest() -> None:
    for name, state in asl()["States"].items():
        if state["Type"] != "Task":
            continue
        retried = {error for retry in state["Retry"] for error in retry["ErrorEquals"]}
        # ContinueAsNew also retries a refused or unanswered StartExecution (its ExecutionError).
        assert retried == LAMBDA_ERRORS | ({"ExecutionError"} if name == "ContinueAsNew" else set()), name
        assert any("States.ALL" in catch["ErrorEquals"] for catch in state["Catch"]), name
    states = asl()["States"]
    assert states["Advance"]["Catch"][0]["Next"] == "AdvanceFailed"
    assert states["AdvanceFailed"]["Next"] == "Failed"
    assert {c["Next"] for c in states["RunHttp"]["Catch"]} == {"Advance"}
    launch = states["Launch"]
    assert launch["TimeoutSecondsPath"] == "$.timeout_seconds"
    assert launch["Catch"][0]["ErrorEquals"] == ["States.Timeout", "States.HeartbeatTimeout"]


def test_waits_go_straight_to_the_runner() -> None:
    states = asl()["States"]
    for wait, runner in (
        ("WaitThenRunHttp", "RunHttp"),
        ("WaitThenRunShell", "RunShell"),
        ("WaitThenLaunch", "Launch"),
        ("WaitThenAwaitWorker", "AwaitWorker"),
        ("WaitThenAwaitMessage", "AwaitMessage"),
    ):
        assert states[wait] == {"Type": "Wait", "SecondsPath": "$.wait_seconds", "Next": runner}
    # Task Lambdas and container completions advance the walk themselves: their result (for a
    # container, the callback's output) goes straight back to the Choice.
    assert states["RunHttp"]["Next"] == states["RunShell"]["Next"] == states["Launch"]["Next"] == "Route"
    assert "ResultPath" not in states["Launch"]


def test_a_manual_task_waits_on_the_launch_functions_token_with_its_deadline_as_timeout() -> None:
    states = asl()["States"]
    assert states["WaitThenAwaitApproval"] == {
        "Type": "Wait",
        "SecondsPath": "$.wait_seconds",
        "Next": "AwaitApproval",
    }
    waits = states["AwaitApproval"]
    assert waits["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert waits["Parameters"]["FunctionName"] == "${LaunchFunctionArn}"
    assert waits["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    # The sla_deadline is the state's own timeout: Advance applies the policy's timeout_action.
    assert waits["TimeoutSecondsPath"] == "$.timeout_seconds"
    assert waits["Catch"][0] == {
        "ErrorEquals": ["States.Timeout", "States.HeartbeatTimeout"],
        "ResultPath": "$.error",
        "Next": "Advance",
    }
    assert waits["Next"] == "Route" and "ResultPath" not in waits
