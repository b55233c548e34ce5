"""The walk's CloudWatch metrics: EMF documents on standard output, read back as CloudWatch would."""

from __future__ import annotations

from typing import Any

import pytest
from formica.engine.walk import JobState

from tests.emf import emf_metrics, named
from tests.workflow.conftest import Walk


def test_a_finished_job_emits_its_metrics(walk: Walk, web: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a job of an HTTP task and a SHELL task
    walk.upload(
        f"""
job_type: metered-job
tasks:
- task_type: fetch
  method: HTTP_GET
  script:
    - {web.base_url}/todos/1
  on_completed: say
- task_type: say
  method: SHELL
  script:
    - echo hello
"""
    )
    capsys.readouterr()
    # When it runs to the end
    request_id = walk.submit("metered-job")
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done
    metrics = emf_metrics(capsys.readouterr().out)

    # Then one start, one completion, by job type
    job = {"job_type": "metered-job", "service": "formica"}
    assert named(metrics, "JobsStarted") == [(job, 1.0)]
    assert named(metrics, "JobsCompleted") == [(job, 1.0)]
    assert named(metrics, "JobsFailed") == []
    ((wait_dimensions, waited),) = named(metrics, "QueueWait")
    assert wait_dimensions == job and 0.0 <= waited < 60.0
    # And one attempt per method, with its duration, none failed
    assert sorted(named(metrics, "TaskAttempts"), key=lambda m: m[0]["method"]) == [
        ({"method": "HTTP_GET", "service": "formica"}, 1.0),
        ({"method": "SHELL", "service": "formica"}, 1.0),
    ]
    durations = {dimensions["method"]: value for dimensions, value in named(metrics, "TaskAttemptDuration")}
    assert set(durations) == {"HTTP_GET", "SHELL"}
    assert all(0.0 <= value < 60_000 for value in durations.values())
    assert named(metrics, "TaskAttemptsFailed") == []
    units = {name: unit for name, _, _, unit in metrics}
    assert units["QueueWait"] == "Seconds" and units["TaskAttemptDuration"] == "Milliseconds"


def test_a_failed_job_counts_its_failed_attempt(walk: Walk, capsys: pytest.CaptureFixture[str]) -> None:
    walk.upload(
        """
job_type: failing-job
tasks:
- task_type: boom
  method: SHELL
  script:
    - exit 3
"""
    )
    capsys.readouterr()
    request_id = walk.submit("failing-job")
    assert walk.wait(request_id).job_state == JobState.FAILED
    metrics = emf_metrics(capsys.readouterr().out)
    assert named(metrics, "JobsFailed") == [({"job_type": "failing-job", "service": "formica"}, 1.0)]
    assert named(metrics, "JobsCompleted") == []
    assert named(metrics, "TaskAttemptsFailed") == [({"method": "SHELL", "service": "formica"}, 1.0)]
