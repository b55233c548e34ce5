"""max_concurrency, priorities and scheduled requests through the real walk (the ASL under moto)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from formica.engine.walk import JobState
from formica.local.moto_locks import serialize_dynamodb
from formica.runtime import get_runtime, start_request
from formica.runtime.scheduling import sweep, trigger_now
from formica.store.definitions import DefinitionRepository
from formica.store.requests import JobRequestItem, RequestFinishedError, now_iso
from formica.store.schema import requests_gsi1pk
from formica.store.slots import SlotRepository

from tests.workflow.conftest import ORG, TABLE, Walk

RUNNING = {str(JobState.STARTED), str(JobState.EXECUTING)}


@pytest.fixture
def serial_walk(walk: Walk) -> Iterator[Walk]:
    # moto's DynamoDB needs serializing under concurrent walks (formica.local.moto_locks).
    with serialize_dynamodb():
        yield walk


def _submit(walk: Walk, lock: threading.Lock, job_type: str, **fields: Any) -> str:
    """Create a request (as the API does) and offer it a start; thread-safe."""
    head = DefinitionRepository(TABLE, client=walk.ddb).get_head(ORG, job_type)
    assert head is not None, f"job type {job_type} not uploaded"
    request_id = str(uuid.uuid4())
    now = now_iso()
    get_runtime().requests.create(
        JobRequestItem(
            request_id=request_id,
            org=ORG,
            job_type=job_type,
            job_version=head.latest_version,
            created_at=now,
            updated_at=now,
            **fields,
        )
    )
    with lock:
        walk.submitted.append(request_id)
    # Another submit's wake-up may admit it first (as the API tolerates): it is running.
    with contextlib.suppress(RequestFinishedError):
        start_request(request_id, get_runtime())
    return request_id


def _running_now(walk: Walk, job_type: str) -> int:
    """How many requests of the job type are running, from one Query (one consistent read)."""
    response = walk.ddb.query(
        TableName=TABLE,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :pk",
        ExpressionAttributeValues={":pk": {"S": requests_gsi1pk(ORG)}},
    )
    return sum(
        1
        for item in response["Items"]
        if item["job_type"]["S"] == job_type and item["job_state"]["S"] in RUNNING
    )


def _wait_all(walk: Walk, ids: list[str], timeout: float) -> list[JobRequestItem]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        requests = [walk.request(request_id) for request_id in ids]
        if all(request.is_final for request in requests):
            return requests
        time.sleep(0.1)
    states = {request_id: str(walk.request(request_id).job_state) for request_id in ids}
    raise AssertionError(f"not all finished: {states}")


@pytest.mark.slow
def test_a_burst_of_50_runs_at_most_3_at_a_time_each_exactly_once(serial_walk: Walk, tmp_path: Path) -> None:
    walk = serial_walk
    runs = tmp_path / "runs.txt"
    walk.upload(
        f"""
job_type: burst
max_concurrency: 3
tasks:
- task_type: work
  method: SHELL
  script:
    - echo "{{{{.N}}}}" >> {runs}
    - sleep 0.2
"""
    )
    slots = SlotRepository(TABLE, client=walk.ddb)
    samples: list[tuple[int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((_running_now(walk, "burst"), slots.running(ORG, "burst")))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lock = threading.Lock()
    ids: list[str] = []

    def submit_many(first: int) -> None:
        for n in range(first, first + 10):
            request_id = _submit(walk, lock, "burst", params={"N": str(n)})
            with lock:
                ids.append(request_id)

    submitters = [threading.Thread(target=submit_many, args=(first,)) for first in range(0, 50, 10)]
    for thread in submitters:
        thread.start()
    for thread in submitters:
        thread.join()
    try:
        finished = _wait_all(walk, ids, timeout=180)
    finally:
        stop.set()
        sampler.join()

    assert len(ids) == 50
    assert [request.job_state for request in finished] == [JobState.COMPLETED] * 50
    # At no instant more than 3 ran, and the limit was used (the burst queued).
    assert max(running for running, _ in samples) == 3
    assert max(count for _, count in samples) <= 3
    assert len(samples) > 20
    # None lost, none twice: every N ran exactly once, in one execution, one attempt.
    assert sorted(int(line) for line in runs.read_text().split()) == list(range(50))
    assert {request.execution_count for request in finished} == {1}
    for request in finished:
        (task,) = walk.tasks(request.request_id)
        assert (task.task_state, task.attempts) == ("COMPLETED", 1)
    assert slots.running(ORG, "burst") == 0
    assert slots.holders(ORG, "burst") == []


def test_waiting_requests_start_in_priority_then_age_order(serial_walk: Walk) -> None:
    walk = serial_walk
    walk.upload(
        """
job_type: serial
max_concurrency: 1
tasks:
- task_type: work
  method: SHELL
  script:
    - sleep {{.Pause}}
"""
    )
    lock = threading.Lock()
    blocker = _submit(walk, lock, "serial", params={"Pause": "1"})
    walk.wait_for(blocker, lambda r: r.job_state in (JobState.STARTED, JobState.EXECUTING))
    low = _submit(walk, lock, "serial", params={"Pause": "0"}, job_priority=1)
    high = _submit(walk, lock, "serial", params={"Pause": "0"}, job_priority=9)
    mid = _submit(walk, lock, "serial", params={"Pause": "0"}, job_priority=5)
    assert {walk.request(i).job_state for i in (low, high, mid)} == {JobState.PENDING}

    finished = {request.request_id: request for request in _wait_all(walk, [blocker, low, high, mid], 60)}
    assert all(request.job_state == JobState.COMPLETED for request in finished.values())
    order = sorted((low, high, mid), key=lambda i: finished[i].started_at or "")
    assert order == [high, mid, low]
    assert (finished[blocker].ended_at or "") <= (finished[high].started_at or "")


def test_a_scheduled_request_waits_then_runs_and_trigger_runs_one_now(serial_walk: Walk) -> None:
    walk = serial_walk
    walk.upload(
        """
job_type: timed
tasks:
- task_type: work
  method: SHELL
  script:
    - echo on time
"""
    )
    lock = threading.Lock()
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    waiting = _submit(walk, lock, "timed", scheduled_at=soon.isoformat(timespec="microseconds"))
    triggered = _submit(walk, lock, "timed", scheduled_at=tomorrow.isoformat(timespec="microseconds"))
    assert walk.request(waiting).job_state == JobState.PENDING
    assert sweep(get_runtime()).started == []  # not due yet

    trigger_now(ORG, triggered, get_runtime())
    assert walk.wait(triggered).job_state == JobState.COMPLETED
    assert walk.request(waiting).job_state == JobState.PENDING

    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    assert sweep(get_runtime()).started == [waiting]
    done = walk.wait(waiting)
    assert done.job_state == JobState.COMPLETED
    assert (done.started_at or "") >= soon.isoformat(timespec="microseconds")
