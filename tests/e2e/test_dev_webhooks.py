"""Webhooks from a live `formica dev`: a receiver on loopback checks each delivery's signature with
the secret the API hands out and sees one job's events in order (STARTED ... COMPLETED); a receiver
that fails twice gets the event a third time, after the backoff (1 s here, a setting), and the
deliveries route shows the attempts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.devserver import DevHandle, running_dev, submit, upload, wait_for
from tests.fakes.webhook_receiver import WebhookReceiver, webhook_receiver


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHandle]:
    with running_dev(
        tmp_path_factory.mktemp("dev-webhooks"), extra_env={"FORMICA_WEBHOOK_BACKOFF_SECONDS": "1"}
    ) as handle:
        yield handle


def hooked_job(job_type: str, url: str) -> str:
    return f"""job_type: {job_type}
webhook:
  url: {url}/hooks/formica
tasks:
- task_type: build
  method: SHELL
  script: [echo built]
  on_completed: test
- task_type: test
  method: SHELL
  script: [echo tested]
"""


def job_events(receiver: WebhookReceiver) -> list[str]:
    events = sorted((d.event for d in receiver.delivered()), key=lambda e: e["sequence"])
    return [e["job_state"] for e in events]


def test_a_receiver_verifies_each_signature_and_sees_started_then_completed(api: httpx.Client) -> None:
    with webhook_receiver() as receiver:
        upload(api, hooked_job("hooked", receiver.url))
        request_id = submit(api, "hooked")
        assert wait_for(api, request_id)["job_state"] == "COMPLETED"
        receiver.wait_for(lambda r: "COMPLETED" in job_events(r), timeout=30)

    secret = api.get("/api/webhooks/secret").json()["secret"]
    assert receiver.deliveries and all(d.signature_valid(secret) for d in receiver.deliveries)
    assert job_events(receiver) == ["STARTED", "COMPLETED"]
    assert {d.event["job_request_id"] for d in receiver.deliveries} == {request_id}
    assert {d.path for d in receiver.deliveries} == {"/hooks/formica"}
    listed = api.get(f"/api/jobs/requests/{request_id}/webhooks").json()["records"]
    assert [(r["event"], r["status"], r["attempts"]) for r in listed] == [
        ("JOB STARTED", "DELIVERED", 1),
        ("JOB COMPLETED", "DELIVERED", 1),
    ]


def test_a_receiver_that_fails_twice_gets_the_event_a_third_time(api: httpx.Client) -> None:
    with webhook_receiver(fail_first=2) as receiver:
        upload(api, hooked_job("flaky-receiver", receiver.url))
        request_id = submit(api, "flaky-receiver")
        wait_for(api, request_id)
        receiver.wait_for(lambda r: "COMPLETED" in job_events(r), timeout=40)

    answers = [d.answered for d in receiver.deliveries if d.event["job_state"] == "COMPLETED"]
    assert answers == [503, 503, 200]
    listed = api.get(f"/api/jobs/requests/{request_id}/webhooks").json()["records"]
    completed = next(r for r in listed if r["event"] == "JOB COMPLETED")
    assert (completed["status"], completed["attempts"], completed["last_result"]) == (
        "DELIVERED",
        3,
        "HTTP 200",
    )
