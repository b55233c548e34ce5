"""Live logs of SHELL attempts in the sandbox, against a real `formica dev` that hands them to the
sandbox function as the deployed stack does: the sandbox holds no credentials, yet a running task's
first line is readable over HTTP before it ends (chunks PUT through its capability's live right),
with the job's secret masked as in the whole log, which begins with what the chunks held."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.devserver import (
    DevHandle,
    instance_piece,
    log_piece,
    poll,
    running_dev,
    submit,
    task_state,
    upload,
    wait_for,
)
from tests.fanout_jobs import SAME_NAME_EACH

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
TALK_EACH = """\
job_type: e2e-sandbox-talk-each
tasks:
- task_type: talk
  method: SHELL
  fan_out:
    source: '["quick", "slow"]'
    item_var: who
  script:
    - echo "first line of {{ .who }} token=$DEPLOY_TOKEN"
    - sleep {{ if eq .who "slow" }}8{{ else }}0{{ end }}
    - echo "second line of {{ .who }}"
"""
SECRET = "live-secret-value-9876"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHandle]:
    with running_dev(
        tmp_path_factory.mktemp("dev-sandbox-live"),
        extra_env={"FORMICA_SHELL_SANDBOX_FUNCTION": "formica-shell-sandbox"},
    ) as handle:
        with handle.client() as client:
            jobs = ((TALKER, "e2e-sandbox-talker"), (TALK_EACH, "e2e-sandbox-talk-each"))
            upload(client, SAME_NAME_EACH.format(job_type="e2e-sandbox-same-name"))
            for definition, job_type in jobs:
                upload(client, definition)
                created = client.post(
                    f"/api/jobs/definitions/{job_type}/configs",
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


def test_a_sandboxed_fan_out_instances_first_line_is_read_under_its_own_instance_before_it_ends(
    dev: DevHandle,
) -> None:
    with dev.client() as client:
        # Given a SHELL task fanned out over two items, each run in the sandbox with its own capability
        request_id = submit(client, "e2e-sandbox-talk-each")

        # When instance 1's log is read while it sleeps between its lines
        piece = poll(
            lambda: (p := instance_piece(client, request_id, "talk", 1)) and "first line" in p["text"] and p,
            WAIT_SECONDS,
            "instance 1's first line never arrived while it ran in the sandbox",
        )

        # Then its first line is there, masked, and nothing of instance 0's
        assert "second line" not in piece["text"] and piece["finished"] is False, piece
        assert "first line of slow token=****" in piece["text"] and SECRET not in piece["text"]
        assert "quick" not in piece["text"]
        done = wait_for(client, request_id, timeout=WAIT_SECONDS)
        assert done["job_state"] == "COMPLETED", (done, dev.log()[-3000:])
        # And the whole log it ended with begins with what its chunks held
        whole = client.get(f"/api/jobs/requests/{request_id}/tasks/talk/logs", params={"instance": 1}).text
        assert whole.startswith(piece["text"]), (piece["text"], whole)
        assert "[ran in the SHELL sandbox formica-shell-sandbox]" in whole and SECRET not in whole


def test_sandboxed_instances_writing_the_same_name_keep_each_their_own(dev: DevHandle) -> None:
    with dev.client() as client:
        # Given two sandboxed instances that upload out/result.txt, each through its own capability
        request_id = submit(client, "e2e-sandbox-same-name")

        # When the job runs (a task depending on them reads both)
        done = wait_for(client, request_id, timeout=WAIT_SECONDS)

        # Then each landed under its own instance's directory, and the dependent task saw both
        assert done["job_state"] == "COMPLETED", (done, dev.log()[-3000:])
        read = client.get(f"/api/jobs/requests/{request_id}/tasks/read/logs").text
        assert "colour red\ncolour blue" in read, read
        records = client.get(f"/api/jobs/requests/{request_id}/artifacts").json()["records"]
        listed = sorted((record["instance"], record["name"]) for record in records)
        assert listed == [(0, "instance-0/out/result.txt"), (1, "instance-1/out/result.txt")], records
