"""Jobs run through an in-process `formica dev`, with every Lambda invocation timed.

For the cost benchmark: the local duration of each function (http_task, shell_task, launch, ...;
advance when a Catch path ran it) and of ``first_decision`` (Advance's start logic, which the
starter runs since D13, inside the API's submit), and, from moto's execution histories of the same
jobs, the states entered per job.
The server is G's ``DevServer`` in this process so that the handlers can be timed: the dispatch
function of D's moto shim (``formica.local.lambda_dispatch.invoke_handler``) is wrapped for the
duration of the run, and restored after. HTTP tasks call a stub on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from bench.common import BenchError, median
from bench.devserver import StatusErrors, free_port, submit, upload, wait_final
from bench.language import seed_definition
from bench.naive_loop import HistoryCount, count_history, execution_history

POLL_DELAY = "1s"
"""The sensor's delay between polls here (the seed says 5s): polls are real waits under moto."""


class _Stub(BaseHTTPRequestHandler):
    """jsonplaceholder's two paths of the seed: the wrong one 404s, the right one answers JSON."""

    def do_GET(self) -> None:
        if self.path.endswith("/todos/1") and "blaaaaah" not in self.path:
            body = b'{"userId": 1, "id": 1, "title": "delectus aut autem", "completed": false}'
            self.send_response(200)
        else:
            body = b"{}"
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def http_stub() -> Iterator[str]:
    """A loopback HTTP server for the HTTP tasks; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def sensor_definition(base_url: str) -> tuple[str, str]:
    """(YAML, source): the seed's sensor job with its URLs on ``base_url``, polls every
    ``POLL_DELAY`` and the second task's random exit code fixed at 0 (the happy path)."""
    seed = seed_definition()
    source = "the seed (URLs on a loopback stub, 1s poll delay, exit code 0)"
    if seed is None:
        source = "a copy of the seed's shape (../shared/seed-sensor-job.md is absent)"
        seed = _SEED_SHAPE
    text = seed.replace("https://jsonplaceholder.typicode.com", base_url)
    text = re.sub(r"delay_between_retries: *\S+", f"delay_between_retries: {POLL_DELAY}", text)
    text = re.sub(r"exit \{\{ *Random 0 5 *\}\}", "exit 0", text)
    return text, source


_SEED_SHAPE = """job_type: sensor-job
tasks:
- task_type: first
  method: HTTP_GET
  allow_failure: true
  timeout: 15s
  delay_between_retries: 5s
  script:
    {{ if lt .JobElapsedSecs 3 }}
    - https://jsonplaceholder.typicode.com/blaaaaahtodos/1
    {{ else }}
    - https://jsonplaceholder.typicode.com/todos/1
    {{ end }}
  on_completed: second
  on_exit_code:
    404: EXECUTING
- task_type: second
  container:
    image: alpine
  script:
    - exit {{ Random 0 5 }}
  on_completed: third
- task_type: third
  container:
    image: alpine
  script:
    - date > date.txt
  artifacts:
    paths:
      - date.txt
"""


def chain(job_type: str, kind: str, tasks: int, base_url: str) -> str:
    """``tasks`` tasks of one kind (http, shell, container) in a chain, each succeeding at once."""
    body = {
        "http": ["  method: HTTP_GET", "  script:", f"    - {base_url}/todos/1"],
        "shell": ["  method: SHELL", "  script:", "    - 'true'"],
        "container": ["  container:", "    image: alpine", "  script:", "    - 'true'"],
    }[kind]
    lines = [f"job_type: {job_type}", "tasks:"]
    for index in range(tasks):
        lines += [f"- task_type: t{index}", *body]
        if index + 1 < tasks:
            lines.append(f"  on_completed: t{index + 1}")
    return "\n".join(lines) + "\n"


def polling(job_type: str, base_url: str) -> str:
    """One HTTP task that polls (404 -> EXECUTING) until JobElapsedSecs >= 3, then answers 200."""
    return (
        f"job_type: {job_type}\ntasks:\n- task_type: poll\n  method: HTTP_GET\n"
        f"  delay_between_retries: {POLL_DELAY}\n  timeout: 60s\n  script:\n"
        "    {{ if lt .JobElapsedSecs 3 }}\n"
        f"    - {base_url}/blaaaaahtodos/1\n"
        "    {{ else }}\n"
        f"    - {base_url}/todos/1\n"
        "    {{ end }}\n"
        "  on_exit_code:\n    404: EXECUTING\n"
    )


@dataclass(frozen=True)
class JobRun:
    """One job as it ran: its histories (every execution) and the attempts of each task."""

    job_type: str
    state: str
    history: HistoryCount
    executions: int
    attempts: dict[str, int]
    seconds: float
    cost: dict[str, Any] = field(default_factory=dict)
    """What Formica counted for the request as it ran (the API's ``cost``)."""


