"""Live logs of SHELL attempts in the sandbox, against a real `formica dev` that hands them to the
sandbox function as the deployed stack does: the sandbox holds no credentials, yet a running task's
first line is readable over HTTP before it ends (chunks PUT through its capability's live right),
with the job's secret masked as in the whole log, which begins with what the chunks held."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.devserver import DevHandle, log_piece, poll, running_dev, submit, task_state, upload, wait_for

WAIT_SECONDS = 90.0

TALKER = """\
job_type: e2e-sandbox-talker
tasks:
- task_type: talk
  method: SHELL
  script:
    - echo "first line token=$DEPLOY_TOKEN"
    - sleep 8
    - echo "second line"
"""
SECRET = "live-secret-value-9876"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHandle]:
    with running_dev(
        tmp_path_factory.mktemp("dev-sandbox-live"),
        extra_env={"FORMICA_SHELL_SANDBOX_FUNCTION": "formica-shell-sandbox"},
    ) as handle:
        with handle.client() as client:
            upload(client, TALKER)
            created = client.post(
                "/api/jobs/definitions/e2e-sandbox-talker/configs",
                json={"name": "DEPLOY_TOKEN", "value": SECRET, "secret": True},
            )
            assert created.status_code == 201, created.text
        yield handle


def test_a_sandboxed_tasks_first_line_is_read_before_it_ends(dev: DevHandle) -> None:
    with dev.client() as client:
        request_id = submit(client, "e2e-sandbox-talker")
        poll(
            lambda: task_state(client, request_id, "talk") == "EXECUTING",
            WAIT_SECONDS,
            "the task never showed EXECUTING",
        )

        piece = poll(
            lambda: (p := log_piece(client, request_id, "talk")) and "first line" in p["text"] and p,
            WAIT_SECONDS,
            "the sandbox's first line never arrived while the task ran",
        )

        assert "second line" not in piece["text"] and piece["finished"] is False
        assert "first line token=****" in piece["text"] and SECRET not in piece["text"]
        done = wait_for(client, request_id, timeout=WAIT_SECONDS)
        assert done["job_state"] == "COMPLETED", (done, dev.log()[-3000:])
        whole = client.get(f"/api/jobs/requests/{request_id}/tasks/talk/logs").text
        live_text = piece["text"].removeprefix("--- attempt 1 ---\n")  # the followed read's section header
        assert whole.startswith(live_text), (live_text, whole)
        assert "[ran in the SHELL sandbox formica-shell-sandbox]" in whole and SECRET not in whole
        rest = log_piece(client, request_id, "talk", since=piece["next_since"])
        assert "second line" in rest["text"].splitlines() and rest["finished"] is True
