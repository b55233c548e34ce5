"""The `formica dev` console: one line per finished job, moto's interpreter dumps at debug."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from formica.engine.walk import JobState
from formica.local.console import (
    DEBUG_LOGGER,
    announce_finished_jobs,
    finished_job_line,
    moto_interpreter_at_debug,
)
from formica.runtime import scheduling
from formica.runtime.wiring import _request_finished
from formica.store.requests import JobRequestItem

FAIL_STATE_DUMP = (
    "Exception=FailureEventException, Error=Formica.JobFailed, Details={...} at '(StateFail| {...})'"
)


def _request(state: JobState, **fields: Any) -> JobRequestItem:
    return JobRequestItem(
        request_id="r-1",
        org="local",
        job_type="build-job",
        job_version=1,
        job_state=state,
        created_at="2026-01-01T12:00:00.000000+00:00",
        updated_at="2026-01-01T12:00:03.000000+00:00",
        started_at="2026-01-01T12:00:00.500000+00:00",
        ended_at="2026-01-01T12:00:03.000000+00:00",
        **fields,
    )


def test_a_failed_job_is_one_line_with_its_error_and_the_first_line_of_its_message() -> None:
    request = _request(
        JobState.FAILED,
        error_code="ERR_TASK_FAILED",
        error_message="task boom failed with exit code 3\nlast lines of its output:\n  $ exit 3",
    )

    assert finished_job_line(request) == (
        "job build-job r-1 FAILED after 2.5s: ERR_TASK_FAILED task boom failed with exit code 3"
    )
    assert finished_job_line(_request(JobState.COMPLETED)) == "job build-job r-1 COMPLETED after 2.5s"


def test_moto_fail_state_dumps_go_to_debug_not_the_console(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=DEBUG_LOGGER)
    moto_logger = logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component")

    with moto_interpreter_at_debug():
        moto_logger.error(FAIL_STATE_DUMP)

    assert [(r.name, r.levelno) for r in caplog.records] == [(DEBUG_LOGGER, logging.DEBUG)]
    assert caplog.records[0].detail == FAIL_STATE_DUMP  # type: ignore[attr-defined]
    caplog.clear()
    moto_logger.error(FAIL_STATE_DUMP)  # restored when the server stops
    assert [(r.name, r.levelno) for r in caplog.records] == [(moto_logger.name, logging.ERROR)]


@dataclass
class _Requests:
    stored: dict[str, JobRequestItem]

    def get(self, request_id: str) -> JobRequestItem | None:
        return self.stored.get(request_id)


@dataclass
class _Runtime:
    requests: _Requests
    released: list[str] = field(default_factory=list)
    stats: None = None  # no statistics counted here


def test_every_request_the_runtime_ends_writes_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = _Runtime(_Requests({"r-1": _request(JobState.CANCELLED, error_code="ERR_JOB_CANCELLED")}))
    monkeypatch.setattr(
        scheduling, "request_finished", lambda rt, request, **_: rt.released.append(request.request_id)
    )
    lines: list[str] = []

    with announce_finished_jobs(lines.append):
        # What the walk's final commit and a cancel call (Runtime.request_ended), with the item as
        # read before the commit: the line reads the request as it ended.
        _request_finished(runtime, _request(JobState.EXECUTING))  # type: ignore[arg-type]
    _request_finished(runtime, _request(JobState.EXECUTING))  # type: ignore[arg-type]

    assert runtime.released == ["r-1", "r-1"]  # admission's release still happens, once per call
    assert lines == ["job build-job r-1 CANCELLED after 2.5s: ERR_JOB_CANCELLED"]
