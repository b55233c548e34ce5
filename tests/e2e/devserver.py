"""Start `formica dev` as a real subprocess on a free port and drive it over HTTP."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import httpx

REPO = Path(__file__).resolve().parents[2]
SHARED_SEED = REPO.parent / "shared" / "seed-sensor-job.md"
CORPUS = Path(os.environ.get("FORMICA_CORPUS_DIR") or REPO.parent / "shared" / "formicary-examples")
"""formicary's examples: beside the repository, or where FORMICA_CORPUS_DIR says (a git worktree)."""
STARTUP_SECONDS = 90.0
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
CLI_TIMEOUT = 60.0
"""How long one `formica` command may take (the machine may be busy)."""
MOTO_BANNER = re.compile(r"AWS \(moto\): (http://127\.0\.0\.1:\d+)")
"""The banner line of `formica dev` that names its moto server."""

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_token() -> str:
    return "fmc_e2e_" + secrets.token_urlsafe(18)


def user_env(**extra: str) -> dict[str, str]:
    """This process's environment without Formica's or AWS's variables (as a user's shell would
    have it), plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FORMICA_", "AWS_"))}
    env.update(extra)
    return env


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

    def cli(self) -> Cli:
        """The `formica` command as the holder of formica dev's own (admin) token."""
        return Cli(self.url, self.token)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def moto_url(self) -> str:
        """The moto server's URL, as the banner prints it to the user."""
        found = MOTO_BANNER.search(self.log())
        assert found is not None, self.log()[-3000:]
        return found.group(1)

    def moto_client(self, service: str) -> Any:
        """A boto3 client of ``service`` on formica dev's moto server."""
        return boto3.client(
            service,
            endpoint_url=self.moto_url(),
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

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
    # The token goes in the environment: a command line is readable by every user of the machine.
    env = user_env(FORMICA_DEV_TOKEN=secret, **(extra_env or {}))
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


@contextmanager
def running_dev(
    log_dir: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[DevHandle]:
    """`formica dev` started as ``start_dev`` does, and stopped when the block ends."""
    handle = start_dev(log_dir, extra_env=extra_env, extra_args=extra_args)
    try:
        yield handle
    finally:
        handle.stop()


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


def request_of(client: httpx.Client, request_id: str) -> dict[str, Any]:
    """GET /api/jobs/requests/{id}, which must answer 200."""
    response = client.get(f"/api/jobs/requests/{request_id}")
    assert response.status_code == 200, response.text
    request: dict[str, Any] = response.json()
    return request


def wait_for(
    client: httpx.Client, request_id: str, states: frozenset[str] = FINAL_STATES, timeout: float = 60
) -> dict[str, Any]:
    """The request once its job_state is one of ``states`` (by default: once it has ended)."""
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        nonlocal last
        last = request_of(client, request_id)
        return last if last["job_state"] in states else None

    return poll(
        reached, timeout, lambda: f"request {request_id} not in {sorted(states)} after {timeout}s: {last}"
    )


def tasks_by_type(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A request's tasks (as the API answers a request) by task type."""
    return {task["task_type"]: task for task in request.get("tasks", [])}


def task_state(client: httpx.Client, request_id: str, task_type: str) -> str | None:
    """The task's state now; None while the request has no such task yet."""
    task = tasks_by_type(client.get(f"/api/jobs/requests/{request_id}").json()).get(task_type)
    return None if task is None else str(task["task_state"])


def log_piece(client: httpx.Client, request_id: str, task_type: str, since: int = 0) -> dict[str, Any]:
    """One read of a task's live log from byte ``since`` (text, next_since, finished)."""
    response = client.get(f"/api/jobs/requests/{request_id}/tasks/{task_type}/logs", params={"since": since})
    assert response.status_code == 200, response.text
    piece: dict[str, Any] = response.json()
    return piece


def instance_piece(
    client: httpx.Client, request_id: str, task_type: str, index: int, since: int = 0
) -> dict[str, Any] | None:
    """One read of an instance's log from byte ``since`` (JSON), as ``formica logs -f`` reads it;
    None while the instance is not started yet (404)."""
    response = client.get(
        f"/api/jobs/requests/{request_id}/tasks/{task_type}/logs",
        params={"instance": index, "since": since},
    )
    if response.status_code == 404 and "ran no instance" in response.text:
        return None
    assert response.status_code == 200, response.text
    piece: dict[str, Any] = response.json()
    return piece


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


def poll(
    probe: Callable[[], T | None], timeout: float, message: str | Callable[[], str], interval: float = 0.3
) -> T:
    """Call ``probe`` every ``interval`` seconds until it answers something truthy, and return that;
    after ``timeout`` seconds fail with ``message`` (a callable is asked for it then, so it can
    tell what was last seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(message() if callable(message) else message)


def wait_until(predicate: Callable[[], object], timeout: float, message: str) -> None:
    """Wait until ``predicate()`` is true (``poll`` for a predicate whose answer is not needed)."""
    poll(lambda: bool(predicate()), timeout, message, interval=0.2)


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

    def env(self, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment a command runs in: FORMICA_SERVER, FORMICA_TOKEN, and ``extra_env``."""
        return user_env(FORMICA_SERVER=self.url, FORMICA_TOKEN=self.token, **(extra_env or {}))

    def __call__(
        self,
        *args: str,
        timeout: float = CLI_TIMEOUT,
        stdin: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Ran:
        """Run one command; ``stdin`` is its standard input (none: an empty one)."""
        done = subprocess.run(
            [*formica_command(), *args],
            capture_output=True,
            text=True,
            env=self.env(extra_env),
            input=stdin or "",
            timeout=timeout,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    def ok(
        self,
        *args: str,
        timeout: float = CLI_TIMEOUT,
        stdin: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Ran:
        ran = self(*args, timeout=timeout, stdin=stdin, extra_env=extra_env)
        assert ran.code == 0, (args, ran)
        return ran

    def as_token(self, token: str) -> Cli:
        return Cli(self.url, token)
