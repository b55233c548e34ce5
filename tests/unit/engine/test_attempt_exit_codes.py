"""Each attempt's exit code is kept on its task execution (bounded), so a client that polls less
often than a task retries still sees every code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from formica.engine.routing import TaskState
from formica.engine.walk import EXIT_CODES_KEPT, AttemptResult, Clock, record_attempt, start_walk
from formica.jobs.models import JobDefinition

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _job(task: dict[str, Any]) -> JobDefinition:
    return JobDefinition.model_validate({"job_type": "j", "tasks": [task]})


def _feed(definition: JobDefinition, *results: AttemptResult) -> Any:
    clock = Clock(T0, T0, definition.timeout)
    transition = start_walk(definition, clock)
    for result in results:
        transition = record_attempt(definition, transition.walk, result, clock)
    return transition


def test_a_retried_task_records_each_attempts_code_in_order() -> None:
    definition = _job({"task_type": "build", "method": "SHELL", "script": ["x"], "retry": 2})

    done = _feed(
        definition,
        AttemptResult(exit_code="3"),
        AttemptResult(error_code="ERR_TASK_TIMED_OUT"),
        AttemptResult(exit_code="0"),
    )

    (last,) = [update for update in done.task_updates if update.task_type == "build"]
    assert last.task_state == TaskState.COMPLETED
    assert last.exit_codes == ["3", "ERR_TASK_TIMED_OUT", "0"]


def test_a_long_sensor_keeps_only_its_last_codes() -> None:
    definition = _job(
        {"task_type": "s", "method": "HTTP_GET", "script": ["u"], "on_exit_code": {"404": "EXECUTING"}}
    )
    polls = [AttemptResult(exit_code="404")] * (EXIT_CODES_KEPT + 5)

    waiting = _feed(definition, *polls, AttemptResult(exit_code="200"))

    (last,) = [update for update in waiting.task_updates if update.task_type == "s"]
    assert len(last.exit_codes) == EXIT_CODES_KEPT
    assert last.exit_codes[-1] == "200" and set(last.exit_codes[:-1]) == {"404"}
