"""States entered per task attempt and per poll, counted from real execution histories under moto.

The real ASL (cdk/statemachine/job.asl.json) runs in-process under moto with every Lambda dispatched
to its handler (formica.local.lambda_dispatch). For each kind of task the benchmark runs a job of
one task and a job of three, and divides the difference in states entered (``*StateEntered``
history events) and in history events by two: the fixed cost of an execution (its start, the final
Choice and end state) cancels out. Polls are counted the same way, with 1 and 3 polls, with and
without a delay between them. The fixed cost itself is the 1-task job's count less one attempt.

    .venv/bin/python -m bench.states_per_attempt [--quick]
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.common import Figure, standalone

GOAL = 3.0
"""The goal: at most 3 states per task attempt and per poll."""
EXECUTION_FLOOR = 2.0
"""The least an execution can add to its attempts: the last Choice and the end state it routes to."""
TABLE = "formica-bench-states"
BUCKET = "formica-bench-states"
REGION = "us-east-1"
ORG = "bench"
NOTES = [
    "states: per attempt = (states of a 3-task job - states of a 1-task job) / 2, from moto histories of "
    "the real ASL; a poll likewise with 3 and 1 polls",
]


@dataclass(frozen=True)
class Counted:
    states: int
    events: int
    invocations: int = 0


class _Sensor:
    """A loopback HTTP endpoint: ``/ok`` answers 200; ``/poll/<n>`` answers 404 n times, then 200."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def status(self, path: str) -> int:
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1
            calls = self.calls[path]
        if path.startswith("/poll/"):
            return 404 if calls <= int(path.split("/")[2]) else 200
        return 200


@contextlib.contextmanager
def _server() -> Iterator[tuple[str, _Sensor]]:
    sensor = _Sensor()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = sensor.status(self.path)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sensor
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _walk_host() -> Iterator[Any]:
    """moto with the state machine interpreter on, the table, bucket and state machine, the shim."""
    import boto3
    from formica.local.lambda_dispatch import dispatch_lambda_invocations
    from formica.local.statemachine import create_local_state_machine
    from formica.runtime import reset_runtime
    from formica.settings import reset_settings
    from formica.store.aws import reset_clients
    from formica.store.schema import create_bucket, create_table
    from moto import mock_aws

    saved = dict(os.environ)
    work = tempfile.TemporaryDirectory(prefix="formica-bench-")
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": REGION,
            "FORMICA_TABLE_NAME": TABLE,
            "FORMICA_BUCKET_NAME": BUCKET,
            "FORMICA_REGION": REGION,
            "FORMICA_CONTAINER_RUNTIME": "local",
            "FORMICA_LOCAL_CONTAINER_MODE": "host",
            "FORMICA_WORK_ROOT": work.name,
            # A task fan-out's instances run in the task functions, dispatched in-process.
            "FORMICA_HTTP_TASK_FUNCTION": "formica-http-task",
            "FORMICA_SHELL_TASK_FUNCTION": "formica-shell-task",
            # The jobs' web server is on 127.0.0.1: open loopback to HTTP tasks (AWS refuses it).
            "FORMICA_HTTP_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    for name in ("AWS_PROFILE", "FORMICA_AWS_ENDPOINT_URL", "FORMICA_STATE_MACHINE_ARN"):
        os.environ.pop(name, None)

    def reset() -> None:
        reset_settings()
        reset_clients()
        reset_runtime()

    config: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    try:
        reset()
        with mock_aws(config=config), dispatch_lambda_invocations():
            create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
            create_bucket(boto3.client("s3", region_name=REGION), BUCKET, REGION)
            sfn = boto3.client("stepfunctions", region_name=REGION)
            os.environ["FORMICA_STATE_MACHINE_ARN"] = create_local_state_machine(sfn)
            reset()
            yield sfn
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset()
        work.cleanup()


