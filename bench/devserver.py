"""Start `formica dev` as a subprocess on a free loopback port for a benchmark, and stop it after.

A subprocess, not an in-process server: the load generator must not share the server's GIL.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO, BenchError

STARTUP_SECONDS = 90.0
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


class DevServerStartError(BenchError):
    """`formica dev` exited or did not answer /api/health in time."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class DevProcess:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_seconds: float

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextlib.contextmanager
def dev_server() -> Iterator[DevProcess]:
    """A running `formica dev` (health answered), stopped with SIGTERM on exit."""
    port = free_port()
    token = "fmc_bench_" + secrets.token_urlsafe(18)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FORMICA_", "AWS_"))}
    # The token goes in the environment: a command line is readable by every user of the machine.
    env["FORMICA_DEV_TOKEN"] = token
    with tempfile.TemporaryDirectory(prefix="formica-bench-") as folder:
        log_path = Path(folder) / "formica-dev.log"
        started = time.monotonic()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "formica.cli.dev", "--port", str(port)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        handle = DevProcess(f"http://127.0.0.1:{port}", token, process, log_path, 0.0)
        try:
            _wait_healthy(handle, started)
            yield handle
        finally:
            _stop(process)


def _wait_healthy(handle: DevProcess, started: float) -> None:
    deadline = started + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise DevServerStartError(
                f"formica dev exited with {handle.process.returncode}:\n{handle.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{handle.url}/api/health", timeout=2).status_code == 200:
                handle.startup_seconds = time.monotonic() - started
                return
        time.sleep(0.2)
    raise DevServerStartError(f"formica dev was not healthy in {STARTUP_SECONDS:.0f}s:\n{handle.log_tail()}")


def upload(client: httpx.Client, yaml_text: str) -> None:
    response = client.post(
        "/api/jobs/definitions", content=yaml_text, headers={"Content-Type": "application/yaml"}
    )
    if response.status_code not in (200, 201):
        raise BenchError(f"definition upload answered {response.status_code}: {response.text[:500]}")


def submit(client: httpx.Client, job_type: str, params: Mapping[str, Any] | None = None) -> str:
    response = client.post("/api/jobs/requests", json={"job_type": job_type, "params": dict(params or {})})
    if response.status_code != 201:
        raise BenchError(f"submit answered {response.status_code}: {response.text[:500]}")
    return str(response.json()["id"])


@dataclass
class StatusErrors:
    """Non-200 answers to status polls, kept to be reported (a benchmark is no place to hide them)."""

    answers: list[str] = field(default_factory=list)


def wait_final(
    client: httpx.Client,
    request_id: str,
    timeout: float,
    *,
    interval: float = 0.25,
    errors: StatusErrors | None = None,
    tolerate: int = 3,
) -> dict[str, Any]:
    """The request's status once it is COMPLETED, FAILED or CANCELLED.

    Up to ``tolerate`` non-200 answers are recorded in ``errors`` and polled past; one more raises.
    """
    seen = errors if errors is not None else StatusErrors()
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    failures = 0
    while time.monotonic() < deadline:
        response = client.get(f"/api/jobs/requests/{request_id}")
        if response.status_code != 200:
            failures += 1
            seen.answers.append(f"{response.status_code}: {response.text[:200]}")
            if failures > tolerate:
                raise BenchError(f"status answered {response.status_code}: {response.text[:500]}")
            time.sleep(interval)
            continue
        last = response.json()
        if last.get("job_state") in FINAL_STATES:
            return last
        time.sleep(interval)
    raise BenchError(f"request {request_id} did not finish in {timeout:.0f}s: {last.get('job_state')}")
