"""The EmailSender port's two adapters side by side: SES (on moto) and the local .eml outbox each
take the same message and answer where it went; each refuses the way the notify function relies
on (retryable or not)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from formica.store.mail import EmailMessage, EmailSendError, SesEmailSender
from formica.store.outbox import OutboxEmailSender, outbox_file_name
from moto import mock_aws
from moto.ses.models import ses_backends

REGION = "us-east-1"
MESSAGE = EmailMessage(
    sender="builds@example.com",
    recipients=("ana@example.com", "bo@example.org"),
    subject="[Formica] nightly FAILED (request r-1)",
    text="Job type:    nightly\nState:       FAILED\n",
    key="r-1-000007-job-FAILED#email",
)


@pytest.fixture
def ses(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.client("ses", region_name=REGION)


def test_ses_sends_from_a_verified_sender_and_answers_the_message_id(ses: Any) -> None:
    ses.verify_email_identity(EmailAddress=MESSAGE.sender)

    message_id = SesEmailSender(client=ses).send(MESSAGE)

    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    (sent,) = ses_backends[account][REGION].sent_messages
    assert sent.id == message_id
    assert sent.source == MESSAGE.sender
    assert sent.destinations["ToAddresses"] == list(MESSAGE.recipients)
    assert (sent.subject, sent.body) == (MESSAGE.subject, MESSAGE.text)


def test_ses_refuses_an_unverified_sender_and_trying_again_cannot_help(ses: Any) -> None:
    with pytest.raises(EmailSendError, match="MessageRejected") as refused:
        SesEmailSender(client=ses).send(MESSAGE)
    assert refused.value.retryable is False


def test_the_outbox_writes_one_complete_message_named_after_the_key(tmp_path: Path) -> None:
    name = OutboxEmailSender(tmp_path / "outbox").send(MESSAGE)

    assert name == "r-1-000007-job-FAILED-email.eml" == outbox_file_name(MESSAGE.key)
    assert [p.name for p in (tmp_path / "outbox").iterdir()] == [name]  # no temporary file left
    parsed = email.message_from_bytes((tmp_path / "outbox" / name).read_bytes(), policy=email.policy.default)
    assert parsed["From"] == MESSAGE.sender
    assert parsed["To"] == "ana@example.com, bo@example.org"
    assert parsed["Subject"] == MESSAGE.subject
    assert parsed["Date"] and parsed["Message-ID"]
    assert parsed.get_content() == MESSAGE.text


def test_a_key_never_makes_a_path_outside_the_outbox() -> None:
    assert outbox_file_name("../../etc/passwd#email") == "etc-passwd-email.eml"
    assert "/" not in outbox_file_name("a/b\\c:d")


def test_an_outbox_that_cannot_be_written_is_a_retryable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")

    with pytest.raises(EmailSendError, match="not writable") as refused:
        OutboxEmailSender(blocker).send(MESSAGE)
    assert refused.value.retryable is True
