"""The walk, pure: transitions for polls, retries, restarts, always_run, timeouts and the event budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from formica.engine.routing import TaskState
from formica.engine.walk import (
    CALLBACK_GRACE_SECONDS,
    ERR_JOB_TIMED_OUT,
    ERR_TASK_TIMED_OUT,
    HISTORY_EVENT_BUDGET,
    Action,
    AttemptResult,
    Clock,
    Decision,
    JobState,
    Transition,
    WalkState,
    end_walk,
    path_events,
    record_attempt,
    resume_walk,
    start_walk,
)
from formica.jobs.models import JobDefinition

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(*tasks: dict[str, Any], **fields: Any) -> JobDefinition:
    return JobDefinition.model_validate({"job_type": "j", "tasks": list(tasks), **fields})


def shell(name: str, **fields: Any) -> dict[str, Any]:
    return {"task_type": name, "method": "SHELL", "script": ["true"], **fields}


def clock(definition: JobDefinition, seconds: float = 0) -> Clock:
    return Clock(T0 + timedelta(seconds=seconds), T0, definition.timeout)


def run(definition: JobDefinition, *codes: str, at: float = 0) -> Transition:
    """Start the walk and feed it one exit code per attempt."""
    transition = start_walk(definition, clock(definition, at))
    for code in codes:
        transition = record_attempt(
            definition, transition.walk, AttemptResult(exit_code=code), clock(definition, at)
        )
    return transition


def test_start_enters_the_root_task() -> None:
    definition = job(shell("a", on_completed="b"), shell("b"))
    first = start_walk(definition, clock(definition))
    assert (first.decision.action, first.decision.task_type, first.job_state) == (
        Action.RUN_SHELL,
        "a",
        JobState.EXECUTING,
    )
    assert [(u.seq, u.task_type, u.task_state) for u in first.task_updates] == [(1, "a", TaskState.READY)]


def test_a_completed_walk_succeeds() -> None:
    definition = job(shell("a", on_completed="b"), shell("b"))
    done = run(definition, "0", "0")
    assert (done.decision.action, done.job_state) == (Action.SUCCEED, JobState.COMPLETED)


def test_polls_wait_the_delay_and_keep_the_task_execution() -> None:
    definition = job(
        {
            "task_type": "s",
            "method": "HTTP_GET",
            "script": ["u"],
            "delay_between_retries": "2s",
            "on_exit_code": {"404": "EXECUTING"},
        }
    )
    polled = run(definition, "404", "404")
    assert (polled.decision.action, polled.decision.wait_seconds) == (Action.RUN_HTTP, 2)
    assert polled.walk.current is not None
    assert (polled.walk.current.seq, polled.walk.current.polls, polled.walk.current.attempts) == (1, 2, 2)
    assert polled.task_updates[-1].task_state == TaskState.EXECUTING


def test_a_poll_past_the_task_timeout_fails_the_task() -> None:
    definition = job(
        {
            "task_type": "s",
            "method": "HTTP_GET",
            "script": ["u"],
            "timeout": "5s",
            "delay_between_retries": "3s",
            "on_exit_code": {"404": "EXECUTING"},
        }
    )
    started = start_walk(definition, clock(definition, 0))
    first = record_attempt(definition, started.walk, AttemptResult(exit_code="404"), clock(definition, 1))
    assert first.decision.action == Action.RUN_HTTP  # 1 + 3 < 5
    second = record_attempt(definition, first.walk, AttemptResult(exit_code="404"), clock(definition, 4))
    assert (second.job_state, second.error_code) == (JobState.FAILED, ERR_TASK_TIMED_OUT)


def test_the_job_deadline_bounds_an_attempt_and_its_expiry_is_a_job_timeout() -> None:
    definition = job(shell("a", timeout="1h"), timeout="10s")
    started = start_walk(definition, clock(definition))
    assert started.walk.current is not None and started.walk.current.deadline_is_job
    timed_out = record_attempt(
        definition, started.walk, AttemptResult(error_code=ERR_TASK_TIMED_OUT), clock(definition, 10)
    )
    assert (timed_out.job_state, timed_out.error_code) == (JobState.FAILED, ERR_JOB_TIMED_OUT)


def test_container_decisions_carry_a_callback_timeout() -> None:
    definition = job(
        {"task_type": "c", "container": {"image": "alpine"}, "script": ["true"], "timeout": "30s"}
    )
    started = start_walk(definition, clock(definition))
    assert started.decision.action == Action.RUN_CONTAINER
    assert started.decision.timeout_seconds == 30 + CALLBACK_GRACE_SECONDS


def test_restart_job_carries_completed_tasks_and_hard_reset_does_not() -> None:
    definition = job(
        shell("a", on_completed="b"),
        shell("b", on_exit_code={"2": "RESTART_JOB"}),
        retry=3,
        hard_reset_after_retries=1,
    )
    soft = run(definition, "0", "2")
    assert soft.walk.job_retry == 1
    assert soft.decision.task_type == "b"  # a was skipped along its route
    assert [u.task_state for u in soft.task_updates] == [TaskState.FAILED, TaskState.SKIPPED, TaskState.READY]
    hard = record_attempt(definition, soft.walk, AttemptResult(exit_code="2"), clock(definition))
    assert (hard.walk.job_retry, hard.decision.task_type) == (2, "a")


def test_an_unhandled_failure_runs_always_run_then_retries_the_job() -> None:
    definition = job(
        shell("a", on_completed="b"),
        shell("b", on_completed="c"),
        shell("c", always_run=True),
        retry=1,
    )
    failed = run(definition, "1")
    assert failed.decision.task_type == "c"  # b is skipped: the job is failing
    retried = record_attempt(definition, failed.walk, AttemptResult(exit_code="0"), clock(definition))
    assert (retried.walk.job_retry, retried.decision.task_type) == (1, "a")
    final = run(definition, "1", "0", "1", "0")
    assert (final.job_state, final.error_code) == (JobState.FAILED, "ERR_TASK_FAILED")


def test_a_fork_runs_in_a_task_lambda_and_an_await_waits_on_a_token_until_its_deadline() -> None:
    definition = job(
        {"task_type": "f", "method": "FORK_JOB", "fork_job_type": "x", "on_completed": "w"},
        {"task_type": "w", "method": "AWAIT_FORKED_JOB", "await_forked_tasks": ["f"], "timeout": "10m"},
    )
    started = start_walk(definition, clock(definition))
    assert (started.decision.action, started.decision.task_type) == (Action.RUN_FORK, "f")
    forked = record_attempt(
        definition,
        started.walk,
        AttemptResult(exit_code="0", outputs={"ForkedJobID": "c1"}),
        clock(definition),
    )
    assert (forked.decision.action, forked.decision.task_type) == (Action.AWAIT_FORKS, "w")
    # The await has no runner to report its own timeout: its state gives up at the deadline.
    assert forked.decision.timeout_seconds == 600 + 1
    assert forked.walk.outputs["f"] == {"ForkedJobID": "c1"}


def test_cancelled_attempts_end_the_job_cancelled() -> None:
    definition = job(shell("a", on_completed="b"), shell("b"))
    started = start_walk(definition, clock(definition))
    cancelled = record_attempt(
        definition, started.walk, AttemptResult(error_code="ERR_TASK_CANCELLED"), clock(definition)
    )
    assert (cancelled.job_state, cancelled.decision.action) == (JobState.CANCELLED, Action.CANCELLED)
    ended = end_walk(started.walk, JobState.FAILED, "ERR_INTERNAL", "boom", T0)
    assert (ended.decision.action, ended.task_updates[0].task_state) == (Action.FAIL, TaskState.FAILED)


@pytest.mark.parametrize(
    ("decision", "events", "states"),
    [
        (Decision(action=Action.RUN_HTTP), 7, 2),
        (Decision(action=Action.RUN_SHELL, wait_seconds=5), 9, 3),
        (Decision(action=Action.RUN_CONTAINER), 8, 2),
        (Decision(action=Action.CONTINUE), 9, 3),
        (Decision(action=Action.SUCCEED), 4, 2),
    ],
)
def test_path_events(decision: Decision, events: int, states: int) -> None:
    assert path_events(decision) == (events, states)


def test_the_event_budget_turns_a_decision_into_continue_and_resume_restores_it() -> None:
    definition = job(
        {"task_type": "s", "method": "HTTP_GET", "script": ["u"], "on_exit_code": {"404": "EXECUTING"}}
    )
    transition = start_walk(definition, clock(definition))
    polls = 0
    while transition.decision.action != Action.CONTINUE:
        transition = record_attempt(
            definition, transition.walk, AttemptResult(exit_code="404"), clock(definition)
        )
        polls += 1
        assert transition.walk.execution_events <= HISTORY_EVENT_BUDGET
    # about 2,850 polls of 7 events fit under the budget of 20,000
    assert 2_700 < polls < HISTORY_EVENT_BUDGET // 7
    kept = transition.walk.deferred
    assert kept is not None and kept.action == Action.RUN_HTTP
    resumed = resume_walk(transition.walk)
    assert resumed.decision == kept
    assert resumed.walk.deferred is None and resumed.walk.execution_events < 100


def test_resume_needs_a_kept_decision() -> None:
    from formica.engine.walk import WalkError

    with pytest.raises(WalkError):
        resume_walk(WalkState())


def test_outputs_stay_small_enough_for_the_request_item() -> None:
    from formica.engine.outputs import outputs_size, publish
    from formica.jobs.limits import JOB_OUTPUTS_MAX_BYTES, OUTPUT_VALUE_MAX_BYTES

    definition = job(shell("a", on_completed="b"), shell("b"))
    started = start_walk(definition, clock(definition))
    big = AttemptResult(exit_code="0", outputs={"body": "x" * (OUTPUT_VALUE_MAX_BYTES * 3)})
    after = record_attempt(definition, started.walk, big, clock(definition))
    assert len(after.walk.outputs["a"]["body"]) == OUTPUT_VALUE_MAX_BYTES
    assert any("body cut" in warning for warning in big.warnings)
    many: dict[str, dict[str, str]] = {}
    for i in range(40):
        publish(many, f"t{i}", {"body": "y" * OUTPUT_VALUE_MAX_BYTES})
    assert sum(outputs_size(v) for v in many.values()) <= JOB_OUTPUTS_MAX_BYTES
    assert "t39" in many and "t0" not in many
