"""Retry backoff, except and restarts of a failed request, through the real state machine on moto."""

from __future__ import annotations

import json
from pathlib import Path

from formica.engine.routing import EXIT_SKIPPED, TaskState
from formica.engine.walk import JobState
from formica.runtime import get_runtime, restart_request

from tests.workflow.conftest import ORG, Walk


def test_task_retries_wait_the_backoff_policy_in_wait_states(walk: Walk) -> None:
    # Given a task that fails twice and retries with delays of 1s, then 2s
    walk.upload(
        """
job_type: backoff
tasks:
- task_type: flaky
  method: SHELL
  retry: 2
  delay_between_retries: 9s
  retry_backoff_policy:
    min: 1s
    factor: 2
    max: 4s
  script:
    - exit {{ if lt .TaskRetry 2 }}1{{ else }}0{{ end }}
"""
    )
    done = walk.wait(walk.submit("backoff"))
    assert done.job_state == JobState.COMPLETED, done
    # Then the execution waited in its Wait states, 1 s then 2 s (never the 9 s it overrides)
    assert done.execution_name is not None
    entered = [
        event["stateEnteredEventDetails"]
        for event in walk.history(done.execution_name)
        if event["type"] == "WaitStateEntered"
    ]
    assert [(e["name"], json.loads(e["input"])["wait_seconds"]) for e in entered] == [
        ("WaitThenRunShell", 1),
        ("WaitThenRunShell", 2),
    ]


EXCEPT_JOB = """
job_type: except-job
tasks:
- task_type: maybe
  method: SHELL
  except: {{ .skip }}
  script:
    - echo maybe ran
  on_completed: after
- task_type: after
  method: SHELL
  script:
    - echo after ran
"""


def test_except_true_skips_the_task_with_exit_code_skipped(walk: Walk) -> None:
    walk.upload(EXCEPT_JOB)
    done = walk.wait(walk.submit("except-job", {"skip": "true"}))
    assert done.job_state == JobState.COMPLETED, done
    maybe, after = walk.tasks(done.request_id)
    assert (maybe.task_type, maybe.task_state, maybe.exit_code, maybe.log_key) == (
        "maybe",
        TaskState.COMPLETED,
        EXIT_SKIPPED,
        None,
    )
    assert (after.task_state, after.exit_code) == (TaskState.COMPLETED, "0")


def test_except_false_runs_the_task(walk: Walk) -> None:
    walk.upload(EXCEPT_JOB)
    done = walk.wait(walk.submit("except-job", {"skip": "false"}))
    assert done.job_state == JobState.COMPLETED, done
    assert [(t.task_type, t.exit_code) for t in walk.tasks(done.request_id)] == [
        ("maybe", "0"),
        ("after", "0"),
    ]
    assert "maybe ran" in walk.log(done.request_id, "maybe")


FOUR_TASKS = """
job_type: four
tasks:
- task_type: a
  method: SHELL
  script: ["echo a"]
  on_completed: b
- task_type: b
  method: SHELL
  script: ["echo b"]
  on_completed: c
- task_type: c
  method: SHELL
  script:
    - test -f {{ .marker }} || { touch {{ .marker }}; exit 1; }
  on_completed: d
- task_type: d
  method: SHELL
  script: ["echo d"]
"""


def failed_at_c(walk: Walk, marker: Path) -> str:
    walk.upload(FOUR_TASKS)
    request_id = walk.submit("four", {"marker": str(marker)})
    first = walk.wait(request_id)
    assert first.job_state == JobState.FAILED, first
    assert [(t.task_type, t.task_state) for t in walk.tasks(request_id)] == [
        ("a", TaskState.COMPLETED),
        ("b", TaskState.COMPLETED),
        ("c", TaskState.FAILED),
    ]
    return request_id


def second_run(walk: Walk, request_id: str) -> list[tuple[str, TaskState]]:
    done = walk.wait_for(
        request_id,
        lambda r: r.job_state == JobState.COMPLETED and len(walk.tasks(request_id)) == 7,
        timeout=30,
    )
    walk.wait(done.request_id)
    return [(t.task_type, t.task_state) for t in walk.tasks(request_id)[3:]]


def test_a_restart_reruns_from_the_failed_task(walk: Walk, tmp_path: Path) -> None:
    request_id = failed_at_c(walk, tmp_path / "soft")
    restart_request(ORG, request_id, get_runtime())
    assert second_run(walk, request_id) == [
        ("a", TaskState.SKIPPED),
        ("b", TaskState.SKIPPED),
        ("c", TaskState.COMPLETED),
        ("d", TaskState.COMPLETED),
    ]


def test_a_hard_restart_reruns_every_task(walk: Walk, tmp_path: Path) -> None:
    request_id = failed_at_c(walk, tmp_path / "hard")
    restart_request(ORG, request_id, get_runtime(), hard=True)
    assert second_run(walk, request_id) == [
        ("a", TaskState.COMPLETED),
        ("b", TaskState.COMPLETED),
        ("c", TaskState.COMPLETED),
        ("d", TaskState.COMPLETED),
    ]
