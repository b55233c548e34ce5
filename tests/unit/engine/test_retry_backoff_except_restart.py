"""The walk, pure: retry_backoff_policy delays, except, and restarts of a finished request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from formica.engine.routing import EXIT_SKIPPED, TaskState
from formica.engine.walk import (
    BACKOFF_CEILING_SECONDS,
    ERR_EXCEPT_LOOP,
    Action,
    AttemptResult,
    Clock,
    JobState,
    Transition,
    WalkState,
    backoff_delay,
    record_attempt,
    start_walk,
)
from formica.jobs import DefinitionError, parse_definition
from formica.jobs.models import JobDefinition, RetryBackoffPolicy

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(*tasks: dict[str, Any], **fields: Any) -> JobDefinition:
    return JobDefinition.model_validate({"job_type": "j", "tasks": list(tasks), **fields})


def shell(name: str, **fields: Any) -> dict[str, Any]:
    return {"task_type": name, "method": "SHELL", "script": ["true"], **fields}


def clock(seconds: float = 0, seed: str | None = None) -> Clock:
    return Clock(T0 + timedelta(seconds=seconds), T0, None, seed=seed)


def waits(definition: JobDefinition, *codes: str, seed: str | None = None) -> list[int]:
    """Start the walk, feed it one exit code per attempt; the wait_seconds of each decision after."""
    transition = start_walk(definition, clock(seed=seed))
    seen = []
    for code in codes:
        transition = record_attempt(
            definition, transition.walk, AttemptResult(exit_code=code), clock(seed=seed)
        )
        seen.append(transition.decision.wait_seconds)
    return seen


# -- retry_backoff_policy -----------------------------------------------------------------------


def test_backoff_grows_by_factor_up_to_max() -> None:
    policy = RetryBackoffPolicy(min=1, max=5, factor=2)
    assert [backoff_delay(policy, n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_backoff_without_max_stops_at_the_ceiling_and_never_overflows() -> None:
    policy = RetryBackoffPolicy(min=1, factor=100)
    assert backoff_delay(policy, 10_000) == BACKOFF_CEILING_SECONDS


def test_backoff_jitter_adds_its_share() -> None:
    policy = RetryBackoffPolicy(min=2, max=4, factor=2, jitter=10)
    assert backoff_delay(policy, 3, fraction=0.5) == 4 + 5


def test_task_retries_wait_the_policy_on_the_state_machine() -> None:
    definition = job(shell("a", retry=3, retry_backoff_policy={"min": "1s", "factor": 3, "max": "5s"}))
    # Each failure before the budget is spent is a retry decision whose wait grows 1, 3, 5 (capped).
    assert waits(definition, "1", "1", "1") == [1, 3, 5]


def test_task_policy_wins_over_its_delay_between_retries() -> None:
    definition = job(
        shell("a", retry=2, delay_between_retries="30s", retry_backoff_policy={"min": "1s", "factor": 2})
    )
    assert waits(definition, "1", "1") == [1, 2]


def test_job_policy_is_the_default_of_tasks_without_their_own_delay() -> None:
    policy = {"min": "2s", "factor": 2}
    plain = job(shell("a", retry=2), retry_backoff_policy=policy)
    assert waits(plain, "1", "1") == [2, 4]
    own_delay = job(shell("a", retry=2, delay_between_retries="7s"), retry_backoff_policy=policy)
    assert waits(own_delay, "1", "1") == [7, 7]


def test_job_restarts_wait_the_job_policy() -> None:
    definition = job(
        shell("a", on_exit_code={"3": "RESTART_JOB"}),
        retry=3,
        delay_between_retries="30s",
        retry_backoff_policy={"min": "1s", "factor": 4},
    )
    assert waits(definition, "3", "3", "3") == [1, 4, 16]


def test_jitter_is_the_same_for_the_same_clock_and_varies_with_the_seed() -> None:
    definition = job(shell("a", retry=4, retry_backoff_policy={"min": "1s", "factor": 1, "jitter": "100s"}))
    first = waits(definition, "1", "1", "1", "1", seed="seed-1")
    assert first == waits(definition, "1", "1", "1", "1", seed="seed-1")
    assert all(1 <= wait <= 101 for wait in first)
    assert first != waits(definition, "1", "1", "1", "1", seed="seed-2")


@pytest.mark.parametrize(
    ("policy", "field", "words"),
    [
        ("{min: 0s}", "retry_backoff_policy.min", "more than 0s"),
        ("{min: 10s, max: 5s}", "retry_backoff_policy.max", "shorter than its min"),
        ("{min: 1s, factor: 0.5}", "retry_backoff_policy.factor", "from 1 to 100"),
    ],
)
def test_a_bad_policy_is_refused_naming_field_task_and_line(policy: str, field: str, words: str) -> None:
    text = (
        "job_type: j\ntasks:\n- task_type: a\n  method: SHELL\n  script: [true]\n"
        f"  retry_backoff_policy: {policy}\n"
    )
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    [problem] = caught.value.problems
    assert (problem.field, problem.task_type, problem.line) == (field, "a", 6)
    assert words in problem.message


def test_a_policy_with_an_unknown_key_is_refused() -> None:
    text = (
        "job_type: j\nretry_backoff_policy: {min: 1s, maxx: 5s}\n"
        "tasks:\n- task_type: a\n  method: SHELL\n  script: [true]\n"
    )
    with pytest.raises(DefinitionError, match="maxx"):
        parse_definition(text)


# -- except -------------------------------------------------------------------------------------


def test_except_true_completes_the_task_with_exit_code_skipped_and_goes_on() -> None:
    definition = job(shell("a", on_completed="b", **{"except": "true"}), shell("b"))
    first = start_walk(definition, clock())
    assert (first.decision.action, first.decision.task_type) == (Action.RUN_SHELL, "b")
    skipped = first.task_updates[0]
    assert (skipped.task_type, skipped.task_state, skipped.exit_code, skipped.attempts) == (
        "a",
        TaskState.COMPLETED,
        EXIT_SKIPPED,
        0,
    )


def test_except_not_true_runs_the_task() -> None:
    definition = job(shell("a", on_completed="b", **{"except": "false"}), shell("b"))
    first = start_walk(definition, clock())
    assert first.decision.task_type == "a"


def test_an_excepted_last_task_completes_the_job() -> None:
    definition = job(shell("a", on_completed="b"), shell("b", **{"except": "yes, true"}))
    done = record_attempt(
        definition, start_walk(definition, clock()).walk, AttemptResult(exit_code="0"), clock()
    )
    assert (done.job_state, done.decision.action) == (JobState.COMPLETED, Action.SUCCEED)
    assert [(u.task_type, u.task_state, u.exit_code) for u in done.task_updates] == [
        ("a", TaskState.COMPLETED, "0"),
        ("b", TaskState.COMPLETED, EXIT_SKIPPED),
    ]


def test_excepted_tasks_routing_to_each_other_fail_the_job_instead_of_looping() -> None:
    definition = job(
        shell("start", on_completed="a"),
        shell("a", on_completed="b", **{"except": "true"}),
        shell("b", on_completed="a", **{"except": "true"}),
    )
    done = record_attempt(
        definition, start_walk(definition, clock()).walk, AttemptResult(exit_code="0"), clock()
    )
    assert (done.job_state, done.error_code) == (JobState.FAILED, ERR_EXCEPT_LOOP)


# -- restarts of a finished request ---------------------------------------------------------------


def four() -> JobDefinition:
    return job(
        shell("a", on_completed="b"),
        shell("b", on_completed="c"),
        shell("c", on_completed="d"),
        shell("d"),
        hard_reset_after_retries=1,
    )


def failed_at_c(definition: JobDefinition) -> Transition:
    transition = start_walk(definition, clock())
    for code in ("0", "0", "1"):
        transition = record_attempt(definition, transition.walk, AttemptResult(exit_code=code), clock())
    assert transition.job_state == JobState.FAILED
    return transition


def requeued(walk: WalkState, restarts: int, *, soft: bool = True) -> WalkState:
    """What restart_request stores (runtime.scheduling.restart_walk)."""
    carried = {**walk.carried, **walk.completed} if soft else {}
    return WalkState(next_seq=walk.next_seq, restarts=restarts, carried=carried, outputs=walk.outputs)


def test_a_soft_restart_skips_what_completed_and_reruns_from_the_failed_task() -> None:
    definition = four()
    ended = failed_at_c(definition).walk
    again = start_walk(definition, clock(), previous=requeued(ended, 1))
    assert again.decision.task_type == "c"
    assert [(u.seq, u.task_type, u.task_state) for u in again.task_updates] == [
        (4, "a", TaskState.SKIPPED),
        (5, "b", TaskState.SKIPPED),
        (6, "c", TaskState.READY),
    ]


def test_a_hard_restart_reruns_everything() -> None:
    definition = four()
    ended = failed_at_c(definition).walk
    again = start_walk(definition, clock(), previous=requeued(ended, 1, soft=False))
    assert again.decision.task_type == "a"
    assert [u.task_state for u in again.task_updates] == [TaskState.READY]


def test_every_hard_reset_after_retries_plus_one_th_restart_is_hard() -> None:
    definition = four()  # hard_reset_after_retries: 1 -> the 2nd, 4th... restart is hard
    ended = failed_at_c(definition).walk
    assert start_walk(definition, clock(), previous=requeued(ended, 1)).decision.task_type == "c"
    second = start_walk(definition, clock(), previous=requeued(ended, 2))
    assert second.decision.task_type == "a"
    assert second.walk.restarts == 2


def test_a_restart_never_carries_always_run_or_fork_tasks() -> None:
    definition = job(
        shell("a", on_completed="b"),
        {"task_type": "b", "method": "FORK_JOB", "fork_job_type": "child", "on_completed": "c"},
        shell("c", on_completed="d"),
        shell("d", always_run=True),
    )
    previous = WalkState(next_seq=9, restarts=1, carried={"a": "b", "b": "c", "d": None})
    again = start_walk(definition, clock(), previous=previous)
    assert again.decision.task_type == "b"
    assert [(u.task_type, u.task_state) for u in again.task_updates] == [
        ("a", TaskState.SKIPPED),
        ("b", TaskState.READY),
    ]
