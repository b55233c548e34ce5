"""Live logs against a real `formica dev`: a running SHELL task is EXECUTING and its first lines
can be read (over HTTP, from a byte offset) before it ends; `formica logs -f` follows it to the end;
a cancelled attempt keeps what it wrote."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.devserver import Cli, DevHandle, start_dev, submit, upload, wait_for

WAIT_SECONDS = 90.0
TALKER = """\
job_type: e2e-talker
tasks:
- task_type: talk
  method: SHELL
  script:
    - echo "first line"
    - sleep 8
    - echo "second line"
"""
STUCK = """\
job_type: e2e-stuck
tasks:
- task_type: hang
  method: SHELL
  timeout: 5m
  script:
    - echo "before the cancel"
    - sleep 120
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHandle]:
    handle = start_dev(Path(tmp_path_factory.mktemp("dev-live-logs")))
    try:
        with handle.client() as client:
            upload(client, TALKER)
            upload(client, STUCK)
        yield handle
    finally:
        handle.stop()


def log_piece(client: httpx.Client, request_id: str, task_type: str, since: int = 0) -> dict[str, Any]:
    response = client.get(f"/api/jobs/requests/{request_id}/tasks/{task_type}/logs", params={"since": since})
    assert response.status_code == 200, response.text
    piece: dict[str, Any] = response.json()
    return piece


def until(predicate: Any, message: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(message)


def task_state(client: httpx.Client, request_id: str, task_type: str) -> str | None:
    tasks = client.get(f"/api/jobs/requests/{request_id}").json().get("tasks", [])
    return next((task["task_state"] for task in tasks if task["task_type"] == task_type), None)


def test_a_running_tasks_log_is_read_before_it_ends_and_followed_by_the_cli(dev: DevHandle) -> None:
    with dev.client() as client:
        request_id = submit(client, "e2e-talker")
        # While the script sleeps, the task and the request are EXECUTING and its first line is there
        until(
            lambda: task_state(client, request_id, "talk") == "EXECUTING", "the task never showed EXECUTING"
        )
        piece = until(
            lambda: (p := log_piece(client, request_id, "talk")) and "first line" in p["text"] and p,
            "the first line never arrived while the task ran",
        )
        assert "second line" not in piece["text"]
        assert piece["finished"] is False
        assert client.get(f"/api/jobs/requests/{request_id}").json()["job_state"] == "EXECUTING"
        # `formica logs -f` prints the rest as it comes and stops when the task ends
        followed = Cli(dev.url, dev.token).ok("logs", "-f", request_id, "talk", timeout=WAIT_SECONDS)
        lines = followed.out.splitlines()
        assert lines.index("first line") < lines.index("second line")
        assert lines.count("first line") == 1  # each byte once, however many reads it took
        done = wait_for(client, request_id, timeout=WAIT_SECONDS)
        assert done["job_state"] == "COMPLETED"
        # From where the first read stopped, only what came after
        rest = log_piece(client, request_id, "talk", since=piece["next_since"])
        assert "second line" in rest["text"].splitlines()
        assert "first line" not in rest["text"].splitlines()
        assert rest["finished"] is True


def test_a_cancelled_attempt_keeps_the_output_it_wrote(dev: DevHandle) -> None:
    with dev.client() as client:
        request_id = submit(client, "e2e-stuck")
        until(
            lambda: "before the cancel" in log_piece(client, request_id, "hang")["text"],
            "the output never arrived before the cancel",
        )
        assert client.post(f"/api/jobs/requests/{request_id}/cancel").status_code == 200
        done = wait_for(client, request_id, timeout=WAIT_SECONDS)
        assert done["job_state"] == "CANCELLED"
        hang = next(task for task in done["tasks"] if task["task_type"] == "hang")
        assert hang["attempts"] == 1
        whole = until(
            lambda: (p := log_piece(client, request_id, "hang")) and p["finished"] and p,
            "the cancelled task's log never finished",
        )
        assert "before the cancel" in whole["text"]
        plain = client.get(f"/api/jobs/requests/{request_id}/tasks/hang/logs", params={"attempt": 1})
        assert plain.status_code == 200 and "before the cancel" in plain.text
