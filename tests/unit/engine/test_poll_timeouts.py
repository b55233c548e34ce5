"""Timeouts as users meet them: a sensor's polls against its task timeout, and the job's timeout
named as the job's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from formica.engine.walk import (
    ERR_JOB_TIMED_OUT,
    ERR_TASK_TIMED_OUT,
    Action,
    AttemptResult,
    Clock,
    JobState,
    record_attempt,
    start_walk,
)
from formica.jobs.models import JobDefinition

T0 = datetime(2026, 1, 1, tzinfo=UTC)

SENSOR = JobDefinition.model_validate(
    {
        "job_type": "sensor",
        "tasks": [
            {
                "task_type": "first",
                "method": "HTTP_GET",
                "url": "https://example.com/todos/1",
                "timeout": "6s",
                "delay_between_retries": "2s",
                "on_exit_code": {"404": "EXECUTING"},
            }
        ],
    }
)


def at(seconds: float, definition: JobDefinition = SENSOR) -> Clock:
    return Clock(T0 + timedelta(seconds=seconds), T0, definition.timeout)


def test_a_sensor_fails_as_soon_as_its_next_poll_could_not_start_before_its_timeout() -> None:
    # Given a sensor with timeout 6s and 2s between polls, each poll taking 0.2s
    walk = start_walk(SENSOR, at(0)).walk
    first = record_attempt(SENSOR, walk, AttemptResult(exit_code="404"), at(0.2))
    assert (first.decision.action, first.decision.wait_seconds) == (Action.RUN_HTTP, 2)

    # When the second poll (at 2.2s) ends at 4.3s: a third would start at 6.3s, past the deadline
    second = record_attempt(SENSOR, first.walk, AttemptResult(exit_code="404"), at(4.3))

    # Then the task fails now, at 4.3s, and the message says why
    assert second.job_state == JobState.FAILED
    assert second.error_code == ERR_TASK_TIMED_OUT
    assert second.error_message == (
        "task first timed out while polling: its next poll would start 2s from now, "
        "after its timeout of 6s (1.7s were left)"
    )


def test_the_jobs_timeout_is_called_the_jobs_not_the_tasks() -> None:
    definition = JobDefinition.model_validate(
        {
            "job_type": "slow",
            "timeout": "10s",
            "tasks": [{"task_type": "compile", "method": "SHELL", "script": ["sleep 60"]}],
        }
    )
    walk = start_walk(definition, at(0, definition)).walk
    runner_said = AttemptResult(
        error_code=ERR_TASK_TIMED_OUT,
        error_message="the script did not finish within the task timeout of 10s and was killed",
    )

    ended = record_attempt(definition, walk, runner_said, at(10, definition))

    assert ended.error_code == ERR_JOB_TIMED_OUT
    assert ended.error_message == "the job's timeout of 10s passed while task compile was running"
    [record] = ended.task_updates
    assert (record.error_code, record.error_message) == (ERR_JOB_TIMED_OUT, ended.error_message)
