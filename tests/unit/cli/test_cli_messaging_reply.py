"""`formica messaging reply`: the reply it builds from a task request, and the flags it refuses
before it reaches SQS (the e2e suite runs it against `formica dev`)."""

from __future__ import annotations

import pytest
from formica.cli import main
from formica.cli.messaging import ReplySpec, ReplyUsageError, parse_context, reply_body

REQUEST = {
    "correlation_id": "req-1:4",
    "job_request_id": "req-1",
    "task_execution_id": "req-1-trigger",
    "task_type": "trigger",
    "response_topic": "formica-msg-0123456789abcdef-replies",
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
