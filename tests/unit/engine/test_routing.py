"""The exit-code routing rules, one row per rule: given a task and one attempt's outcome, the route."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from formica.engine.routing import (
    DEFAULT_RESTART_CAP,
    ERR_FATAL,
    ERR_INVALID_ROUTE,
    ERR_RESTART_JOB,
    ERR_RESTART_TASK,
    ERR_TASK_FAILED,
    AttemptOutcome,
    Failure,
    Move,
    RetryBudget,
    TaskState,
    is_success,
    route_exit_code,
)
from formica.jobs.models import RunnerKind, TaskDefinition

KNOWN = {"t", "next", "cleanup", "branch", "other"}


def shell(**fields: Any) -> TaskDefinition:
    return TaskDefinition.model_validate({"task_type": "t", "method": "SHELL", "script": ["true"], **fields})


def http(**fields: Any) -> TaskDefinition:
    return TaskDefinition.model_validate({"task_type": "t", "method": "HTTP_GET", "script": ["u"], **fields})


@dataclass(frozen=True)
class Row:
    rule: str
    task: TaskDefinition
    outcome: AttemptOutcome
    state: TaskState
    move: Move
    failure: Failure = Failure.NONE
    next_task: str | None = None
    error: str | None = None
    budget: RetryBudget = field(default_factory=RetryBudget)


def code(value: str) -> AttemptOutcome:
    return AttemptOutcome(exit_code=value)


ROWS = [
    Row(
        "exit 0 completes -> on_completed",
        shell(on_completed="next"),
        code("0"),
        TaskState.COMPLETED,
        Move.NEXT,
        next_task="next",
    ),
    Row("exit 0 without on_completed ends the route", shell(), code("0"), TaskState.COMPLETED, Move.NEXT),
    Row(
        "HTTP 2xx completes",
        http(on_completed="next"),
        code("201"),
        TaskState.COMPLETED,
        Move.NEXT,
        next_task="next",
    ),
    Row(
        "HTTP 404 fails -> on_failed",
        http(on_failed="cleanup"),
        code("404"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        "cleanup",
        ERR_TASK_FAILED,
    ),
    Row(
        "shell exit 0 is the only success (HTTP codes are failures)",
        shell(on_completed="next"),
        code("200"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        None,
        ERR_TASK_FAILED,
    ),
    Row(
        "non-zero fails unhandled -> on_failed",
        shell(on_failed="cleanup", on_completed="next"),
        code("3"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        "cleanup",
        ERR_TASK_FAILED,
    ),
    Row(
        "non-zero without on_failed: no route",
        shell(on_completed="next"),
        code("3"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        None,
        ERR_TASK_FAILED,
    ),
    Row(
        "exact code -> task name on a failure code: handled branch",
        shell(on_exit_code={"3": "branch"}),
        code("3"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.HANDLED,
        "branch",
    ),
    Row(
        "exact code -> task name on the success code: completed branch",
        shell(on_completed="next", on_exit_code={"0": "branch"}),
        code("0"),
        TaskState.COMPLETED,
        Move.NEXT,
        next_task="branch",
    ),
    Row(
        "exact code -> COMPLETED",
        shell(on_completed="next", on_exit_code={"3": "COMPLETED"}),
        code("3"),
        TaskState.COMPLETED,
        Move.NEXT,
        next_task="next",
    ),
    Row(
        "exact code -> FAILED",
        shell(on_failed="cleanup", on_exit_code={"1": "FAILED"}),
        code("1"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        "cleanup",
        ERR_TASK_FAILED,
    ),
    Row(
        "exact code -> FATAL: no route, no job retry",
        shell(on_failed="cleanup", on_exit_code={"1": "FATAL"}),
        code("1"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.FATAL,
        None,
        ERR_FATAL,
    ),
    Row(
        "exact code -> EXECUTING polls",
        http(on_exit_code={"404": "EXECUTING"}),
        code("404"),
        TaskState.EXECUTING,
        Move.POLL,
    ),
    Row(
        "RESTART_TASK within the task's retry",
        shell(retry=2, on_exit_code={"5": "RESTART_TASK"}),
        code("5"),
        TaskState.FAILED,
        Move.RETRY_TASK,
        Failure.HANDLED,
        budget=RetryBudget(task_retry=1),
    ),
    Row(
        "RESTART_TASK past the task's retry fails ERR_RESTART_TASK",
        shell(retry=2, on_exit_code={"5": "RESTART_TASK"}),
        code("5"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        None,
        ERR_RESTART_TASK,
        RetryBudget(task_retry=2),
    ),
    Row(
        "RESTART_TASK without retry uses the default cap",
        shell(on_exit_code={"5": "RESTART_TASK"}),
        code("5"),
        TaskState.FAILED,
        Move.RETRY_TASK,
        Failure.HANDLED,
        budget=RetryBudget(task_retry=DEFAULT_RESTART_CAP - 1),
    ),
    Row(
        "RESTART_TASK without retry stops at the default cap",
        shell(on_exit_code={"5": "RESTART_TASK"}),
        code("5"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        None,
        ERR_RESTART_TASK,
        RetryBudget(task_retry=DEFAULT_RESTART_CAP),
    ),
    Row(
        "RESTART_JOB within the job's retry",
        shell(on_exit_code={"2": "RESTART_JOB"}),
        code("2"),
        TaskState.FAILED,
        Move.RESTART_JOB,
        Failure.HANDLED,
        budget=RetryBudget(job_retry=1, job_retry_limit=2),
    ),
    Row(
        "RESTART_JOB past the job's retry fails ERR_RESTART_JOB",
        shell(on_exit_code={"2": "RESTART_JOB"}),
        code("2"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        None,
        ERR_RESTART_JOB,
        RetryBudget(job_retry=2, job_retry_limit=2),
    ),
    Row(
        "RESTART_JOB without job retry stops at the default cap",
        shell(on_exit_code={"2": "RESTART_JOB"}),
        code("2"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        None,
        ERR_RESTART_JOB,
        RetryBudget(job_retry=DEFAULT_RESTART_CAP),
    ),
    Row(
        "exact code -> ERR_X fails with that code",
        shell(on_failed="cleanup", on_exit_code={"4": "ERR_BLAH"}),
        code("4"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        "cleanup",
        "ERR_BLAH",
    ),
    Row(
        "allow_failure: failure handled, on_failed first",
        shell(allow_failure=True, on_failed="cleanup", on_completed="next"),
        code("1"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.HANDLED,
        "cleanup",
        ERR_TASK_FAILED,
    ),
    Row(
        "allow_failure: failure handled, else on_completed",
        shell(allow_failure=True, on_completed="next"),
        code("1"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.HANDLED,
        "next",
        ERR_TASK_FAILED,
    ),
    Row(
        "allow_failure does not soften FATAL",
        shell(allow_failure=True, on_completed="next", on_exit_code={"1": "FATAL"}),
        code("1"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.FATAL,
        None,
        ERR_FATAL,
    ),
    Row(
        "allow_failure with EXECUTING still polls",
        http(allow_failure=True, on_exit_code={"404": "EXECUTING"}),
        code("404"),
        TaskState.EXECUTING,
        Move.POLL,
    ),
    Row(
        "timeout: no exit code, runner's error code -> on_failed",
        shell(on_failed="cleanup", on_exit_code={"0": "branch"}),
        AttemptOutcome(error_code="ERR_TASK_TIMED_OUT"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        "cleanup",
        "ERR_TASK_TIMED_OUT",
    ),
    Row(
        "runner error without exit code or error code",
        shell(),
        AttemptOutcome(),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        None,
        ERR_TASK_FAILED,
    ),
    Row(
        "automatic retry while the task's retry lasts",
        shell(retry=1, on_failed="cleanup"),
        code("1"),
        TaskState.FAILED,
        Move.RETRY_TASK,
        Failure.HANDLED,
        None,
        ERR_TASK_FAILED,
    ),
    Row(
        "automatic retry spent: the failure stands",
        shell(retry=1, on_failed="cleanup"),
        code("1"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        "cleanup",
        ERR_TASK_FAILED,
        RetryBudget(task_retry=1),
    ),
    Row(
        "automatic retry also covers timeouts",
        shell(retry=1),
        AttemptOutcome(error_code="ERR_TASK_TIMED_OUT"),
        TaskState.FAILED,
        Move.RETRY_TASK,
        Failure.HANDLED,
        None,
        "ERR_TASK_TIMED_OUT",
    ),
    Row(
        "FATAL is never retried",
        shell(retry=3, on_exit_code={"1": "FATAL"}),
        code("1"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.FATAL,
        None,
        ERR_FATAL,
    ),
    Row(
        "on_failed naming an action takes it (ERR_X)",
        shell(on_failed="ERR_CLEANUP"),
        code("1"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        None,
        "ERR_CLEANUP",
    ),
    Row(
        "on_failed naming RESTART_TASK retries",
        shell(on_failed="RESTART_TASK"),
        code("1"),
        TaskState.FAILED,
        Move.RETRY_TASK,
        Failure.HANDLED,
    ),
    Row(
        "on_completed naming EXECUTING polls on success",
        http(on_completed="EXECUTING"),
        code("200"),
        TaskState.EXECUTING,
        Move.POLL,
    ),
    Row(
        "on_completed naming COMPLETED ends the route",
        shell(on_completed="COMPLETED"),
        code("0"),
        TaskState.COMPLETED,
        Move.NEXT,
    ),
    Row(
        "on_completed naming a missing task fails ERR_INVALID_ROUTE",
        shell(on_completed="nowhere"),
        code("0"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        None,
        ERR_INVALID_ROUTE,
    ),
    Row(
        "unknown target fails ERR_INVALID_ROUTE",
        shell(on_exit_code={"7": "nowhere"}),
        code("7"),
        TaskState.FAILED,
        Move.NEXT,
        Failure.UNHANDLED,
        None,
        ERR_INVALID_ROUTE,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.rule for row in ROWS])
def test_routing_rule(row: Row) -> None:
    # Given a task and one attempt's outcome, When it is routed, Then the route is the rule's.
    route = route_exit_code(row.task, row.outcome, row.budget, known_tasks=KNOWN)
    assert (route.task_state, route.move, route.failure, route.next_task, route.error_code) == (
        row.state,
        row.move,
        row.failure,
        row.next_task,
        row.error,
    )


def test_every_rule_has_a_distinct_name() -> None:
    assert len({row.rule for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize(
    ("exit_code", "runner", "expected"),
    [
        ("0", RunnerKind.SHELL, True),
        ("1", RunnerKind.SHELL, False),
        ("0", RunnerKind.CONTAINER, True),
        ("200", RunnerKind.HTTP, True),
        ("299", RunnerKind.HTTP, True),
        ("300", RunnerKind.HTTP, False),
        ("0", RunnerKind.HTTP, False),
        ("2xx", RunnerKind.HTTP, False),
    ],
)
def test_success_codes(exit_code: str, runner: RunnerKind, expected: bool) -> None:
    assert is_success(exit_code, runner) is expected


def test_seed_second_task_routes_every_code() -> None:
    # The seed's mapping, every code 0..5, with no retry set anywhere.
    task = TaskDefinition.model_validate(
        {
            "task_type": "second",
            "container": {"image": "alpine"},
            "script": ["exit 0"],
            "on_exit_code": {
                "1": "FAILED",
                "2": "RESTART_JOB",
                "3": "COMPLETED",
                "4": "ERR_BLAH",
                "5": "RESTART_TASK",
            },
            "on_completed": "third",
        }
    )
    moves = {c: route_exit_code(task, code(str(c)), RetryBudget()) for c in range(6)}
    assert (moves[0].task_state, moves[0].next_task) == (TaskState.COMPLETED, "third")
    assert (moves[1].failure, moves[1].error_code) == (Failure.UNHANDLED, ERR_TASK_FAILED)
    assert moves[2].move == Move.RESTART_JOB
    assert (moves[3].task_state, moves[3].next_task) == (TaskState.COMPLETED, "third")
    assert (moves[4].failure, moves[4].error_code) == (Failure.UNHANDLED, "ERR_BLAH")
    assert moves[5].move == Move.RETRY_TASK
