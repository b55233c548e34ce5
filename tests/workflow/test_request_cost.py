"""A request's usage is counted as its walk runs, and the counted state transitions are the states its
executions entered, read back from moto's execution histories of the same run."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from formica.engine import walk as walk_module
from formica.engine.walk import JobState
from formica.runtime import cancel_request, get_runtime
from formica.store.stats import JobStatsRepository

from tests.workflow.conftest import ORG, TABLE, Walk


def states_entered(walk: Walk, request_id: str, executions: int) -> int:
    """``*StateEntered`` events over every execution of the request (``{id}-1`` ... ``{id}-n``)."""
    total = 0
    for number in range(1, executions + 1):
        events = walk.history(f"{request_id}-{number}")
        total += sum(1 for event in events if str(event["type"]).endswith("StateEntered"))
    return total


def test_three_task_job_counts_the_transitions_of_its_history(walk: Walk) -> None:
    # Given a job of three SHELL tasks
    walk.upload(
        """
job_type: three-steps
tasks:
- task_type: one
  method: SHELL
  script: ["echo one"]
  on_completed: two
- task_type: two
  method: SHELL
  script: ["echo two"]
  on_completed: three
- task_type: three
  method: SHELL
  script: ["echo three"]
"""
    )
    # When it runs to the end
    request_id = walk.submit("three-steps")
    done = walk.wait(request_id)

    # Then the transitions counted on the request are the states its execution entered
    assert done.job_state == JobState.COMPLETED
    assert done.execution_count == 1
    entered = states_entered(walk, request_id, 1)
    assert entered == 8  # Route + RunShell per task, then Route + Done
    usage = walk.request(request_id).usage
    assert usage.transitions == entered
    # and each task Lambda's invocation, its time and its requests were counted
    shell = usage.lambdas["shell_task"]
    assert shell.invocations == 3
    assert shell.mb_ms > 0 and shell.mb_ms % 256 == 0  # 256 MB (no Lambda memory set locally) x ms
    assert usage.dynamodb_write_units >= 6  # at least a claim and a commit per attempt
    assert usage.dynamodb_read_units >= 3
    assert usage.s3_write_requests >= 3  # each attempt's log


def test_sensor_that_continues_as_new_counts_every_execution(
    walk: Walk, web: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sensor that answers 404 twenty times, and a history budget small enough that the walk
    # continues as new every few polls
    monkeypatch.setattr(walk_module, "HISTORY_EVENT_BUDGET", 100)
    answered = {"n": 0}
    original = web.hit

    def hit(path: str) -> tuple[int, str]:
        if path != "/sensor":
            return original(path)
        answered["n"] += 1
        return (404, "not yet") if answered["n"] <= 20 else (200, "ready")

    web.hit = hit
    walk.upload(
        f"""
job_type: short-budget-sensor
tasks:
- task_type: sense
  method: HTTP_GET
  script:
    - {web.base_url}/sensor
  on_exit_code:
    404: EXECUTING
"""
    )
    # When it polls until the endpoint answers
    request_id = walk.submit("short-budget-sensor")
    done = walk.wait(request_id, timeout=120)

    # Then it ran in several executions, and the transitions counted equal the states all of them entered
    assert done.job_state == JobState.COMPLETED, done
    assert done.execution_count >= 3
    entered = states_entered(walk, request_id, done.execution_count)
    usage = walk.request(request_id).usage
    assert usage.transitions == entered
    assert usage.lambdas["http_task"].invocations == 21
    assert usage.lambdas["continue_execution"].invocations == done.execution_count - 1


def test_each_end_is_counted_in_the_job_types_day(walk: Walk) -> None:
    # Given a job that completes and one that fails
    walk.upload(
        """
job_type: counted
tasks:
- task_type: only
  method: SHELL
  script: ["exit {{if .Fail}}3{{else}}0{{end}}"]
"""
    )
    # When one request of each runs to its end
    completed = walk.wait(walk.submit("counted", {"Fail": False}))
    failed = walk.wait(walk.submit("counted", {"Fail": True}))

    # Then the day's row of the job type counts both, with their summed transitions, from one Query
    assert (completed.job_state, failed.job_state) == (JobState.COMPLETED, JobState.FAILED)
    today = datetime.now(UTC).date().isoformat()
    [row] = JobStatsRepository(TABLE).days(ORG, today, today, job_type="counted")
    assert row.counts == {"COMPLETED": 1, "FAILED": 1}
    assert sum(row.histogram) == 2
    assert row.usage.transitions == completed.usage.transitions + failed.usage.transitions


def test_a_cancelled_request_counts_the_states_its_execution_ends_through(walk: Walk) -> None:
    # Given a request whose only task sleeps, and a cancel while it runs
    walk.upload(
        """
job_type: long-sleep
tasks:
- task_type: sleep
  method: SHELL
  script: ["sleep 30"]
"""
    )
    request_id = walk.submit("long-sleep")
    walk.wait_for(request_id, lambda request: request.job_state == JobState.EXECUTING)
    time.sleep(0.5)
    cancel_request(ORG, request_id, get_runtime())

    # When its execution has ended
    done = walk.wait(request_id)

    # Then the transitions counted are still the states its execution entered (Route, Cancelled too)
    assert done.job_state == JobState.CANCELLED
    entered = states_entered(walk, request_id, 1)
    assert walk.request(request_id).usage.transitions == entered