def _run_job(
    sfn: Any, yaml_text: str, job_type: str, serial: int, params: dict[str, str] | None = None
) -> Counted:
    from formica.jobs import parse_definition
    from formica.runtime import get_runtime, start_request
    from formica.store.definitions import DefinitionRepository
    from formica.store.requests import JobRequestItem, now_iso

    version, _, _ = DefinitionRepository(TABLE).put_version(ORG, yaml_text, parse_definition(yaml_text))
    request_id = f"bench-{serial:04d}"
    now = now_iso()
    requests = get_runtime().requests
    requests.create(
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
    start_request(request_id, get_runtime())
    deadline = time.monotonic() + 120
    arn = os.environ["FORMICA_STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:")
    while time.monotonic() < deadline:
        request = requests.get(request_id)
        if request is not None and request.is_final:
            names = [f"{request_id}-{n}" for n in range(1, request.execution_count + 1)]
            statuses = [sfn.describe_execution(executionArn=f"{arn}:{name}")["status"] for name in names]
            if "RUNNING" not in statuses:
                if request.job_state != "COMPLETED":
                    raise RuntimeError(
                        f"bench job {job_type} ended {request.job_state}: {request.error_message}"
                    )
                return _count(sfn, [f"{arn}:{name}" for name in names])
        time.sleep(0.02)
    raise RuntimeError(f"bench job {job_type} did not finish")


def history(sfn: Any, execution_arns: list[str]) -> list[dict[str, Any]]:
    """Every history event of the executions, in order."""
    events: list[dict[str, Any]] = []
    for arn in execution_arns:
        token: str | None = None
        while True:
            page = sfn.get_execution_history(
                executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
            )
            events.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                break
    return events


SCHEDULED_EVENTS = ("TaskScheduled", "LambdaFunctionScheduled")
"""History events that each stand for one Lambda invocation."""


def _count(sfn: Any, execution_arns: list[str]) -> Counted:
    events = history(sfn, execution_arns)
    states = sum(1 for event in events if event["type"].endswith("StateEntered"))
    invocations = sum(1 for event in events if event["type"] in SCHEDULED_EVENTS)
    return Counted(states, len(events), invocations)


def _chain(job_type: str, count: int, task: str) -> str:
    lines = [f"job_type: {job_type}", "tasks:"]
    for index in range(count):
        lines.append(task.format(name=f"t{index}"))
        if index + 1 < count:
            lines.append(f"  on_completed: t{index + 1}")
    return "\n".join(lines) + "\n"


def _kinds(base_url: str) -> dict[str, str]:
    return {
        "http": f"- task_type: {{name}}\n  method: HTTP_GET\n  script:\n    - {base_url}/ok",
        "shell": "- task_type: {name}\n  method: SHELL\n  script:\n    - 'true'",
        "container": "- task_type: {name}\n  container:\n    image: alpine\n  script:\n    - 'true'",
    }


def _poller(job_type: str, base_url: str, polls: int, delay: str) -> str:
    delay_line = f"  delay_between_retries: {delay}\n" if delay else ""
    return (
        f"job_type: {job_type}\ntasks:\n- task_type: sense\n  method: HTTP_GET\n{delay_line}"
        f"  script:\n    - {base_url}/poll/{polls}/{job_type}\n  on_exit_code:\n    404: EXECUTING\n"
    )


FIXED = "execution, besides its attempts"


def measure() -> dict[str, tuple[float, float]]:
    """(states, history events) per attempt of each kind and per poll, with and without a delay."""
    results: dict[str, tuple[float, float]] = {}
    serial = 0
    with _server() as (base_url, _), _walk_host() as sfn:
        for kind, task in _kinds(base_url).items():
            counted = []
            for size in (1, 3):
                serial += 1
                job_type = f"{kind}-{size}"
                counted.append(_run_job(sfn, _chain(job_type, size, task), job_type, serial))
            per_attempt = (
                (counted[1].states - counted[0].states) / 2,
                (counted[1].events - counted[0].events) / 2,
            )
            results[f"{kind} attempt"] = per_attempt
            if kind == "shell":
                results[FIXED] = (counted[0].states - per_attempt[0], counted[0].events - per_attempt[1])
        for label, delay in (("poll, delay 0", ""), ("poll, delay 1s", "1s")):
            counted = []
            for polls in (1, 3):
                serial += 1
                job_type = f"poll-{polls}-{'d' if delay else 'n'}"
                counted.append(_run_job(sfn, _poller(job_type, base_url, polls, delay), job_type, serial))
            results[label] = (
                (counted[1].states - counted[0].states) / 2,
                (counted[1].events - counted[0].events) / 2,
            )
    return results


def run(quick: bool = False) -> list[Figure]:
    """The figures for ``make bench`` (``quick`` changes nothing: the runs are already short)."""
    figures: list[Figure] = []
    for name, (states, events) in measure().items():
        if name == FIXED:
            figures.append(
                Figure(
                    "states",
                    f"states per {name}",
                    states,
                    "states",
                    baseline="floor: last Choice + end state",
                    baseline_value=EXECUTION_FLOOR,
                    note=(
                        f"{events:g} history events; the execution starts with its first decision as input "
                        "(no Pass, no first Advance: docs/decisions.md D13)"
                    ),
                )
            )
            continue
        figures.append(
            Figure(
                "states",
                f"states per {name}",
                states,
                "states",
                baseline="goal",
                baseline_value=GOAL,
                note=f"{events:g} history events each",
            )
        )
    return figures


def main() -> None:
    standalone(run, __doc__ or "")


if __name__ == "__main__":
    main()
