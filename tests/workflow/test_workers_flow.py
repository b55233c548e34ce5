"""WEBSOCKET tasks run by workers of the organisation's own, through the real walk: Launch queues the
attempt on the organisation's pool queue (moto's SQS), a worker leases it (poll), heartbeats and
reports; a worker that stops heartbeating loses it to the next; another organisation never sees it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from formica.engine.walk import JobState
from formica.runtime import get_runtime, reset_runtime, workers
from formica.settings import reset_settings

from tests.workflow.conftest import ORG, Walk

WEB_JOB = """
job_type: web-job
tasks:
- task_type: init
  method: WEBSOCKET
  timeout: 30s
  tags: [web]
  on_completed: record
- task_type: record
  method: WEBSOCKET
  timeout: 30s
  tags: [web, js]
  script:
    - echo monday
"""


@pytest.fixture(autouse=True)
def api_url(monkeypatch: pytest.MonkeyPatch, walk: Walk) -> Iterator[None]:
    # The attempt a worker gets carries the grants route's URL: the API's (not called here).
    monkeypatch.setenv("FORMICA_API_URL", "http://127.0.0.1:9")
    reset_settings()
    reset_runtime()
    workers.reset_worker_ports()
    yield
    workers.reset_worker_ports()


def lease_one(org: str, tags: list[str], timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leased = workers.poll(get_runtime(), org, tags)
        if leased is not None:
            return leased
        time.sleep(0.1)
    raise AssertionError(f"no attempt for {org} {tags}")


def report(leased: dict[str, Any], exit_code: str = "0", log: str = "") -> None:
    workers.complete(get_runtime(), ORG, leased["lease"], {"exit_code": exit_code, "log": log})


def test_tagged_tasks_are_run_by_a_worker_whose_tags_cover_them(walk: Walk) -> None:
    # Given a job of two worker tasks, tagged web and web+js
    walk.upload(WEB_JOB)
    request_id = walk.submit("web-job")

    # When a worker tagged web,js leases each attempt and reports it
    first = lease_one(ORG, ["web", "js"])
    assert first["attempt"]["context"]["task_type"] == "init"
    assert first["attempt"]["capability"].startswith("fgc_")
    report(first, log="init ran\n")
    second = lease_one(ORG, ["js", "web"])
    assert second["attempt"]["context"]["task_type"] == "record"
    assert second["attempt"]["task"]["script"] == ["echo monday"]
    report(second, log="monday\n")

    # Then the job completed with the workers' logs
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done
    assert "monday" in walk.log(request_id, "record")
    # And the tasks waited in the AwaitWorker state
    entered = [
        event["stateEnteredEventDetails"]["name"]
        for event in walk.history(done.execution_name or "")
        if event["type"] == "TaskStateEntered"
    ]
    assert entered.count("AwaitWorker") == 2


def test_a_worker_with_too_few_tags_never_gets_the_task(walk: Walk) -> None:
    # Given a task tagged web and js waiting
    walk.upload(WEB_JOB)
    request_id = walk.submit("web-job")
    report(lease_one(ORG, ["web"]))  # init: tagged web only
    walk.wait_for(request_id, lambda r: r.walk.current is not None and r.walk.current.task_type == "record")

    # When a worker tagged only web polls, it gets nothing; one tagged web and js gets it
    time.sleep(0.5)
    assert workers.poll(get_runtime(), ORG, ["web"]) is None
    report(lease_one(ORG, ["web", "js"]))
    assert walk.wait(request_id).job_state == JobState.COMPLETED


def test_a_worker_that_stops_heartbeating_loses_the_task_to_another(
    walk: Walk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given leases of one second, and worker A holding the first attempt
    monkeypatch.setattr(workers, "LEASE_SECONDS", 1)
    walk.upload(WEB_JOB)
    request_id = walk.submit("web-job")
    held_by_a = lease_one(ORG, ["web"])
    assert workers.heartbeat(get_runtime(), ORG, held_by_a["lease"])["lease_seconds"] == 1

    # When A goes quiet past its lease, worker B polls and gets the same attempt
    time.sleep(1.5)
    held_by_b = lease_one(ORG, ["web", "js"])
    assert held_by_b["attempt"]["context"]["task_type"] == "init"

    # Then A's heartbeat and report are refused, and B's report completes the task
    with pytest.raises(workers.LeaseLostError):
        workers.heartbeat(get_runtime(), ORG, held_by_a["lease"])
    with pytest.raises(workers.LeaseLostError):
        report(held_by_a, exit_code="1")
    report(held_by_b, log="b ran\n")
    report(lease_one(ORG, ["web", "js"]))
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED
    assert "b ran" in walk.log(request_id, "init")
    # And the attempt was reported once
    with pytest.raises(workers.LeaseLostError):
        report(held_by_b)


def test_a_worker_of_another_organisation_never_sees_the_task(walk: Walk) -> None:
    # Given the organisation's task waiting in its pool
    walk.upload(WEB_JOB)
    request_id = walk.submit("web-job")
    walk.wait_for(request_id, lambda r: r.walk.current is not None and r.job_state == JobState.EXECUTING)
    time.sleep(0.5)

    # When a worker of another organisation with the same tags polls, it gets nothing
    for _ in range(5):
        assert workers.poll(get_runtime(), "other-org", ["web", "js"]) is None

    # And it cannot heartbeat or report the organisation's lease either
    leased = lease_one(ORG, ["web"])
    with pytest.raises(workers.LeaseNotFoundError):
        workers.heartbeat(get_runtime(), "other-org", leased["lease"])
    with pytest.raises(workers.LeaseNotFoundError):
        workers.complete(get_runtime(), "other-org", leased["lease"], {"exit_code": "0"})
    report(leased)
    report(lease_one(ORG, ["web", "js"]))
    assert walk.wait(request_id).job_state == JobState.COMPLETED


def test_a_worker_task_nobody_takes_times_out(walk: Walk) -> None:
    # Given a worker task of 1 s that no worker polls for
    walk.upload(WEB_JOB.replace("timeout: 30s", "timeout: 1s", 1))

    # When its time passes
    done = walk.wait(walk.submit("web-job"), timeout=30)

    # Then it failed with the task's timeout, and a late poll finds nothing to do
    assert done.job_state == JobState.FAILED
    assert done.error_code == "ERR_TASK_TIMED_OUT"
    assert workers.poll(get_runtime(), ORG, ["web"]) is None


@pytest.mark.parametrize("tags", [[], ["a", "b", "c", "d", "e"], ["no spaces"]])
def test_a_poll_with_bad_tags_is_refused(walk: Walk, tags: list[str]) -> None:
    with pytest.raises(workers.WorkerRequestError, match="tags"):
        workers.poll(get_runtime(), ORG, tags)


def test_a_retried_worker_attempt_waits_its_delay_between_retries_first(walk: Walk) -> None:
    # Given a worker task retried once, 2 s apart
    walk.upload(
        """
