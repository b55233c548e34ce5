"""Cancelling a job whose container task runs on ECS: the task is stopped, its run settled, and the
waiting Launch is answered once, by the cancel's own Formica.Cancelled (never by a result).

The stop reports the run like any completion; that report must not answer the token of a request
already CANCELLED (``complete_container_attempt`` checks), else a success could race the cancel."""

from __future__ import annotations

import boto3
import pytest
from formica.engine import walk as walk_engine
from formica.engine.routing import TaskState
from formica.engine.walk import JobState
from formica.runtime import cancel_request, default_container_service, get_runtime
from formica.runtime.walker import CANCELLED_ERROR
from formica.store.logs import TaskLogs, live_prefix

from tests.workflow.conftest import ORG, REGION, Walk, launched_run

LONG = """
job_type: long-box
tasks:
- task_type: boxed
  method: DOCKER
  container:
    image: alpine
  script:
    - sleep 3600
"""


def test_cancel_stops_the_ecs_task_and_answers_the_token_with_cancelled(ecs_walk: Walk) -> None:
    ecs_walk.upload(LONG)
    request_id = ecs_walk.submit("long-box")
    run = launched_run(request_id)

    cancelled = cancel_request(ORG, request_id, get_runtime())
    done = ecs_walk.wait(request_id)

    assert cancelled.job_state == JobState.CANCELLED
    assert (done.job_state, done.error_code) == (JobState.CANCELLED, "ERR_JOB_CANCELLED")
    [boxed] = ecs_walk.tasks(request_id)
    assert boxed.task_state == TaskState.CANCELLED
    # the ECS task was stopped and the run settled once
    [settled] = default_container_service().runs.list_for_request(request_id)
    assert settled.is_finished and settled.error_code == "ERR_TASK_CANCELLED"
    ecs = boto3.client("ecs", region_name=REGION)
    [task] = ecs.describe_tasks(cluster="formica", tasks=[str(run.ecs_task_arn)])["tasks"]
    assert task["lastStatus"] == "STOPPED"
    # Launch's token was answered by the cancel only: a failure naming Formica.Cancelled, no success
    history = ecs_walk.history(str(done.execution_name))
    callbacks = [
        e
        for e in history
        if "waitForTaskToken" in str(e.get(f"{e['type'][0].lower()}{e['type'][1:]}EventDetails"))
    ]
    answers = [(e["type"], e.get("taskFailedEventDetails", {}).get("error")) for e in callbacks]
    assert ("TaskFailed", CANCELLED_ERROR) in answers
    assert not any(kind == "TaskSucceeded" for kind, _ in answers)


def test_a_cancelled_container_keeps_the_lines_it_streamed_as_its_log(ecs_walk: Walk) -> None:
    # Given a container task on ECS whose logs helper has streamed two chunks (masked, as it sends them)
    ecs_walk.upload(LONG)
    request_id = ecs_walk.submit("long-box")
    launched_run(request_id)
    runtime = get_runtime()
    chunks = live_prefix(ORG, request_id, "boxed", 1)
    TaskLogs(runtime.blobs).write_chunk(chunks, 0, b"compiling\n")
    TaskLogs(runtime.blobs).write_chunk(chunks, 10, b"linking\n")

    # When the job is cancelled
    cancel_request(ORG, request_id, runtime)
    ecs_walk.wait(request_id)

    # Then the attempt's stored log is what it streamed, and its chunks are gone
    [boxed] = ecs_walk.tasks(request_id)
    assert boxed.task_state == TaskState.CANCELLED and boxed.log_key
    assert runtime.blobs.get_bytes(boxed.log_key) == b"compiling\nlinking\n"
    assert runtime.blobs.list_blobs(chunks) == []


def test_a_launch_timeout_stops_the_ecs_task_at_once(ecs_walk: Walk, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a container task on ECS with a 2 s timeout whose Launch state waits no grace period
    # (60 s in production), and no reconciler running
    monkeypatch.setattr(walk_engine, "CALLBACK_GRACE_SECONDS", 0)
    ecs_walk.upload(LONG.replace("    - sleep 3600", "    - sleep 3600\n  timeout: 2s"))
    request_id = ecs_walk.submit("long-box")
    run = launched_run(request_id)

    # When the Launch state times out (States.Timeout, caught into Advance)
    done = ecs_walk.wait(request_id, timeout=20)

    # Then the attempt timed out, and the task was stopped without waiting for the reconciler
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_TASK_TIMED_OUT")
    [settled] = default_container_service().runs.list_for_request(request_id)
    assert settled.is_finished and settled.error_code == "ERR_TASK_TIMED_OUT"
    ecs = boto3.client("ecs", region_name=REGION)
    [task] = ecs.describe_tasks(cluster="formica", tasks=[str(run.ecs_task_arn)])["tasks"]
    assert task["lastStatus"] == "STOPPED"
