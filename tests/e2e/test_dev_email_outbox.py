"""notify.email from a live `formica dev`: it prints its outbox folder at start, a failed job with
``when: onFailure`` leaves one .eml file there, the deliveries route names that file, and a job
whose ``when`` does not match its end leaves none."""

from __future__ import annotations

import email
import email.policy
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.devserver import DevHandle, submit, upload, wait_for, wait_until
from tests.fakes.webhook_receiver import webhook_receiver


@pytest.fixture(scope="module")
def outbox(dev: DevHandle) -> Path:
    """The folder the banner prints on its ``email:`` line."""
    found: list[str] = []

    def printed() -> bool:
        found[:] = re.findall(r"^  email:\s+(\S+)", dev.log(), re.MULTILINE)
        return bool(found)

    wait_until(printed, 20, "formica dev printed no email outbox")
    return Path(found[0])


def mailed(job_type: str, when: str, exit_code: int, webhook: str = "") -> str:
    return f"""job_type: {job_type}
{webhook}notify:
  email:
    recipients: [oncall@example.com]
    when: {when}
tasks:
- task_type: build
  method: SHELL
  script: ["echo building; exit {exit_code}"]
"""


def deliveries(api: httpx.Client, request_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/jobs/requests/{request_id}/webhooks")
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["records"]
    return records


def test_a_failed_job_leaves_an_eml_in_the_printed_outbox_named_by_the_api(
    api: httpx.Client, outbox: Path
) -> None:
    upload(api, mailed("outboxed", "onFailure", 4))
    request_id = submit(api, "outboxed")
    assert wait_for(api, request_id)["job_state"] == "FAILED"

    wait_until(
        lambda: any(d["status"] == "DELIVERED" for d in deliveries(api, request_id)),
        30,
        "the email was not delivered",
    )
    (record,) = deliveries(api, request_id)
    assert (record["channel"], record["url"], record["recipients"]) == (
        "email",
        "email:oncall@example.com",
        ["oncall@example.com"],
    )
    path = outbox / record["outbox_file"]
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == f"[Formica] outboxed FAILED (request {request_id})"
    assert message["To"] == "oncall@example.com"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Failed task: build (exit code 4)" in text
    assert f"#/requests/{request_id}" in text and str(api.base_url).rstrip("/") in text


def test_a_job_that_succeeds_leaves_nothing_for_on_failure(api: httpx.Client, outbox: Path) -> None:
    before = set(outbox.glob("*.eml"))
    with webhook_receiver() as receiver:
        # The job's webhook shows when its final event was handled: notify is handled with it.
        upload(api, mailed("quiet", "onFailure", 0, webhook=f"webhook:\n  url: {receiver.url}/hook\n"))
        request_id = submit(api, "quiet")
        assert wait_for(api, request_id)["job_state"] == "COMPLETED"
        receiver.wait_for(
            lambda r: any(d.event["job_state"] == "COMPLETED" for d in r.delivered()), timeout=30
        )
        time.sleep(1)

    assert {d["channel"] for d in deliveries(api, request_id)} == {"webhook"}
    assert set(outbox.glob("*.eml")) == before
