"""Live logs against a real `formica dev`: a running SHELL task is EXECUTING and its first lines
can be read (over HTTP, from a byte offset) before it ends; `formica logs -f` follows it to the end;
a cancelled attempt keeps what it wrote."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.devserver import (
    DevHandle,
    log_piece,
    poll,
    running_dev,
    submit,
    task_state,
    tasks_by_type,
    upload,
    wait_for,
)

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
    with running_dev(tmp_path_factory.mktemp("dev-live-logs")) as handle:
        with handle.client() as client:
            upload(client, TALKER)
            upload(client, STUCK)
        yield handle


def test_a_running_tasks_log_is_read_before_it_ends_and_followed_by_the_cli(dev: DevHandle) -> None:
    with dev.client() as client:
        request_id = submit(client, "e2e-talker")
        # While the script sleeps, the task and the request are EXECUTING and its first line is there
        poll(
            lambda: task_state(client, request_id, "talk") == "EXECUTING",
            WAIT_SECONDS,
            "the task never showed EXECUTING",
        )
        piece = poll(
            lambda: (p := log_piece(client, request_id, "talk")) and "first line" in p["text"] and p,
            WAIT_SECONDS,
            "the first line never arrived while the task ran",
        )
        assert "second line" not in piece["text"]
        assert piece["finished"] is False
        assert client.get(f"/api/jobs/requests/{request_id}").json()["job_state"] == "EXECUTING"
        # `formica logs -f` prints the rest as it comes and stops when the task ends
        followed = dev.cli().ok("logs", "-f", request_id, "talk", timeout=WAIT_SECONDS)
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
        poll(
            lambda: "before the cancel" in log_piece(client, request_id, "hang")["text"],
            WAIT_SECONDS,
            "the output never arrived before the cancel",
        )
        assert client.post(f"/api/jobs/requests/{request_id}/cancel").status_code == 200
        done = wait_for(client, request_id, timeout=WAIT_SECONDS)
        assert done["job_state"] == "CANCELLED"
        hang = tasks_by_type(done)["hang"]
        assert hang["attempts"] == 1
        whole = poll(
            lambda: (p := log_piece(client, request_id, "hang")) and p["finished"] and p,
            WAIT_SECONDS,
            "the cancelled task's log never finished",
        )
        assert "before the cancel" in whole["text"]
        plain = client.get(f"/api/jobs/requests/{request_id}/tasks/hang/logs", params={"attempt": 1})
        assert plain.status_code == 200 and "before the cancel" in plain.text
