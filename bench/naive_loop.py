"""The naive loop Formica's state machine is compared with, written here only, and run under moto.

One Lambda state per step of every task attempt: Prepare (load the request, render the task),
Run (run it), Route (apply the exit code), then a Choice on the route and, when polling, a Wait.
Its Lambdas are stand-ins dispatched in-process by a benchmark-only patch of moto's simple Lambda
backend: they do no work, they only replay a scripted sequence of routes, so the execution
history has exactly the states such a design enters. States and history events are counted
from moto's real execution history, as bench/states_per_attempt.py does for Formica's ASL.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import BenchError

FUNCTION_PREFIX = "bench-naive-"
REGION = "us-east-1"
POLL, NEXT, DONE = "POLL", "NEXT", "DONE"


def _lambda_state(name: str, next_state: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": f"{FUNCTION_PREFIX}{name.lower()}", "Payload.$": "$"},
        "OutputPath": "$.Payload",
        "Next": next_state,
    }


NAIVE_ASL: dict[str, Any] = {
    "Comment": "bench only: the naive loop, one Lambda state per step",
    "StartAt": "Prepare",
    "States": {
        "Prepare": _lambda_state("Prepare", "Run"),
        "Run": _lambda_state("Run", "Route"),
        "Route": _lambda_state("Route", "Decide"),
        "Decide": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.action", "StringEquals": POLL, "Next": "Wait"},
                {"Variable": "$.action", "StringEquals": NEXT, "Next": "Prepare"},
            ],
            "Default": "Done",
        },
        "Wait": {"Type": "Wait", "SecondsPath": "$.wait_seconds", "Next": "Prepare"},
        "Done": {"Type": "Succeed"},
    },
}
NAIVE_LAMBDAS_PER_ATTEMPT = 3


def attempt_script(polls: int, tasks: int) -> list[str]:
    """The routes of a job whose first task polls ``polls`` times, then ``tasks`` tasks complete in turn."""
    if tasks < 1:
        raise ValueError("a job has at least one task")
    return [POLL] * polls + [NEXT] * (tasks - 1) + [DONE]


def _prepare(event: dict[str, Any]) -> dict[str, Any]:
    return event


def _run(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "exit_code": 0}


def _route(event: dict[str, Any]) -> dict[str, Any]:
    step = int(event["step"])
    script = list(event["script"])
    return {**event, "step": step + 1, "action": script[step], "wait_seconds": 0}


NAIVE_FUNCTIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    f"{FUNCTION_PREFIX}prepare": _prepare,
    f"{FUNCTION_PREFIX}run": _run,
    f"{FUNCTION_PREFIX}route": _route,
}


@contextlib.contextmanager
def naive_lambdas() -> Iterator[None]:
    """While active, moto's simple Lambda backend answers ``bench-naive-*`` with the stand-ins above."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original = LambdaSimpleBackend.invoke

    def invoke(  # noqa: PLR0917 (moto's signature)
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> str | bytes | None:
        name = function_name.rsplit(":function:", maxsplit=1)[-1].split(":", maxsplit=1)[0]
        function = NAIVE_FUNCTIONS.get(name)
        if function is None:
            result: str | bytes | None = original(
                self, function_name, qualifier, body, headers, response_headers
            )
            return result
        raw = body.decode() if isinstance(body, bytes) else (body or "{}")
        return json.dumps(function(json.loads(raw))).encode()

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
    try:
        yield
    finally:
        LambdaSimpleBackend.invoke = original  # type: ignore[method-assign]


@dataclass(frozen=True)
class HistoryCount:
    """What one execution's history holds."""

    events: int
    states_entered: int
    lambda_invocations: int


def count_history(events: Sequence[dict[str, Any]]) -> HistoryCount:
    """Count events, states entered (``*StateEntered``) and Lambda invocations (lambda TaskScheduled)."""
    entered = sum(1 for event in events if str(event.get("type", "")).endswith("StateEntered"))
    invocations = sum(
        1
        for event in events
        if event.get("type") == "TaskScheduled"
        and event.get("taskScheduledEventDetails", {}).get("resourceType") == "lambda"
    )
    return HistoryCount(events=len(events), states_entered=entered, lambda_invocations=invocations)


def execution_history(client: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution's history, all pages."""
    events: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = client.get_execution_history(**arguments)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        arguments["nextToken"] = page["nextToken"]


def run_naive(scripts: Sequence[Sequence[str]], timeout: float = 120.0) -> list[HistoryCount]:
    """Execute the naive loop once per script under an in-process moto; one count per execution."""
    import boto3
    from moto import mock_aws

    config: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    counts = []
    with mock_aws(config=config), naive_lambdas():
        client: Any = boto3.client(
            "stepfunctions",
            region_name=REGION,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106
        )
        machine = client.create_state_machine(
            name="bench-naive-loop",
            definition=json.dumps(NAIVE_ASL),
            roleArn="arn:aws:iam::123456789012:role/bench-naive",
        )["stateMachineArn"]
        for script in scripts:
            request_id = str(uuid.uuid4())
            payload = {"request_id": request_id, "step": 0, "script": list(script)}
            arn = client.start_execution(stateMachineArn=machine, name=request_id, input=json.dumps(payload))[
                "executionArn"
            ]
            deadline = time.monotonic() + timeout
            while client.describe_execution(executionArn=arn)["status"] == "RUNNING":
                if time.monotonic() > deadline:
                    raise BenchError(f"the naive loop did not finish in {timeout:.0f}s")
                time.sleep(0.02)
            status = client.describe_execution(executionArn=arn)["status"]
            if status != "SUCCEEDED":
                raise BenchError(f"the naive loop ended {status}")
            counts.append(count_history(execution_history(client, arn)))
    return counts
