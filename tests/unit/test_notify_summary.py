"""What a notification says, and when a channel is told: pure functions of plain items, no AWS."""

from __future__ import annotations

import json

import pytest
from formica.engine.routing import TaskState
from formica.engine.walk import JobState
from formica.jobs.notify_rules import notify_wanted
from formica.runtime.notify_channels import email_body, slack_body, summarize
from formica.store.requests import JobRequestItem, TaskExecutionItem


def request(**fields: object) -> JobRequestItem:
    values: dict[str, object] = {
        "request_id": "r-1",
        "org": "acme",
        "job_type": "nightly",
        "job_version": 1,
        "created_at": "2026-12-01T10:00:00+00:00",
        "updated_at": "2026-12-01T10:01:05+00:00",
        "started_at": "2026-12-01T10:00:00+00:00",
        "ended_at": "2026-12-01T10:01:05+00:00",
        "job_state": JobState.FAILED,
    }
    values.update(fields)
    return JobRequestItem.model_validate(values)


def task(seq: int, task_type: str, state: TaskState, **fields: object) -> TaskExecutionItem:
    return TaskExecutionItem.model_validate(
        {"request_id": "r-1", "seq": seq, "task_type": task_type, "task_state": state, **fields}
    )


@pytest.mark.parametrize(
    ("when", "state", "wanted"),
    [
        ("always", "COMPLETED", True),
        ("always", "FAILED", True),
        ("always", "CANCELLED", True),
        ("onSuccess", "COMPLETED", True),
        ("onSuccess", "FAILED", False),
        ("onFailure", "FAILED", True),
        ("onFailure", "COMPLETED", False),
        ("onFailure", "CANCELLED", False),
        ("never", "FAILED", False),
        ("none", "FAILED", False),
        ("always", "EXECUTING", False),
    ],
)
def test_a_channel_is_told_about_the_ends_its_when_names(when: str, state: str, wanted: bool) -> None:
    assert notify_wanted(when, state) is wanted


def test_a_failure_names_the_last_failed_task_its_exit_code_error_and_the_dashboard_page() -> None:
    tasks = [
        task(0, "lint", TaskState.FAILED, exit_code="1", allowed_failure=True),
        task(
            1,
            "build",
            TaskState.FAILED,
            exit_code="2",
            error_code="ERR_EXIT",
            error_message="make: *** Error 2",
        ),
        task(2, "notify", TaskState.SKIPPED),
    ]
    summary = summarize(
        request(error_code="ERR_TASK_FAILED", error_message="task build failed"),
        tasks,
        "FAILED",
        "https://abc.execute-api.eu-west-1.amazonaws.com/prod/",
    )

    assert summary.subject == "[Formica] nightly FAILED (request r-1)"
    assert summary.lines == (
        "Job type:    nightly",
        "Request:     r-1",
        "State:       FAILED",
        "Failed task: build (exit code 2)",
        "Task error:  ERR_EXIT make: *** Error 2",
        "Job error:   ERR_TASK_FAILED task build failed",
        "Duration:    1m 5s",
        "Dashboard:   https://abc.execute-api.eu-west-1.amazonaws.com/prod/#/requests/r-1",
    )


def test_a_success_has_no_failure_lines_and_no_link_without_an_api_url() -> None:
    summary = summarize(
        request(job_state=JobState.COMPLETED, ended_at="2026-12-01T12:02:03+00:00"),
        [task(0, "build", TaskState.COMPLETED, exit_code="0")],
        "COMPLETED",
        None,
    )
    assert summary.lines == (
        "Job type:    nightly",
        "Request:     r-1",
        "State:       COMPLETED",
        "Duration:    2h 2m 3s",
    )


def test_the_stored_bodies_carry_the_text_and_slack_names_the_recipients_first() -> None:
    summary = summarize(request(), [], "FAILED", None)
    stored = json.loads(email_body(summary))
    assert stored["subject"] == summary.subject
    assert stored["text"] == "\n".join(summary.lines) + "\n"
    payload = json.loads(slack_body(summary, ["#builds", "@ana"]))
    assert set(payload) == {"text"}  # no "channel": only legacy webhooks honour it
    assert payload["text"].splitlines()[0] == "#builds @ana [Formica] nightly FAILED (request r-1)"
