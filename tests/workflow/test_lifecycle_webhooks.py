"""Lifecycle events and webhooks through the real parts: the walk (the ASL on moto) puts each state
change on moto's EventBridge bus, the rule routes it to the delivery queue, and the notify function's
handler (driven by the local poller, as `formica dev` does) signs and sends the webhooks to a
receiver on loopback, retrying with backoff."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from formica.local.notify import LIFECYCLE_RULE, LOCAL_BUS, LocalNotifyPoller, create_event_plumbing
from formica.runtime import reset_runtime
from formica.runtime.events import events_not_published
from formica.settings import reset_settings
from formica.store.deliveries import DeliveryRepository, DeliveryStatus

from tests.emf import emf_metrics, named
from tests.fakes.webhook_receiver import WebhookReceiver, webhook_receiver
from tests.workflow.conftest import ORG, REGION, TABLE, Walk, put_secret_config

FAILURES_RULE = {
    "source": ["formica"],
    "detail-type": ["Job State Change"],
    "detail": {"job_state": ["FAILED"]},
}
"""The rule docs/deploy.md gives for mailing failures (an SNS target there, an SQS one here)."""


@pytest.fixture
def poller(walk: Walk, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalNotifyPoller]:
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = create_event_plumbing(boto3.client("events", region_name=REGION), sqs)
    monkeypatch.setenv("FORMICA_EVENT_BUS_NAME", LOCAL_BUS)
    monkeypatch.setenv("FORMICA_NOTIFY_QUEUE_URL", queue_url)
    monkeypatch.setenv("FORMICA_WEBHOOK_BACKOFF_SECONDS", "1")
    reset_settings()
    reset_runtime()
    yield LocalNotifyPoller(queue_url, sqs)


def job(name: str, url: str, *, script: str = "echo ok", task_hook: str = "") -> str:
    return (
        f"job_type: {name}\nwebhook:\n  url: {url}/job\n  headers: {{X-Team: data}}\n"
        f"tasks:\n- task_type: build\n  method: SHELL\n  script: [{script}]\n{task_hook}"
    )


def org_secret() -> str:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    return str(secrets.get_secret_value(SecretId=f"formica/webhooks/{ORG}")["SecretString"])


def job_states(receiver: WebhookReceiver) -> list[str]:
    events = sorted((d.event for d in receiver.delivered() if d.path == "/job"), key=lambda e: e["sequence"])
    return [e["job_state"] for e in events]


def test_a_job_sends_signed_job_and_task_events_started_to_completed(
    walk: Walk, poller: LocalNotifyPoller
) -> None:
    with webhook_receiver() as receiver:
        walk.upload(
            job(
                "hooked",
                receiver.url,
                task_hook=f"  webhook:\n    url: {receiver.url}/task\n    method: PUT\n",
            )
        )
        request_id = walk.submit("hooked")
        assert walk.wait(request_id).job_state == "COMPLETED"
        receiver.wait_for(
            lambda r: "COMPLETED" in job_states(r), timeout=20, poll=lambda: poller.poll_once(0)
        )
        receiver.wait_for(
            lambda r: any(d.path == "/task" and d.event["task_state"] == "COMPLETED" for d in r.delivered()),
            timeout=10,
            poll=lambda: poller.poll_once(0),
        )

    secret = org_secret()
    assert all(d.signature_valid(secret) for d in receiver.deliveries)
    assert not receiver.deliveries[0].signature_valid("another organisation's secret")
    assert job_states(receiver) == ["STARTED", "COMPLETED"]
    first = next(d for d in receiver.delivered() if d.path == "/job")
    assert first.method == "POST" and first.headers["x-team"] == "data"
    assert first.event["organization_id"] == ORG and first.event["job_request_id"] == request_id
    assert first.event["event_type"] == "JobExecutionLifecycleEvent"
    task_events = [d for d in receiver.delivered() if d.path == "/task"]
    assert {d.method for d in task_events} == {"PUT"}
    assert [e.event["task_state"] for e in sorted(task_events, key=lambda d: d.event["sequence"])][
        -1
    ] == "COMPLETED"
    assert all(e.event["task_type"] == "build" for e in task_events)

    deliveries = DeliveryRepository(TABLE, client=walk.ddb).list_for_request(request_id)
    assert {(d.event, d.status, d.attempts) for d in deliveries if d.url.endswith("/job")} == {
        ("JOB STARTED", DeliveryStatus.DELIVERED, 1),
        ("JOB COMPLETED", DeliveryStatus.DELIVERED, 1),
    }


def test_a_failing_receiver_gets_the_event_again_with_backoff_until_it_answers(
    walk: Walk, poller: LocalNotifyPoller, capsys: pytest.CaptureFixture[str]
) -> None:
    with webhook_receiver(fail_first=2) as receiver:
        walk.upload(job("flaky", receiver.url))
        request_id = walk.submit("flaky")
        walk.wait(request_id)
        receiver.wait_for(
            lambda r: "COMPLETED" in job_states(r), timeout=30, poll=lambda: poller.poll_once(1)
        )

    completed = [d for d in receiver.deliveries if d.event["job_state"] == "COMPLETED"]
    assert [d.answered for d in completed] == [503, 503, 200]
    assert len({d.body for d in completed}) == 1  # the same event each time
    gaps = [later.received_at - earlier.received_at for earlier, later in itertools.pairwise(completed)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9  # 1 s, then 2 s (FORMICA_WEBHOOK_BACKOFF_SECONDS=1)
    deliveries = DeliveryRepository(TABLE, client=walk.ddb).list_for_request(request_id)
    done = next(d for d in deliveries if d.event == "JOB COMPLETED")
    assert (done.status, done.attempts, done.last_result) == (DeliveryStatus.DELIVERED, 3, "HTTP 200")
    # And the two failed attempts are counted, no delivery as given up
    metrics = emf_metrics(capsys.readouterr().out)
    assert len(named(metrics, "DeliveryAttemptsFailed")) >= 2
    assert named(metrics, "DeliveriesFailed") == []


def test_a_webhook_the_egress_rule_refuses_fails_at_once_and_the_job_is_unaffected(
    walk: Walk, poller: LocalNotifyPoller, capsys: pytest.CaptureFixture[str]
) -> None:
    walk.upload(job("metadata", "http://169.254.169.254/latest"))
    request_id = walk.submit("metadata")
    assert walk.wait(request_id).job_state == "COMPLETED"
    repository = DeliveryRepository(TABLE, client=walk.ddb)
    for _ in range(50):
        poller.poll_once(0)
        deliveries = repository.list_for_request(request_id)
        if len(deliveries) == 2 and all(d.status != DeliveryStatus.PENDING for d in deliveries):
            break
    assert {(d.status, d.attempts) for d in deliveries} == {(DeliveryStatus.FAILED, 1)}
    assert all("egress" in (d.last_result or "") for d in deliveries)
    # And each given-up delivery is counted for the DeliveriesFailed alarm, by channel
    metrics = emf_metrics(capsys.readouterr().out)
    for name in ("DeliveryAttemptsFailed", "DeliveriesFailed"):
        assert named(metrics, name) == [({"channel": "webhook", "service": "formica"}, 1.0)] * 2


def test_the_failures_rule_matches_failed_jobs_only(walk: Walk, poller: LocalNotifyPoller) -> None:
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="failures")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="failures", EventBusName=LOCAL_BUS, EventPattern=json.dumps(FAILURES_RULE))
    events.put_targets(Rule="failures", EventBusName=LOCAL_BUS, Targets=[{"Id": "q", "Arn": arn}])
    walk.upload("job_type: ok\ntasks:\n- task_type: a\n  method: SHELL\n  script: [echo ok]\n")
    walk.upload("job_type: bad\ntasks:\n- task_type: a\n  method: SHELL\n  script: [exit 3]\n")
    good, bad = walk.submit("ok"), walk.submit("bad")
    walk.wait(good), walk.wait(bad)

    received: list[dict[str, Any]] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
        "Messages", []
    )
    matched = [json.loads(m["Body"]) for m in received]
    assert [(m["detail-type"], m["detail"]["job_request_id"], m["detail"]["job_state"]) for m in matched] == [
        ("Job State Change", bad, "FAILED")
    ]
    assert events.describe_rule(Name=LIFECYCLE_RULE, EventBusName=LOCAL_BUS)["State"] == "ENABLED"


def test_a_bus_that_refuses_events_never_fails_the_walk(walk: Walk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORMICA_EVENT_BUS_NAME", "no-such-bus")
    reset_settings()
    reset_runtime()
    before = events_not_published()
    walk.upload("job_type: quiet\ntasks:\n- task_type: a\n  method: SHELL\n  script: [echo ok]\n")
    assert walk.wait(walk.submit("quiet")).job_state == "COMPLETED"
    assert events_not_published() > before


HOOK_TOKEN = "hook-token-7f3a9c21"


def test_a_secret_config_in_a_webhook_header_is_sent_and_never_recorded(
    walk: Walk, poller: LocalNotifyPoller
) -> None:
    # Given: a job whose webhook header names a secret config
    put_secret_config(walk, "HookToken", HOOK_TOKEN)
    with webhook_receiver() as receiver:
        walk.upload(
            f"job_type: tokened\nwebhook:\n  url: {receiver.url}/job\n  headers:\n"
            '    Authorization: "Bearer {{.HookToken}}"\n'
            "tasks:\n- task_type: build\n  method: SHELL\n  script: [echo ok]\n"
        )
        request_id = walk.submit("tokened")
        assert walk.wait(request_id).job_state == "COMPLETED"
        receiver.wait_for(
            lambda r: "COMPLETED" in job_states(r), timeout=20, poll=lambda: poller.poll_once(0)
        )

    # Then: the receiver got the secret's value, rendered at the attempt
    assert {d.headers["authorization"] for d in receiver.delivered()} == {f"Bearer {HOOK_TOKEN}"}
    # And: the deliveries keep the header as the walk rendered it, the secret masked, and nothing
    # in the table holds the value
    deliveries = DeliveryRepository(TABLE, client=walk.ddb).list_for_request(request_id)
    assert {d.headers["Authorization"] for d in deliveries} == {"Bearer ****"}
    stored = json.dumps(walk.ddb.scan(TableName=TABLE)["Items"])
    assert HOOK_TOKEN not in stored
