"""Cancellation, replays, injected faults: the walk ends cleanly and never runs a task twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from formica.api.errors import ResourceNotFoundError
from formica.api.logs import follow_task_log
from formica.api.services import get_services, reset_services
from formica.engine.routing import TaskState
from formica.engine.walk import JobState
from formica.local.lambda_dispatch import invoke_handler
from formica.runtime import cancel_request, get_runtime, restart_request
from formica.store.requests import RequestFinishedError
from formica.store.schema import log_key

from tests.workflow.conftest import ORG, Walk


def call(folder: str, event: dict[str, Any]) -> dict[str, Any]:
    """Invoke a Lambda handler as Step Functions would (a retry is the same call again)."""
    payload, failed = invoke_handler(folder, json.dumps(event).encode())
    assert not failed, payload
    result: dict[str, Any] = json.loads(payload)
    return result


def test_cancelling_a_running_shell_job_kills_it_and_ends_the_walk(walk: Walk) -> None:
    walk.upload(
        """
job_type: long-shell
tasks:
- task_type: sleepy
  method: SHELL
  script:
    - sleep 60
  on_completed: after
- task_type: after
  method: SHELL
  always_run: true
  script:
    - echo after
"""
    )
    request_id = walk.submit("long-shell")
    walk.wait_for(request_id, lambda r: r.claimed_step >= 1 and r.current_task == "sleepy")
    time.sleep(0.3)
    started = time.monotonic()
    cancelled = cancel_request(ORG, request_id, get_runtime())
    assert cancelled.job_state == JobState.CANCELLED
    done = walk.wait(request_id, timeout=15)
    # The sleep was killed within seconds; nothing ran after it; a late result changed nothing
    assert time.monotonic() - started < 8
    assert (done.job_state, done.error_code) == (JobState.CANCELLED, "ERR_JOB_CANCELLED")
    assert [(t.task_type, t.task_state) for t in walk.tasks(request_id)] == [("sleepy", TaskState.CANCELLED)]
    assert walk.execution_status(done) in ("FAILED", "ABORTED")
    with pytest.raises(RequestFinishedError):
        cancel_request(ORG, request_id, get_runtime())


def _task_log(request_id: str, task_type: str, attempt: int | None = None) -> str:
    """The task's log as the API answers it ("" while the attempt has none)."""
    try:
        return follow_task_log(get_services(), ORG, request_id, task_type, attempt=attempt).text
    except ResourceNotFoundError:
        return ""


def test_a_cancelled_attempts_log_is_named_by_its_record_and_read_through_the_api(walk: Walk) -> None:
    # Given a SHELL task whose first attempt failed and whose second wrote a line and sleeps
    walk.upload(
        """
job_type: cancelled-talker
tasks:
- task_type: talk
  method: SHELL
  retry: 1
  script:
    - echo "try {{.TaskRetry}} says hello"
    - if [ "{{.TaskRetry}}" = "0" ]; then exit 3; fi
    - sleep 60
"""
    )
    reset_services()
    request_id = walk.submit("cancelled-talker")
    walk.wait_for(request_id, lambda r: "try 1 says hello" in _task_log(request_id, "talk", attempt=2))
    # When the job is cancelled while attempt 2 runs
    cancel_request(ORG, request_id, get_runtime())
    walk.wait(request_id, timeout=15)
    # Then its record counts it and names its log, as a committed attempt's record does
    [talk] = walk.tasks(request_id)
    assert (talk.task_state, talk.attempts) == (TaskState.CANCELLED, 2)
    assert talk.log_key == log_key(ORG, request_id, "talk", 2)
    # and the API answers it as attempt 2's section, after attempt 1's, with what it wrote kept
    text = _task_log(request_id, "talk")
    assert text.startswith("--- attempt 1 ---\n")
    first, second = text.removeprefix("--- attempt 1 ---\n").split("--- attempt 2 ---\n")
    assert "try 0 says hello\n" in first and "try 1" not in first
    assert "try 1 says hello\n" in second and "try 0" not in second
    assert "try 1 says hello\n" in _task_log(request_id, "talk", attempt=2)
    answer = follow_task_log(get_services(), ORG, request_id, "talk")
    assert answer.finished


def test_cancelling_a_waiting_container_task_completes_its_token(walk: Walk) -> None:
    walk.upload(
        """
job_type: long-container
tasks:
- task_type: boxed
  container:
    image: alpine
  script:
    - sleep 60
"""
    )
    request_id = walk.submit("long-container")
    # Generous bounds: these are waits, not timings (a loaded CI machine is slow, never wrong).
    walk.wait_for(request_id, lambda r: r.task_token is not None, timeout=60)
    cancel_request(ORG, request_id, get_runtime())
    done = walk.wait(request_id, timeout=60)
    assert done.job_state == JobState.CANCELLED
    [boxed] = walk.tasks(request_id)
    assert boxed.task_state == TaskState.CANCELLED
    # The local runner saw the cancellation and killed the sleep; its late result changed nothing
    killed = walk.wait_for(request_id, lambda r: r.attempt is not None, timeout=60)
    assert killed.attempt is not None and killed.attempt.result.error_code == "ERR_TASK_CANCELLED"
    assert killed.job_state == JobState.CANCELLED


def test_a_pending_request_can_be_cancelled_and_a_finished_one_restarted(walk: Walk) -> None:
    walk.upload(
        """
job_type: quick
tasks:
- task_type: only
  method: SHELL
  script:
    - echo run {{.JobRetry}}
"""
    )
    request_id = walk.submit("quick", start=False)
    assert cancel_request(ORG, request_id, get_runtime()).job_state == JobState.CANCELLED
    restarted = restart_request(ORG, request_id, get_runtime())
    assert restarted.job_state == JobState.STARTED
    done = walk.wait(request_id)
    assert (done.job_state, done.execution_count) == (JobState.COMPLETED, 1)
    assert [t.task_state for t in walk.tasks(request_id)] == [TaskState.COMPLETED]


