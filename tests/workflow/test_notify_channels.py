"""A job's ``notify`` block through the real parts: the walk (the ASL on moto) ends a request, its
final ``Job State Change`` goes through moto's EventBridge rule to the delivery queue, and the notify
function's handler (driven by the local poller, as `formica dev` does) writes the email to the
outbox folder, sends it through moto's SES, or posts the Slack message to a receiver on loopback."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import boto3
import pytest
from formica.local.notify import LOCAL_BUS, LocalNotifyPoller, create_event_plumbing
from formica.runtime import get_runtime, reset_runtime
from formica.settings import reset_settings
from formica.store.deliveries import DeliveryChannel, DeliveryRepository, DeliveryStatus, WebhookDeliveryItem
from moto.ses.models import ses_backends

from tests.fakes.webhook_receiver import WebhookReceiver, webhook_receiver
from tests.workflow.conftest import REGION, TABLE, Walk, put_secret_config

API_URL = "http://127.0.0.1:8080"
SENDER = "formica@example.com"


@pytest.fixture
def poller(walk: Walk, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalNotifyPoller]:
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = create_event_plumbing(boto3.client("events", region_name=REGION), sqs)
    monkeypatch.setenv("FORMICA_EVENT_BUS_NAME", LOCAL_BUS)
    monkeypatch.setenv("FORMICA_NOTIFY_QUEUE_URL", queue_url)
    monkeypatch.setenv("FORMICA_WEBHOOK_BACKOFF_SECONDS", "1")
    monkeypatch.setenv("FORMICA_API_URL", API_URL)
    reset_settings()
    reset_runtime()
    yield LocalNotifyPoller(queue_url, sqs)


@pytest.fixture
def outbox(poller: LocalNotifyPoller, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "outbox"
    monkeypatch.setenv("FORMICA_EMAIL_OUTBOX", str(folder))
    reset_settings()
    reset_runtime()
    return folder


def notified(name: str, *, channel: str, when: str, recipients: str, exit_code: int = 0) -> str:
    return (
        f"job_type: {name}\nnotify:\n  {channel}:\n    recipients: [{recipients}]\n    when: {when}\n"
        f"tasks:\n- task_type: build\n  method: SHELL\n  script: ['echo building; exit {exit_code}']\n"
    )


def settled(walk: Walk, poller: LocalNotifyPoller, request_id: str, count: int) -> list[WebhookDeliveryItem]:
    """Drive the poller until the request has ``count`` channel deliveries, none PENDING."""
    repository = DeliveryRepository(TABLE, client=walk.ddb)
    deliveries: list[WebhookDeliveryItem] = []
    for _ in range(80):
        poller.poll_once(0)
        deliveries = [
            d for d in repository.list_for_request(request_id) if d.channel != DeliveryChannel.WEBHOOK
        ]
        if len(deliveries) >= count and all(d.status != DeliveryStatus.PENDING for d in deliveries):
            return deliveries
    raise AssertionError(f"deliveries not settled: {deliveries}")


def drain(poller: LocalNotifyPoller) -> None:
    """Handle every lifecycle event already on the queue."""
    while poller.poll_once(0):
        pass


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


# The outbox (formica dev): one .eml file per message


def test_a_failed_job_with_on_failure_writes_one_eml_naming_the_failed_task(
    walk: Walk, poller: LocalNotifyPoller, outbox: Path
) -> None:
    # Given a job that mails two people when it fails
    walk.upload(
        notified(
            "mailed-failure",
            channel="email",
            when="onFailure",
            recipients="ana@example.com, bo@example.org",
            exit_code=3,
        )
    )
    # When a request fails and its events are delivered
    request_id = walk.submit("mailed-failure")
    assert walk.wait(request_id).job_state == "FAILED"
    (delivery,) = settled(walk, poller, request_id, 1)

    # Then one message is in the outbox, recorded under the request by its file name
    files = sorted(outbox.glob("*.eml"))
    assert [f.name for f in files] == [delivery.outbox_file]
    assert (delivery.channel, delivery.status, delivery.attempts) == (
        DeliveryChannel.EMAIL,
        DeliveryStatus.DELIVERED,
        1,
    )
    assert delivery.recipients == ["ana@example.com", "bo@example.org"]
    message = read_eml(files[0])
    assert message["To"] == "ana@example.com, bo@example.org"
    assert message["Subject"] == f"[Formica] mailed-failure FAILED (request {request_id})"
    text = message.get_content()
    assert f"Request:     {request_id}" in text
    assert "Job type:    mailed-failure" in text and "State:       FAILED" in text
    assert "Failed task: build (exit code 3)" in text
    assert re.search(r"^Duration:    \d+s$", text, re.MULTILINE)
    assert f"Dashboard:   {API_URL}/#/requests/{request_id}" in text


def test_a_completed_job_with_on_success_writes_an_eml_and_on_failure_writes_nothing(
    walk: Walk, poller: LocalNotifyPoller, outbox: Path
) -> None:
    walk.upload(notified("mailed-success", channel="email", when="onSuccess", recipients="ana@example.com"))
    walk.upload(notified("mailed-if-failed", channel="email", when="onFailure", recipients="bo@example.com"))

    succeeded = walk.submit("mailed-success")
    quiet = walk.submit("mailed-if-failed")
    assert walk.wait(succeeded).job_state == "COMPLETED"
    assert walk.wait(quiet).job_state == "COMPLETED"
    (delivery,) = settled(walk, poller, succeeded, 1)
    drain(poller)

    message = read_eml(outbox / str(delivery.outbox_file))
    assert message["Subject"] == f"[Formica] mailed-success COMPLETED (request {succeeded})"
    assert "Failed task" not in message.get_content()
    assert [f.name for f in outbox.glob("*.eml")] == [delivery.outbox_file]
    assert DeliveryRepository(TABLE, client=walk.ddb).list_for_request(quiet) == []


def test_without_a_sender_or_an_outbox_email_is_recorded_skipped_with_the_reason(
    walk: Walk, poller: LocalNotifyPoller
) -> None:
    walk.upload(notified("unmailed", channel="email", when="always", recipients="ana@example.com"))
    request_id = walk.submit("unmailed")
    walk.wait(request_id)

    (delivery,) = settled(walk, poller, request_id, 1)

    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SKIPPED, 0)
    assert "no sender is configured" in (delivery.last_result or "")


def test_a_channel_delivery_is_recorded_at_the_notify_runtimes_clock(
    walk: Walk, poller: LocalNotifyPoller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a job that ended, and the notify function's runtime on a clock at a fixed moment
    walk.upload(notified("clocked", channel="email", when="always", recipients="ana@example.com"))
    request_id = walk.submit("clocked")
    walk.wait(request_id)
    moment = datetime(2027, 1, 2, 3, 4, 5, 60708, tzinfo=UTC)
    monkeypatch.setattr(get_runtime(), "now", lambda: moment)

    # When its final event is handled (email off here: the delivery is recorded SKIPPED, never sent)
    (delivery,) = settled(walk, poller, request_id, 1)

    # Then the delivery was recorded at that moment
    assert delivery.status == DeliveryStatus.SKIPPED
    assert (delivery.created_at, delivery.updated_at) == ("2027-01-02T03:04:05.060708+00:00",) * 2


# SES (AWS): moto's SES, whose sent messages are read back


def test_with_a_verified_sender_the_message_goes_through_ses(
    walk: Walk, poller: LocalNotifyPoller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the sender identity verified in SES (moto refuses mail from an unverified one)
    boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress=SENDER)
    monkeypatch.setenv("FORMICA_NOTIFY_SENDER", SENDER)
    reset_settings()
    reset_runtime()
    walk.upload(notified("ses-mailed", channel="email", when="always", recipients="ana@example.com"))

    request_id = walk.submit("ses-mailed")
    assert walk.wait(request_id).job_state == "COMPLETED"
    (delivery,) = settled(walk, poller, request_id, 1)

    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    sent = ses_backends[account][REGION].sent_messages
    (message,) = [m for m in sent if request_id in m.subject]
    assert message.source == SENDER and message.destinations["ToAddresses"] == ["ana@example.com"]
    assert "State:       COMPLETED" in message.body
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.outbox_file is None
    assert delivery.last_result == f"sent: message id {message.id}"


def test_an_unverified_sender_fails_the_delivery_at_once(
    walk: Walk, poller: LocalNotifyPoller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stack's sender (the one its role may send from), not verified in SES yet
    monkeypatch.setenv("FORMICA_NOTIFY_SENDER", SENDER)
    reset_settings()
    reset_runtime()
    walk.upload(notified("ses-refused", channel="email", when="always", recipients="ana@example.com"))

    request_id = walk.submit("ses-refused")
    walk.wait(request_id)
    (delivery,) = settled(walk, poller, request_id, 1)

    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    assert "MessageRejected" in (delivery.last_result or "")


# Slack: an incoming webhook URL held as a secret config


def set_slack_url(walk: Walk, url: str) -> None:
    """The organisation's secret config SlackWebhookURL, in moto's SSM as the API stores it."""
    put_secret_config(walk, "SlackWebhookURL", url)


def slack_posts(receiver: WebhookReceiver) -> list[dict[str, str]]:
    return [json.loads(d.body) for d in receiver.delivered() if d.path == "/services/T0/B0/s3cr3t"]


def test_slack_gets_the_json_payload_naming_the_recipients_and_the_url_is_never_recorded(
    walk: Walk,
    poller: LocalNotifyPoller,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG, logger="formica")
    with webhook_receiver() as receiver:
        hook = f"{receiver.url}/services/T0/B0/s3cr3t"
        set_slack_url(walk, hook)
        walk.upload(
            notified(
                "slacked", channel="slack", when="onFailure", recipients="'#builds', '@ana'", exit_code=2
            )
        )
        request_id = walk.submit("slacked")
        assert walk.wait(request_id).job_state == "FAILED"
        (delivery,) = settled(walk, poller, request_id, 1)

    (payload,) = slack_posts(receiver)
    assert payload["text"].startswith(f"#builds @ana [Formica] slacked FAILED (request {request_id})")
    assert "Failed task: build (exit code 2)" in payload["text"]
    assert receiver.deliveries[0].headers["content-type"] == "application/json"
    assert (delivery.channel, delivery.status, delivery.last_result) == (
        DeliveryChannel.SLACK,
        DeliveryStatus.DELIVERED,
        "HTTP 200",
    )
    assert delivery.url == "slack:#builds,@ana"
    stored = walk.ddb.scan(TableName=TABLE)["Items"]
    assert "s3cr3t" not in json.dumps(stored)
    printed = capsys.readouterr()
    assert "s3cr3t" not in caplog.text + printed.out + printed.err
    assert "notify" in caplog.text + printed.out  # the handler did log (its lines hold no URL)


def test_a_slack_receiver_failing_twice_gets_the_message_on_the_third_attempt(
    walk: Walk, poller: LocalNotifyPoller
) -> None:
    with webhook_receiver(fail_first=2) as receiver:
        set_slack_url(walk, f"{receiver.url}/services/T0/B0/s3cr3t")
        walk.upload(notified("slack-flaky", channel="slack", when="always", recipients="'#ops'"))
        request_id = walk.submit("slack-flaky")
        walk.wait(request_id)
        receiver.wait_for(slack_posts, timeout=30, poll=lambda: poller.poll_once(1))

    assert [d.answered for d in receiver.deliveries] == [503, 503, 200]
    assert len({d.body for d in receiver.deliveries}) == 1
    (delivery,) = settled(walk, poller, request_id, 1)
    assert (delivery.status, delivery.attempts, delivery.last_result) == (
        DeliveryStatus.DELIVERED,
        3,
        "HTTP 200",
    )


def test_a_slack_url_the_egress_rule_refuses_fails_at_once_with_the_url_masked(
    walk: Walk, poller: LocalNotifyPoller
) -> None:
    set_slack_url(walk, "http://169.254.169.254/services/T0/B0/s3cr3t")
    walk.upload(notified("slack-metadata", channel="slack", when="always", recipients="'#ops'"))
    request_id = walk.submit("slack-metadata")
    walk.wait(request_id)

    (delivery,) = settled(walk, poller, request_id, 1)

    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    assert "egress" in (delivery.last_result or "")
    assert "s3cr3t" not in (delivery.last_result or "")


def test_without_a_slack_webhook_config_slack_is_recorded_skipped(
    walk: Walk, poller: LocalNotifyPoller
) -> None:
    walk.upload(notified("slack-unset", channel="slack", when="always", recipients="'#ops'"))
    request_id = walk.submit("slack-unset")
    walk.wait(request_id)

    (delivery,) = settled(walk, poller, request_id, 1)

    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SKIPPED, 0)
    assert "SlackWebhookURL" in (delivery.last_result or "")