@dataclass
class LocalRuns:
    jobs: dict[str, JobRun] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    calls: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """function folder -> AWS operations its invocations made (``dynamodb.GetItem`` ...)."""
    sensor_source: str = ""

    def median_durations(self) -> dict[str, float]:
        return {function: median(samples) for function, samples in self.durations.items() if samples}

    def calls_per_invocation(self, function: str) -> float:
        invocations = len(self.durations.get(function, ()))
        return sum(self.calls[function].values()) / invocations if invocations else 0.0


_current = threading.local()


def current_function() -> str | None:
    """The function folder whose invocation this thread is running (under ``timed_lambdas``), if any."""
    folder: str | None = getattr(_current, "folder", None)
    return folder


@contextlib.contextmanager
def timed_lambdas(runs: LocalRuns) -> Iterator[None]:
    """Time every Lambda invocation D's shim dispatches, by function folder."""
    from formica.local import lambda_dispatch

    original = lambda_dispatch.invoke_handler

    def timed(folder: str, body: bytes | str | None, region: str = "us-east-1") -> tuple[bytes, bool]:
        _current.folder = folder
        started = time.perf_counter()
        try:
            return original(folder, body, region)
        finally:
            runs.durations[folder].append(time.perf_counter() - started)
            _current.folder = None

    from formica.runtime.walker import Walker

    original_decision = Walker.first_decision

    def timed_decision(self: Walker, request: Any, execution: str) -> dict[str, Any] | None:
        outer = current_function()
        if outer is None:
            _current.folder = FIRST_DECISION
        started = time.perf_counter()
        try:
            return original_decision(self, request, execution)
        finally:
            runs.durations[FIRST_DECISION].append(time.perf_counter() - started)
            _current.folder = outer

    lambda_dispatch.invoke_handler = timed
    Walker.first_decision = timed_decision  # type: ignore[method-assign]
    try:
        yield
    finally:
        lambda_dispatch.invoke_handler = original
        Walker.first_decision = original_decision  # type: ignore[method-assign]


FIRST_DECISION = "first_decision"
"""Not a function: Advance's start logic timed where it runs now (the starter: the API's submit,
continue-as-new, the sweep)."""


def count_calls(runs: LocalRuns, services: tuple[str, ...] = ("dynamodb", "s3", "stepfunctions")) -> None:
    """Count, per Lambda function, the AWS operations made while it runs (botocore's before-call event)."""
    from formica.store.aws import get_client

    def before_call(model: Any, **_: Any) -> None:
        folder = current_function()
        if folder:
            runs.calls[folder][f"{model.service_model.service_name}.{model.name}"] += 1

    for service in services:
        get_client(service).meta.events.register("before-call", before_call)


@contextlib.contextmanager
def quiet_handlers() -> Iterator[None]:
    """Handlers log errors only (their expected warnings, e.g. containers run on the host, would fill
    the benchmark's output); set before they are imported, restored after."""
    saved = os.environ.get("POWERTOOLS_LOG_LEVEL")
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("POWERTOOLS_LOG_LEVEL", None)
        else:
            os.environ["POWERTOOLS_LOG_LEVEL"] = saved


def _histories(sfn: Any, state_machine_arn: str, request_id: str) -> tuple[HistoryCount, int]:
    executions = [
        execution
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn)
        for execution in page["executions"]
        if execution["name"].startswith(request_id[:60])
    ]
    for execution in executions:  # the run is over only when its last execution is
        deadline = time.monotonic() + 30
        while sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise BenchError(f"execution {execution['name']} still running")
            time.sleep(0.05)
    events: list[dict[str, Any]] = []
    for execution in executions:
        events += execution_history(sfn, execution["executionArn"])
    return count_history(events), len(executions)


def run_jobs(definitions: dict[str, str], timeout: float = 120.0) -> LocalRuns:
    """Upload and run each definition once (keys are job types) on an in-process `formica dev`."""
    from formica.local.server import DevOptions, DevServer
    from formica.settings import get_settings
    from formica.store.aws import get_client

    runs = LocalRuns()
    errors = StatusErrors()
    server = DevServer(DevOptions(port=free_port(), token="fmc_bench_" + "x" * 24))
    with quiet_handlers(), timed_lambdas(runs), server:
        sfn = get_client("stepfunctions")
        count_calls(runs)
        machine = get_settings().state_machine_arn or ""
        headers = {"Authorization": f"Bearer {server.token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            for yaml_text in definitions.values():
                upload(client, yaml_text)
            runs.durations.clear()  # nothing ran yet; keep the figures to the jobs below
            runs.calls.clear()
            for job_type in definitions:
                started = time.perf_counter()
                request_id = submit(client, job_type)
                status = wait_final(client, request_id, timeout=timeout, errors=errors)
                seconds = time.perf_counter() - started
                history, executions = _histories(sfn, machine, request_id)
                attempts = {task["task_type"]: int(task.get("attempts") or 0) for task in status["tasks"]}
                runs.jobs[job_type] = JobRun(
                    job_type,
                    status["job_state"],
                    history,
                    executions,
                    attempts,
                    seconds,
                    status.get("cost") or {},
                )
    return runs
