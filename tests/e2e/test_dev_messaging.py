"""MESSAGING against a real `formica dev`: formicary's messaging-job runs to COMPLETED when
`formica messaging reply`, a subprocess started as a user would, answers its request on the
organisation's request queue in the dev server's moto; a failing exit code from the same command
is routed by on_exit_code; with no request, the command says so and exits 1."""

from __future__ import annotations

import re

import pytest

from tests.e2e.devserver import CORPUS, DevHandle, submit, upload, wait_for

MESSAGING_JOB = CORPUS / "messaging-job.yaml"
pytestmark = pytest.mark.skipif(
    not MESSAGING_JOB.exists(), reason=f"formicary's corpus is not at {CORPUS} (the shared folder is absent)"
)
REQUEST_QUEUE = "formicary-message-ant-request"
ROUTED_JOB = """
job_type: messaging-routed
tasks:
- task_type: trigger
  method: MESSAGING
  timeout: 60s
  messaging_request_queue: formicary-message-ant-request
  messaging_reply_queue: formicary-message-ant-response
  on_exit_code:
    "3": cleanup
  on_completed: after
- task_type: after
  method: SHELL
  script:
    - echo after
- task_type: cleanup
  method: SHELL
  script:
    - echo "cleaning up after {{.Reason}}"
"""


def moto_and_org(dev: DevHandle) -> tuple[str, str]:
    """The moto URL and the organisation, as `formica dev`'s banner prints them to its user."""
    banner = dev.log()
    org = re.search(r"\(organisation ([\w.-]+)\)", banner)
    assert org, banner[-3000:]
    return dev.moto_url(), org.group(1)


def reply(dev: DevHandle, *args: str) -> tuple[int, str, str]:
    moto, org = moto_and_org(dev)
    where = ("--queue", REQUEST_QUEUE, "--org", org, "--endpoint-url", moto)
    ran = dev.cli()("messaging", "reply", *where, *args, timeout=120)
    return ran.code, ran.out, ran.err


def test_formicarys_messaging_job_completes_when_the_cli_replies(dev: DevHandle) -> None:
    # Given formicary's messaging-job, submitted
    with dev.client() as client:
        upload(client, MESSAGING_JOB.read_text(encoding="utf-8"))
        request_id = submit(client, "messaging-job")

        # When `formica messaging reply` answers the next request on the organisation's queue
        code, out, err = reply(dev, "--context", "Answer=forty-two", "--wait", "60")

        # Then it replied to that request's task, and the job completed with the reply's context
        assert code == 0, (out, err, dev.log()[-3000:])
        assert f"replied to {request_id} trigger (retry 0): COMPLETED, exit code 0" in out, out
        done = wait_for(client, request_id, timeout=60)
        assert done["job_state"] == "COMPLETED", (done, dev.log()[-3000:])
        log = client.get(f"/api/jobs/requests/{request_id}/tasks/trigger/logs")
        assert log.status_code == 200 and "forty-two" in log.text, log.text


def test_a_failing_exit_code_from_the_cli_is_routed_by_on_exit_code(dev: DevHandle) -> None:
    # Given a MESSAGING task that routes exit code 3 to cleanup
    with dev.client() as client:
        upload(client, ROUTED_JOB)
        request_id = submit(client, "messaging-routed")

        # When the replier answers with exit code 3
        code, out, err = reply(dev, "--exit-code", "3", "--message", "no ants", "--context", "Reason=no-ants")

        # Then the reply said FAILED with that code, and the walk took on_exit_code's route
        assert code == 0, (out, err)
        assert f"replied to {request_id} trigger (retry 0): FAILED, exit code 3" in out, out
        done = wait_for(client, request_id, timeout=60)
        tasks = {task["task_type"]: task for task in done["tasks"]}
        assert tasks["trigger"]["exit_code"] == "3", done
        assert "cleanup" in tasks and "after" not in tasks, done
        assert done["job_state"] == "COMPLETED", done
        log = client.get(f"/api/jobs/requests/{request_id}/tasks/cleanup/logs")
        assert "cleaning up after no-ants" in log.text, log.text


def test_the_cli_says_when_no_request_came(dev: DevHandle) -> None:
    code, out, err = reply(dev, "--wait", "1")
    assert code == 1, (out, err)
    assert "no task request on formica-msg-" in err and "within 1s" in err, err
