"""The SHELL sandbox: what handing an attempt to a function without data credentials costs.

Measured: one sandboxed attempt of `true` (grants made by the trusted side, the sandbox's run with
its presigned transfers against moto's S3 server on loopback, the answer checked) against the same
attempt run in-process, as the shell-task function ran it before the sandbox.

Priced (arm64 list prices of bench/cost.py, memory sizes read from the CDK constructs): 1,000 SHELL
attempts of 1 s, 60 s and 600 s in three designs.
- in-process: the shell-task function runs the script at the script's memory (no isolation; the
  design before the sandbox);
- synchronous (built): the shell-task function invokes the sandbox and waits, so the script's time
  is paid twice, once at each function's memory;
- asynchronous (not built): the state machine's RunShell waits on a task token, the shell-task
  function invokes the sandbox asynchronously and returns, and a third, trusted function (the
  sandbox's on-success destination) commits the attempt and answers the token. The script's time is
  paid once, plus one more invocation. States per attempt are 2 in all three.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Figure
from bench.cost import PRICE_PER_GB_SECOND_ARM64, PRICE_PER_REQUEST, cdk_memory_sizes

BENCHMARK = "sandbox"
SHELL_TASK_WORK_SECONDS = 0.035
"""The shell-task function's own work per attempt besides the script (claim, render, log, commit):
bench/cost.py's local shell_task duration for `true`."""
RESULT_FUNCTION_SECONDS = 0.035
RESULT_FUNCTION_MB = 256
DURATIONS = (1.0, 60.0, 600.0)
NOTES = [
    "sandbox: the synchronous design is built (docs/decisions.md): the shell-task function waits for "
    "the sandbox, so a SHELL attempt's script time is billed at both functions' memory; the "
    "asynchronous row prices the alternative (a task-token RunShell and a trusted result function)",
]


def _gb_seconds(memory_mb: int, seconds: float) -> float:
    return memory_mb / 1024 * max(0.001, round(seconds, 3))


def price_per_1000(design: str, seconds: float, overhead: float, memory: dict[str, int]) -> float:
    """Dollars of Lambda for 1,000 SHELL attempts whose script runs ``seconds``."""
    trusted = memory.get("shell_task", 1024)
    sandbox = memory.get("shell_sandbox", 1024)
    if design == "in-process":
        # Before the sandbox, the shell-task function ran the script at the memory scripts get now.
        gb_s = _gb_seconds(sandbox, seconds + SHELL_TASK_WORK_SECONDS)
        requests = 1
    elif design == "synchronous":
        gb_s = _gb_seconds(trusted, seconds + SHELL_TASK_WORK_SECONDS + overhead) + _gb_seconds(
            sandbox, seconds + overhead
        )
        requests = 2
    else:
        gb_s = (
            _gb_seconds(trusted, SHELL_TASK_WORK_SECONDS)
            + _gb_seconds(sandbox, seconds + overhead)
            + _gb_seconds(RESULT_FUNCTION_MB, RESULT_FUNCTION_SECONDS)
        )
        requests = 3
    return 1000 * (gb_s * PRICE_PER_GB_SECOND_ARM64 + requests * PRICE_PER_REQUEST)


def _measure(repetitions: int) -> tuple[float, float]:
    """(in-process, sandboxed) median seconds of one attempt of `true`."""
    import boto3
    from botocore.config import Config
    from formica.jobs.models import TaskDefinition
    from formica.local.server import free_port
    from formica.runners.base import TaskContext
    from formica.runners.grants import mint_capability
    from formica.runners.sandbox import (
        SandboxContext,
        SandboxRequest,
        handle,
        trusted_outcome,
    )
    from formica.runners.shell import fresh_workdir, run_shell
    from formica.store.blobs import S3BlobStore
    from formica.store.grants import GrantRight
    from formica.store.schema import artifact_key
    from moto.server import ThreadedMotoServer

    from tests.integration.conftest import serve_grants

    task = TaskDefinition.model_validate(
        {"task_type": "t", "method": "SHELL", "script": ["true"], "artifacts": {"paths": ["none"]}}
    )
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto's local server
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        client.create_bucket(Bucket="bench-sandbox")
        store = S3BlobStore("bench-sandbox", client=client)
        routes = serve_grants(store)
        route = next(routes)
        root = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
        here: list[float] = []
        sandboxed: list[float] = []
        for attempt in range(repetitions):
            ctx = TaskContext(
                org="o", request_id="r", job_type="j", task_type="t", attempt=attempt, timeout_seconds=30
            )
            started = time.perf_counter()
            workdir = fresh_workdir(ctx, root)
            run_shell(task, ctx, workdir=workdir)
            here.append(time.perf_counter() - started)

            started = time.perf_counter()
            prefix = artifact_key("o", "r", "t", "")
            now = datetime.now(UTC)
            capability = mint_capability(
                route.grants,
                org="o",
                request_id="r",
                task_type="t",
                step=attempt,
                rights=[GrantRight.UPLOAD, GrantRight.CANCEL],
                expires_at=now + timedelta(seconds=600),
                now=now,
                max_bytes=1024,
            )
            request = SandboxRequest(
                task=task.model_dump(mode="json", exclude_none=True, by_alias=True),
                context=SandboxContext(
                    org="o", request_id="r", job_type="j", task_type="t", attempt=attempt, timeout_seconds=30
                ),
                grants_url=route.url,
                capability=capability,
            )
            answer: dict[str, Any] = handle(request.model_dump(mode="json"), work_root=root)
            trusted_outcome(answer, artifact_prefix=prefix)
            sandboxed.append(time.perf_counter() - started)
        routes.close()
    finally:
        server.stop()
    return statistics.median(here), statistics.median(sandboxed)


def run(quick: bool = False) -> list[Figure]:
    here, sandboxed = _measure(3 if quick else 15)
    overhead = max(0.0, sandboxed - here)
    figures = [
        Figure(
            BENCHMARK,
            "one SHELL attempt of `true`, sandboxed (local)",
            round(sandboxed * 1000, 1),
            "ms",
            "in-process attempt",
            round(here * 1000, 1),
            note="the capability minted and exchanged at the grants route, the sandbox's run and its "
            "checked answer; a deployed sandbox adds a Lambda invoke (tens of ms warm) and its exchanges "
            "go through API Gateway",
        )
    ]
    memory = cdk_memory_sizes()
    for seconds in DURATIONS:
        plain = price_per_1000("in-process", seconds, overhead, memory)
        sync = price_per_1000("synchronous", seconds, overhead, memory)
        asynchronous = price_per_1000("asynchronous", seconds, overhead, memory)
        label = f"{seconds:g} s scripts"
        figures.append(
            Figure(
                BENCHMARK,
                f"$ per 1,000 SHELL attempts, {label}: synchronous sandbox (built)",
                round(sync, 4),
                "$",
                "in-process, no isolation",
                round(plain, 4),
                note=f"shell_task {memory.get('shell_task')} MB waits while shell_sandbox "
                f"{memory.get('shell_sandbox')} MB runs",
            )
        )
        figures.append(
            Figure(
                BENCHMARK,
                f"$ per 1,000 SHELL attempts, {label}: asynchronous sandbox (not built)",
                round(asynchronous, 4),
                "$",
                "synchronous sandbox",
                round(sync, 4),
                note="task-token RunShell, plus a trusted result function per attempt",
            )
        )
    return figures


if __name__ == "__main__":
    for figure in run():
        print(figure)
