"""`formica submit --wait` and `formica status` show task restarts and job restarts."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from formica.cli.remote import ProgressPrinter, format_request

NOW = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)


def _task(task_type: str, state: str, attempts: int, exit_code: str, job_retry: int = 0) -> dict[str, Any]:
    return {
        "task_type": task_type,
        "method": "SHELL",
        "task_state": state,
        "attempts": attempts,
        "exit_code": exit_code,
        "job_retry": job_retry,
    }


def _request(state: str, tasks: list[dict[str, Any]], retried: int = 0) -> dict[str, Any]:
    return {"id": "r1", "job_state": state, "retried": retried, "tasks": tasks}


def test_each_attempt_of_a_restarted_task_prints_its_exit_code() -> None:
    printer = ProgressPrinter(io.StringIO(), clock=lambda: NOW)

    first = printer.update(_request("EXECUTING", [_task("build", "EXECUTING", 1, "1")]))
    second = printer.update(_request("COMPLETED", [_task("build", "COMPLETED", 2, "0")]))

    assert len(first) == 1 and "attempt 1" in first[0] and "exit 1" in first[0]
    assert "attempt 2" in second[0] and "exit 0" in second[0]


def test_an_attempt_that_ended_between_two_polls_is_still_shown() -> None:
    printer = ProgressPrinter(io.StringIO(), clock=lambda: NOW)

    lines = printer.update(_request("COMPLETED", [_task("build", "COMPLETED", 3, "0")]))

    assert [line.split()[:3] for line in lines[:2]] == [
        ["build", "attempt", "1"],
        ["build", "attempt", "2"],
    ]
    assert all("between two polls" in line for line in lines[:2])
    assert "attempt 3" in lines[2] and "exit 0" in lines[2]


def test_a_job_restart_gets_its_own_line_before_the_tasks_it_runs() -> None:
    printer = ProgressPrinter(io.StringIO(), clock=lambda: NOW)
    failed = _task("build", "FAILED", 1, "2")

    printer.update(_request("EXECUTING", [failed]))
    lines = printer.update(
        _request("EXECUTING", [failed, _task("build", "EXECUTING", 0, "", job_retry=1)], retried=1)
    )

    assert lines[0] == "job restarted: retry 1 (job attempt 2)"
    assert "build" in lines[1] and "EXECUTING" in lines[1]
    assert printer.update(_request("EXECUTING", [failed], retried=1)) == []  # said once


def test_a_job_restart_shows_before_its_first_task_is_recorded() -> None:
    printer = ProgressPrinter(io.StringIO(), clock=lambda: NOW)

    lines = printer.update(_request("EXECUTING", [_task("build", "FAILED", 1, "2")], retried=1))

    assert lines[-1] == "job restarted: retry 1 (job attempt 2)"


def test_status_shows_retried_and_each_executions_job_attempt() -> None:
    text = format_request(
        {
            "id": "r1",
            "job_type": "build-job",
            "job_version": 1,
            "job_state": "COMPLETED",
            "retried": 1,
            "tasks": [_task("build", "FAILED", 1, "2"), _task("build", "COMPLETED", 1, "0", job_retry=1)],
        },
        now=NOW,
    )

    header, _created, table_header, *rows = text.splitlines()
    assert header.endswith("COMPLETED  retried 1")
    assert "JOB RETRY" in table_header
    assert [row.split()[5] for row in rows] == ["0", "1"]


def test_an_attempt_between_two_polls_shows_its_exit_code_from_the_api() -> None:
    printer = ProgressPrinter(io.StringIO(), clock=lambda: NOW)
    task = {**_task("build", "COMPLETED", 3, "0"), "exit_codes": ["2", "ERR_TASK_TIMED_OUT", "0"]}

    lines = printer.update(_request("COMPLETED", [task]))

    assert lines[0].endswith("attempt 1 ended between two polls: exit 2")
    assert lines[1].endswith("attempt 2 ended between two polls: exit ERR_TASK_TIMED_OUT")
    assert "attempt 3" in lines[2] and "exit 0" in lines[2]
