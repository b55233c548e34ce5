"""The `NoSuchJsonPathError ... '$.action'` that `formica dev` printed: which job, and why it is benign.

A request whose first task does not render when it starts (a template that fails on the request's
params) gets no first decision from its starter, which then starts the execution with
``{"request_id"}`` alone (docs/architecture.md, "The walk as built"). Route's first rule,
``$.action`` IsPresent false, sends that input to Begin. AWS evaluates IsPresent on a missing path
without an error; moto's interpreter looks the path up first, logs the miss at ERROR, then treats it
as not present and goes on. The walk is right (Route, Begin, Advance fails the job, Failed); the
console line was moto's, and `formica dev` now keeps moto's interpreter records at DEBUG.
"""

from __future__ import annotations

import json
import logging

import pytest
from formica.engine.walk import JobState
from formica.local.console import DEBUG_LOGGER, moto_interpreter_at_debug

from tests.workflow.conftest import Walk

RENDERS_NOT = """
job_type: renders-not
tasks:
- task_type: first
  method: SHELL
  script:
    - echo {{ if gt .Count 5 }}many{{ end }}
"""


def _entered(history: list[dict[str, object]]) -> list[str]:
    return [
        event["stateEnteredEventDetails"]["name"]  # type: ignore[index]
        for event in history
        if str(event["type"]).endswith("StateEntered")
    ]


def test_a_job_whose_start_does_not_render_walks_route_begin_failed_without_a_runtime_error(
    walk: Walk, caplog: pytest.LogCaptureFixture
) -> None:
    walk.upload(RENDERS_NOT)
    caplog.set_level(logging.DEBUG, logger=DEBUG_LOGGER)

    with moto_interpreter_at_debug():
        done = walk.wait(walk.submit("renders-not", {"Count": "lots"}))

    # The job: failed by Advance with the template's reason, never by a States.Runtime error.
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_INVALID_DEFINITION")
    assert done.execution_name is not None
    history = walk.history(done.execution_name)
    assert json.loads(history[0]["executionStartedEventDetails"]["input"]) == {"request_id": done.request_id}
    assert _entered(history) == ["Route", "Begin", "Route", "Failed"]
    failures = [event for event in history if event["type"] in ("TaskFailed", "ExecutionFailed")]
    assert [event["type"] for event in failures] == ["ExecutionFailed"]
    assert failures[0]["executionFailedEventDetails"]["error"] == "Formica.JobFailed"
    # moto's record of the missing $.action reached only the debug logger, never the console.
    moto_lines = [record.detail for record in caplog.records if record.name == DEBUG_LOGGER]  # type: ignore[attr-defined]
    assert any("NoSuchJsonPathError" in line and "$.action" in line for line in moto_lines), moto_lines
    assert not [
        r for r in caplog.records if r.name.startswith("moto.stepfunctions") and r.levelno > logging.DEBUG
    ]
