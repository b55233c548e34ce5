"""MANUAL tasks: the model, the rules that keep verdict keys and policies on MANUAL tasks, the
walk's decision and timeout_action, and the verdict of a set of votes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from formica.engine.walk import (
    DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    Action,
    AttemptResult,
    Clock,
    JobState,
    record_attempt,
    start_walk,
)
from formica.jobs import DefinitionError, parse_definition
from formica.jobs.models import ApprovalPolicy, RunnerKind
from formica.runtime.approvals import verdict
from formica.store.requests import VoteItem

MANUAL = """\
job_type: release
tasks:
- task_type: sign-off
  method: MANUAL
{policy}  on_exit_code:
    approved: deploy
- task_type: deploy
  method: SHELL
  script: [echo ok]
"""
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def problems_of(text: str) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    return [(p.line, p.task_type, p.message) for p in caught.value.problems]


def test_a_manual_task_parses_with_its_verdict_keys_and_runs_on_the_manual_runner() -> None:
    job = parse_definition(MANUAL.format(policy=""))
    task = job.task("sign-off")
    assert task.runner == RunnerKind.MANUAL
    assert task.on_exit_code == {"APPROVED": "deploy"}
    assert task.approval_policy is None


def test_verdict_keys_and_a_policy_belong_to_manual_tasks_only() -> None:
    text = (
        "job_type: j\ntasks:\n- task_type: a\n  method: SHELL\n  script: [x]\n"
        "  approval_policy: {min_approvals: 2}\n  on_exit_code:\n    REJECTED: b\n"
        "- task_type: b\n  method: SHELL\n  script: [y]\n"
    )
    assert problems_of(text) == [
        (6, "a", "approval_policy is for MANUAL tasks and tasks routed to WAIT_FOR_APPROVAL only"),
        (
            8,
            "a",
            "on_exit_code key REJECTED is an approval's verdict: only a MANUAL task, or one routed to "
            "WAIT_FOR_APPROVAL, has it",
        ),
    ]


def test_a_task_routed_to_wait_for_approval_takes_verdict_keys_and_a_policy() -> None:
    text = (
        "job_type: j\ntasks:\n- task_type: a\n  method: SHELL\n  script: [x]\n"
        "  approval_policy: {min_approvals: 2}\n  on_exit_code:\n    '3': WAIT_FOR_APPROVAL\n"
        "    APPROVED: b\n    REJECTED: FAILED\n- task_type: b\n  method: SHELL\n  script: [y]\n"
    )
    job = parse_definition(text)
    assert job.task("a").waits_for_approval
    assert job.task("a").on_exit_code == {"3": "WAIT_FOR_APPROVAL", "APPROVED": "b", "REJECTED": "FAILED"}


def test_pause_time_needs_a_route_to_pause_job() -> None:
    text = (
        "job_type: j\ntasks:\n- task_type: a\n  method: SHELL\n  script: [x]\n  pause_time: 5s\n"
        "  on_completed: b\n- task_type: b\n  method: SHELL\n  script: [y]\n"
    )
    assert problems_of(text) == [(6, "a", "pause_time is for tasks whose routing names PAUSE_JOB")]
    paused = parse_definition(
        text.replace("  on_completed: b", "  on_exit_code: {'0': PAUSE_JOB}\n  on_completed: b")
    )
    assert paused.task("a").pause_time == 5


def test_a_policy_that_could_never_approve_and_a_manual_task_that_runs_something_are_refused() -> None:
    policy = "  approval_policy:\n    min_approvals: 3\n    allowed_users: [alice, bob]\n  script: [echo]\n"
    messages = [message for _, _, message in problems_of(MANUAL.format(policy=policy))]
    assert any("min_approvals is 3 but allowed_users names only 2" in m for m in messages)
    assert any("runs nothing: remove script" in m for m in messages)


def test_the_wait_times_out_at_the_sla_deadline_else_after_the_default() -> None:
    with_sla = parse_definition(MANUAL.format(policy="  approval_policy: {sla_deadline: 90s}\n"))
    decision = start_walk(with_sla, Clock(T0, T0, None)).decision
    assert (decision.action, decision.timeout_seconds) == (Action.AWAIT_APPROVAL, 90)
    plain = parse_definition(MANUAL.format(policy=""))
    assert start_walk(plain, Clock(T0, T0, None)).decision.timeout_seconds == DEFAULT_APPROVAL_TIMEOUT_SECONDS


@pytest.mark.parametrize(
    ("action", "job_state", "error_code", "exit_code"),
    [
        ("AUTO_APPROVE", JobState.EXECUTING, None, "APPROVED"),
        ("AUTO_REJECT", JobState.FAILED, "ERR_MANUAL_REJECTION", "REJECTED"),
        ("FAIL", JobState.FAILED, "ERR_APPROVAL_TIMED_OUT", ""),
    ],
)
def test_a_timed_out_wait_takes_the_timeout_action(
    action: str, job_state: JobState, error_code: str | None, exit_code: str
) -> None:
    definition = parse_definition(
        MANUAL.format(policy=f"  approval_policy: {{sla_deadline: 1s, timeout_action: {action}}}\n")
    )
    started = start_walk(definition, Clock(T0, T0, None))
    timed_out = AttemptResult(error_code="ERR_TASK_TIMED_OUT", error_message="States.Timeout")
    later = Clock(T0 + timedelta(seconds=2), T0, None)
    after = record_attempt(definition, started.walk, timed_out, later)
    assert after.job_state == job_state
    assert after.error_code == error_code
    assert after.task_updates[0].exit_code == exit_code


def votes(*marks: tuple[str, bool]) -> list[VoteItem]:
    return [
        VoteItem(request_id="r", step=1, voter=voter, approve=approve, voted_at=f"{index}")
        for index, (voter, approve) in enumerate(marks)
    ]


@pytest.mark.parametrize(
    ("policy", "cast", "expected"),
    [
        (ApprovalPolicy(), [("a", True)], "APPROVED"),
        (ApprovalPolicy(), [("a", False)], "REJECTED"),
        (ApprovalPolicy(min_approvals=2), [("a", True), ("b", False)], None),
        (ApprovalPolicy(min_approvals=2), [("a", True), ("b", True)], "APPROVED"),
        (ApprovalPolicy(min_approvals=2, require_unanimous=True), [("a", True), ("b", False)], "REJECTED"),
        # Every allowed user must approve under unanimity, whatever min_approvals says.
        (ApprovalPolicy(allowed_users=["a", "b"], require_unanimous=True), [("a", True)], None),
        # Two of three allowed: one rejection leaves two who can still approve; a second cannot.
        (ApprovalPolicy(min_approvals=2, allowed_users=["a", "b", "c"]), [("a", False)], None),
        (ApprovalPolicy(min_approvals=3, allowed_users=["a", "b", "c"]), [("a", False)], "REJECTED"),
    ],
)
def test_the_verdict_of_the_votes(
    policy: ApprovalPolicy, cast: list[tuple[str, bool]], expected: str | None
) -> None:
    assert verdict(policy, votes(*cast)) == expected
