"""Start `formica dev` as a real subprocess on a free port and drive it over HTTP."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
SHARED_SEED = REPO.parent / "shared" / "seed-sensor-job.md"
CORPUS = Path(os.environ.get("FORMICA_CORPUS_DIR") or REPO.parent / "shared" / "formicary-examples")
"""formicary's examples: beside the repository, or where FORMICA_CORPUS_DIR says (a git worktree)."""
STARTUP_SECONDS = 90.0
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
CLI_TIMEOUT = 60.0
"""How long one `formica` command may take (the machine may be busy)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_token() -> str:
    return "fmc_e2e_" + secrets.token_urlsafe(18)


def formica_command() -> list[str]:
    """The `formica` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("formica")
    return [str(script)] if script.exists() else [sys.executable, "-m", "formica.cli"]


@dataclass
class DevHandle:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
                raise AssertionError(
                    f"formica dev ignored signal {sig} for {timeout}s:\n{self.log()[-3000:]}"
                ) from None
        return int(self.process.returncode)


def start_dev(
    log_dir: Path,
    *,
    port: int | None = None,
    token: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> DevHandle:
    """Start `formica dev` (with ``extra_args`` on its command line) and return once GET /api/health
    answers 200."""
    chosen = port or free_port()
    secret = token or new_token()
    log_path = log_dir / f"formica-dev-{chosen}.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FORMICA_", "AWS_"))}
    # The token goes in the environment: a command line is readable by every user of the machine.
    env["FORMICA_DEV_TOKEN"] = secret
    env.update(extra_env or {})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "formica.cli.dev", "--port", str(chosen), *extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    handle = DevHandle(url=f"http://127.0.0.1:{chosen}", token=secret, process=process, log_path=log_path)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"formica dev exited with {process.returncode}:\n{handle.log()[-5000:]}")
        try:
            if httpx.get(f"{handle.url}/api/health", timeout=2).status_code == 200:
                return handle
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    handle.stop(signal.SIGKILL)
    raise AssertionError(f"formica dev was not healthy in {STARTUP_SECONDS}s:\n{handle.log()[-5000:]}")


def upload(client: httpx.Client, yaml_text: str) -> dict[str, Any]:
    response = client.post(
        "/api/jobs/definitions", content=yaml_text, headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def submit(client: httpx.Client, job_type: str, params: Mapping[str, Any] | None = None) -> str:
    response = client.post("/api/jobs/requests", json={"job_type": job_type, "params": dict(params or {})})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def wait_for(
    client: httpx.Client, request_id: str, states: frozenset[str] = FINAL_STATES, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/jobs/requests/{request_id}")
        assert response.status_code == 200, response.text
        last = response.json()
        if last["job_state"] in states:
            return last
        time.sleep(0.3)
    raise AssertionError(f"request {request_id} not in {sorted(states)} after {timeout}s: {last}")


def pids_running(marker: str) -> list[int]:
    """Pids of live processes whose command line contains ``marker``."""
    listing = subprocess.run(
        ["ps", "-A", "-o", "pid=", "-o", "stat=", "-o", "args="], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for line in listing.splitlines():
        fields = line.split(None, 2)
        if (
            len(fields) == 3
            and marker in fields[2]
            and not fields[1].startswith("Z")
            and "ps -A" not in fields[2]
        ):
            found.append(int(fields[0]))
    return found


def wait_until(predicate: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(message)


@dataclass(frozen=True)
class Ran:
    """One `formica` command's exit code and output."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass(frozen=True)
class Cli:
    """Runs `formica ...` as a subprocess against the dev server, as the holder of ``token``, with
    FORMICA_SERVER and FORMICA_TOKEN in its environment as a user would (nothing else of Formica's
    or AWS's from the test's own environment)."""

    url: str
    token: str

    def __call__(self, *args: str, timeout: float = CLI_TIMEOUT, stdin: str | None = None) -> Ran:
        """Run one command; ``stdin`` is its standard input (none: an empty one)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("FORMICA_", "AWS_"))}
        env.update({"FORMICA_SERVER": self.url, "FORMICA_TOKEN": self.token})
        done = subprocess.run(
            [*formica_command(), *args],
            capture_output=True,
            text=True,
            env=env,
            input=stdin or "",
            timeout=timeout,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, timeout: float = CLI_TIMEOUT, stdin: str | None = None) -> Ran:
        ran = self(*args, timeout=timeout, stdin=stdin)
        assert ran.code == 0, (args, ran)
        return ran

    def as_token(self, token: str) -> Cli:
        return Cli(self.url, token)