job_type: flaky-web
tasks:
- task_type: init
  method: WEBSOCKET
  timeout: 30s
  tags: [web]
  retry: 1
  delay_between_retries: 2s
"""
    )
    request_id = walk.submit("flaky-web")

    # When the worker's first attempt fails and its second succeeds
    report(lease_one(ORG, ["web"]), exit_code="1")
    report(lease_one(ORG, ["web"]))

    # Then the job completed after the execution waited 2 s in a Wait state before the retry
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done
    entered = [
        (event["type"], event["stateEnteredEventDetails"]["name"])
        for event in walk.history(done.execution_name or "")
        if event["type"] in ("WaitStateEntered", "TaskStateEntered")
    ]
    assert entered == [
        ("TaskStateEntered", "AwaitWorker"),
        ("WaitStateEntered", "WaitThenAwaitWorker"),
        ("TaskStateEntered", "AwaitWorker"),
    ]
    waits = [
        json.loads(event["stateEnteredEventDetails"]["input"])["wait_seconds"]
        for event in walk.history(done.execution_name or "")
        if event["type"] == "WaitStateEntered"
    ]
    assert waits == [2]


POOLED_JOB = """
job_type: pooled-build
worker_pools: [builder]
tasks:
- task_type: compile
  method: SHELL
  timeout: 30s
  tags: [builder]
  script:
    - echo compiled
  on_completed: publish
- task_type: publish
  method: SHELL
  tags: [pulsar]
  script:
    - echo published
"""


def test_a_shell_task_tagged_with_a_declared_pool_waits_for_that_pools_worker(walk: Walk) -> None:
    # Given a job declaring the pool builder: compile is tagged builder, publish only pulsar
    walk.upload(POOLED_JOB)
    request_id = walk.submit("pooled-build")

    # When a worker of the builder pool leases the first attempt
    leased = lease_one(ORG, ["builder"])

    # Then it is the SHELL task compile, as the sandbox would get it
    assert leased["attempt"]["context"]["task_type"] == "compile"
    assert leased["attempt"]["task"]["script"] == ["echo compiled"]
    report(leased, log="compiled\n")

    # And publish (its tag is no declared pool) ran on Formica's own shell runner, not a worker
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done
    assert "compiled" in walk.log(request_id, "compile")
    assert "published" in walk.log(request_id, "publish")
    entered = [
        event["stateEnteredEventDetails"]["name"]
        for event in walk.history(done.execution_name or "")
        if event["type"] == "TaskStateEntered"
    ]
    assert entered == ["AwaitWorker", "RunShell"]
    assert workers.poll(get_runtime(), ORG, ["pulsar"]) is None