def test_a_restarted_request_keeps_its_earlier_run_and_numbers_the_new_one_after_it(walk: Walk) -> None:
    # Given a two-task job that ran to the end once
    walk.upload(
        """
job_type: twice
tasks:
- task_type: first
  method: SHELL
  script:
    - echo first
  on_completed: second
- task_type: second
  method: SHELL
  script:
    - echo second
"""
    )
    request_id = walk.submit("twice")
    assert walk.wait(request_id).job_state == JobState.COMPLETED
    first_run = [(t.seq, t.task_type) for t in walk.tasks(request_id)]
    assert first_run == [(1, "first"), (2, "second")]

    # When it is restarted and runs again
    restart_request(ORG, request_id, get_runtime())
    done = walk.wait_for(
        request_id,
        lambda r: r.job_state == JobState.COMPLETED and len(walk.tasks(request_id)) == 4,
        timeout=30,
    )

    # Then the first run's records are still there and the second run's follow them
    assert done.job_state == JobState.COMPLETED
    records = [(t.seq, t.task_type, t.task_state) for t in walk.tasks(request_id)]
    assert records == [
        (1, "first", TaskState.COMPLETED),
        (2, "second", TaskState.COMPLETED),
        (3, "first", TaskState.COMPLETED),
        (4, "second", TaskState.COMPLETED),
    ]


def test_replayed_calls_return_the_decision_taken_and_run_nothing_twice(walk: Walk, tmp_path: Path) -> None:
    # Given a job whose shell task appends a line to a file each time it runs
    marker = tmp_path / "ran.txt"
    walk.upload(
        """
job_type: once
tasks:
- task_type: append
  method: SHELL
  script:
    - echo ran >> {{.Marker}}
"""
    )
    request_id = walk.submit("once", {"Marker": str(marker)})
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED
    assert marker.read_text().splitlines() == ["ran"]
    assert done.decision is not None and done.decision_from_step is not None
    step = done.decision_from_step  # the step whose attempt ran the task and decided SUCCEED
    records = walk.tasks(request_id)

    # When Step Functions replays the task's invocation, and Advance, with that same step
    replay = call("shell_task", {"request_id": request_id, "step": step})
    advance = call("advance", {"request_id": request_id, "step": step, "action": "RUN_SHELL"})

    # Then both answer the decision already taken, and nothing ran or changed
    expected = {"request_id": request_id, **done.decision.model_dump(mode="json")}
    assert replay == advance == expected
    assert marker.read_text().splitlines() == ["ran"]
    after = walk.request(request_id)
    assert (after.step, after.job_state) == (done.step, JobState.COMPLETED)
    # (a replay writes the step's records again, unchanged but for updated_at)
    assert [t.model_copy(update={"updated_at": None}) for t in walk.tasks(request_id)] == [
        t.model_copy(update={"updated_at": None}) for t in records
    ]
    # An older step (superseded) runs nothing either
    older = call("shell_task", {"request_id": request_id, "step": step - 1})
    assert older["action"] == "SUCCEED"
    assert marker.read_text().splitlines() == ["ran"]


def test_a_second_claim_of_an_attempt_never_runs_it(walk: Walk, tmp_path: Path) -> None:
    # Given a request whose attempt at step 1 was claimed by a first invocation that died
    marker = tmp_path / "ran.txt"
    walk.upload(
        """
job_type: claimed
tasks:
- task_type: append
  method: SHELL
  script:
    - echo ran >> {{.Marker}}
"""
    )
    from formica.runtime import advance

    request_id = walk.submit("claimed", {"Marker": str(marker)}, start=False)
    runtime = get_runtime()
    runtime.requests.mark_started(request_id, execution_name=f"{request_id}-1")
    decision = advance({"request_id": request_id, "execution": f"{request_id}-1"}, runtime)
    assert runtime.requests.claim_attempt(request_id, decision["step"]) is not None

    # When the retried invocation arrives
    answer = call("shell_task", {"request_id": request_id, "step": decision["step"]})

    # Then the attempt is recorded as lost, not run again, and the job ends cleanly
    assert not marker.exists()
    assert answer["action"] == "FAIL"
    done = walk.request(request_id)
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_TASK_ATTEMPT_LOST")


def test_a_task_lambda_raising_fails_the_job_with_the_error_recorded(
    walk: Walk, web: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from formica.runtime import attempts

    def broken(*args: Any) -> Any:
        raise RuntimeError("injected fault in the HTTP runner")

    monkeypatch.setattr(attempts, "run_http_attempt", broken)
    walk.upload(
        f"""
job_type: faulty
tasks:
- task_type: fetch
  method: HTTP_GET
  script:
    - {web.base_url}/todos/1
"""
    )
    done = walk.wait(walk.submit("faulty"))
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_RUNNER_FAILED"), done
    assert done.error_message is not None and "injected fault in the HTTP runner" in done.error_message
    [fetch] = walk.tasks(done.request_id)
    assert fetch.task_state == TaskState.FAILED


def test_advance_raising_marks_the_request_failed(walk: Walk, monkeypatch: pytest.MonkeyPatch) -> None:
    from formica.runtime import walker

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected fault in Advance")

    monkeypatch.setattr(walker, "start_walk", broken)
    walk.upload(
        """
job_type: doomed
tasks:
- task_type: only
  method: SHELL
  script:
    - echo never
"""
    )
    done = walk.wait(walk.submit("doomed"))
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_INTERNAL"), done
    assert done.error_message is not None and "injected fault in Advance" in done.error_message
    assert walk.execution_status(done) == "FAILED"
