"""`formica messaging reply`: the reply it builds from a task request, and the flags it refuses
before it reaches SQS (the e2e suite runs it against `formica dev`)."""

from __future__ import annotations

import json

import pytest
from formica.cli import main
from formica.cli.messaging import Replier, ReplySpec, ReplyUsageError, parse_context, reply_body

REPLY_QUEUE = "formica-msg-0123456789abcdef-replies"
REQUEST: dict[str, object] = {
    "correlation_id": "req-1:4",
    "job_request_id": "req-1",
    "task_execution_id": "req-1-trigger",
    "task_type": "trigger",
    "response_topic": REPLY_QUEUE,
    "retry": 0,
}


def test_a_reply_carries_the_requests_correlation_id_and_the_given_outcome() -> None:
    body = reply_body(REQUEST, ReplySpec(exit_code="3", message="no ants", context={"Why": "none"}))
    assert body == {
        "correlation_id": "req-1:4",
        "job_request_id": "req-1",
        "task_execution_id": "req-1-trigger",
        "task_type": "trigger",
        "status": "FAILED",
        "exit_code": "3",
        "exit_message": "no ants",
        "task_context": {"Why": "none"},
    }


def test_the_status_follows_the_exit_code_unless_given() -> None:
    assert ReplySpec().reply_status == "COMPLETED"
    assert ReplySpec(exit_code="1").reply_status == "FAILED"
    assert ReplySpec(exit_code="1", status="COMPLETED").reply_status == "COMPLETED"


def test_a_message_without_correlation_id_or_reply_queue_is_not_a_request() -> None:
    with pytest.raises(ValueError, match="not a task request"):
        reply_body({"response_topic": "q"}, ReplySpec())
    with pytest.raises(ValueError, match="not a task request"):
        reply_body({"correlation_id": "a:1"}, ReplySpec())


def test_context_entries_are_key_value_pairs() -> None:
    assert parse_context(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(ReplyUsageError, match="'nope'"):
        parse_context(["nope"])


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--context", "nope"], "--context 'nope': write KEY=VALUE"),
        (["--exit-code", "three"], "--exit-code 'three': write a whole number"),
        (["--count", "0"], "--count: answer at least one request"),
    ],
)
def test_bad_flags_exit_1_with_the_flag_named(
    flags: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["messaging", "reply", "--queue", "q", "--org", "local", *flags])
    assert code == 1
    assert expected in capsys.readouterr().err


def test_the_queue_needs_an_organisation_or_exact(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["messaging", "reply", "--queue", "q"]) == 2
    assert "--org" in capsys.readouterr().err


class FakeSqs:
    """Queues by name, in memory: what the replier calls of SQS."""

    def __init__(self, queues: list[str]) -> None:
        self.sent: dict[str, list[str]] = {name: [] for name in queues}
        self.deleted: list[str] = []

    def get_queue_url(self, QueueName: str) -> dict[str, str]:
        assert QueueName in self.sent, QueueName
        return {"QueueUrl": f"url/{QueueName}"}

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:
        self.sent[QueueUrl.removeprefix("url/")].append(MessageBody)

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        self.deleted.append(ReceiptHandle)


def test_the_replier_answers_on_the_organisations_reply_queue_and_deletes_the_request() -> None:
    prefix = "formica-msg-0123456789abcdef-"
    sqs = FakeSqs([prefix + "requests", REPLY_QUEUE])
    replier = Replier(sqs=sqs, request_queue=prefix + "requests", org_prefix=prefix, spec=ReplySpec())
    line = replier.answer({"Body": json.dumps(REQUEST), "ReceiptHandle": "r-1"})
    assert (
        line == f"replied to req-1 trigger (retry 0): COMPLETED, exit code 0, on {REQUEST['response_topic']}"
    )
    (sent,) = sqs.sent[REPLY_QUEUE]
    assert json.loads(sent)["correlation_id"] == "req-1:4"
    assert sqs.deleted == ["r-1"]


def test_the_replier_refuses_a_reply_queue_outside_the_organisation() -> None:
    prefix = "formica-msg-fedcba9876543210-"
    sqs = FakeSqs([prefix + "requests", REPLY_QUEUE])
    replier = Replier(sqs=sqs, request_queue=prefix + "requests", org_prefix=prefix, spec=ReplySpec())
    with pytest.raises(ValueError, match="not one of the organisation's"):
        replier.answer({"Body": json.dumps(REQUEST), "ReceiptHandle": "r-1"})
    assert sqs.sent[REPLY_QUEUE] == [] and sqs.deleted == []
