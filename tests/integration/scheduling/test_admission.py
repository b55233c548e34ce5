"""Admission under moto: priorities, scheduled_at, trigger now, skip_if, restart, cancel, the sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from formica.engine.walk import JobState
from formica.runtime import cancel_request, restart_request, start_request
from formica.runtime.executions import ExecutionError
from formica.runtime.scheduling import (
    ERR_FILTERED_JOB,
    STALE_START_SECONDS,
    Admission,
    admit_request,
    start_waiting,
    sweep,
    trigger_now,
)
from formica.store.requests import RequestFinishedError, RequestNotFinishedError, RequestNotFoundError
from formica.store.slots import AdmitOutcome

from tests.integration.scheduling.conftest import ORG, TABLE, World


def test_without_a_limit_every_request_starts_at_once(world: World) -> None:
    world.define("free")
    ids = [world.create("free") for _ in range(5)]
    for request_id in ids:
        assert start_request(request_id, world.runtime) == f"{request_id}-1"
    assert all(world.state(request_id) == JobState.STARTED for request_id in ids)
    assert world.started_ids() == ids


def test_pending_requests_start_by_priority_then_age_as_slots_free(world: World) -> None:
    world.define("one-at-a-time", max_concurrency=1)
    running = world.create("one-at-a-time")
    assert admit_request(running, world.runtime).admission == Admission.STARTED
    low = world.create("one-at-a-time", priority=1)
    high = world.create("one-at-a-time", priority=9)
    mid_old = world.create("one-at-a-time", priority=5)
    mid_new = world.create("one-at-a-time", priority=5)
    for request_id in (low, high, mid_old, mid_new):
        assert admit_request(request_id, world.runtime).admission == Admission.WAITING_FOR_SLOT
        assert world.state(request_id) == JobState.PENDING

    order = [running]
    for _ in range(4):
        world.finish(order[-1])  # the walk's final commit releases the slot and wakes the next
        (now_running,) = [i for i in (low, high, mid_old, mid_new) if world.state(i) == JobState.STARTED]
        order.append(now_running)
    assert order[1:] == [high, mid_old, mid_new, low]
    world.finish(low)
    assert world.started_ids() == order
    assert world.slots.running(ORG, "one-at-a-time") == 0


def test_a_new_request_does_not_jump_the_queue(world: World) -> None:
    world.define("queued", max_concurrency=1)
    first = world.create("queued")
    admit_request(first, world.runtime)
    waiting = world.create("queued", priority=9)
    admit_request(waiting, world.runtime)
    world.slots.release(ORG, "queued", first)  # a slot freed whose wake-up was missed
    late = world.create("queued", priority=1)
    # The late one's admission first serves the queue: the waiting request takes the free slot.
    assert admit_request(late, world.runtime).admission == Admission.WAITING_FOR_SLOT
    assert world.state(waiting) == JobState.STARTED


def test_a_future_request_stays_pending_until_the_sweep_finds_it_due(world: World) -> None:
    world.define("later")
    request_id = world.create("later", scheduled_at=world.clock() + timedelta(minutes=5))
    assert admit_request(request_id, world.runtime).admission == Admission.NOT_DUE
    assert world.state(request_id) == JobState.PENDING

    world.clock.advance(minutes=4)
    assert sweep(world.runtime).started == []
    assert world.state(request_id) == JobState.PENDING

    world.clock.advance(minutes=1)
    assert sweep(world.runtime).started == [request_id]
    assert world.state(request_id) == JobState.STARTED


def test_trigger_runs_a_scheduled_request_now(world: World) -> None:
    world.define("later")
    request_id = world.create("later", scheduled_at=world.clock() + timedelta(days=1))
    admit_request(request_id, world.runtime)
    triggered = trigger_now(ORG, request_id, world.runtime)
    assert triggered.job_state == JobState.STARTED
    assert world.started_ids() == [request_id]
    with pytest.raises(RequestFinishedError):
        trigger_now(ORG, request_id, world.runtime)
    with pytest.raises(RequestNotFoundError):
        trigger_now("another-org", request_id, world.runtime)


def test_trigger_still_respects_max_concurrency(world: World) -> None:
    world.define("capped", max_concurrency=1)
    busy = world.create("capped")
    admit_request(busy, world.runtime)
    later = world.create("capped", scheduled_at=world.clock() + timedelta(days=1))
    assert trigger_now(ORG, later, world.runtime).job_state == JobState.PENDING  # due now, no slot
    world.finish(busy)
    assert world.state(later) == JobState.STARTED


# As in formicary's hello_world_scheduled.yaml: the template is rendered before the YAML is read.
SKIP_IF = 'skip_if: {{if eq .Target "charlie"}} true {{end}}\njob_variables:\n  Target: charlie\n'


def test_skip_if_true_ends_the_request_with_err_filtered_job(world: World) -> None:
    world.define("filtered", extra=SKIP_IF)
    skipped = world.create("filtered")
    assert admit_request(skipped, world.runtime).admission == Admission.FILTERED
    request = world.request(skipped)
    assert (request.job_state, request.error_code) == (JobState.FAILED, ERR_FILTERED_JOB)
    assert "skip_if" in (request.error_message or "")
    assert world.sfn.started == []  # never walked
    assert world.slots.running(ORG, "filtered") == 0


def test_skip_if_renders_with_the_request_params(world: World) -> None:
    world.define("filtered", extra=SKIP_IF)
    kept = world.create("filtered", params={"Target": "bob"})
    assert admit_request(kept, world.runtime).admission == Admission.STARTED


def test_a_refused_start_fails_the_request_and_frees_its_slot(world: World) -> None:
    world.define("broken", max_concurrency=1)
    request_id = world.create("broken")
    world.sfn.refuse = True
    with pytest.raises(ExecutionError):
        admit_request(request_id, world.runtime)
    request = world.request(request_id)
    assert (request.job_state, request.error_code) == (JobState.FAILED, "ERR_START_FAILED")
    assert world.slots.running(ORG, "broken") == 0


def test_cancelling_a_running_request_wakes_the_next(world: World) -> None:
    world.define("capped", max_concurrency=1)
    running, waiting = world.create("capped"), world.create("capped")
    admit_request(running, world.runtime)
    admit_request(waiting, world.runtime)
    cancel_request(ORG, running, world.runtime)
    assert world.state(running) == JobState.CANCELLED
    assert world.state(waiting) == JobState.STARTED
    # The cancelled walk's last commit arrives later (or is retried): nothing is released twice.
    world.finish(waiting)
    assert world.slots.running(ORG, "capped") == 0


def test_cancelling_a_pending_request_takes_it_out_of_the_queue(world: World) -> None:
    world.define("capped", max_concurrency=1)
    running, waiting = world.create("capped"), world.create("capped")
    admit_request(running, world.runtime)
    admit_request(waiting, world.runtime)
    cancel_request(ORG, waiting, world.runtime)
    world.finish(running)
    assert world.state(waiting) == JobState.CANCELLED
    assert world.slots.running(ORG, "capped") == 0


def test_restart_waits_for_a_slot_like_a_new_request(world: World) -> None:
    world.define("capped", max_concurrency=1)
    done = world.create("capped")
    admit_request(done, world.runtime)
    world.finish(done, JobState.FAILED)
    busy = world.create("capped")
    admit_request(busy, world.runtime)
    with pytest.raises(RequestNotFinishedError):
        restart_request(ORG, busy, world.runtime)

    restarted = restart_request(ORG, done, world.runtime)
    assert restarted.job_state == JobState.PENDING
    world.finish(busy)
    request = world.request(done)
    assert request.job_state == JobState.STARTED
    assert request.execution_name == f"{done}-2"


def test_the_sweep_releases_slots_that_finished_requests_kept(world: World) -> None:
    world.define("capped", max_concurrency=1)
    crashed, waiting = world.create("capped"), world.create("capped")
    admit_request(crashed, world.runtime)
    admit_request(waiting, world.runtime)
    # The final commit happened but the Lambda died before releasing (no hook ran).
    world.runtime.requests.mark_cancelled(crashed, error_code="ERR_JOB_CANCELLED", message="gone")
    assert world.state(waiting) == JobState.PENDING

    report = sweep(world.runtime)
    assert (report.released, report.started) == (1, [waiting])
    assert world.state(waiting) == JobState.STARTED
    assert world.slots.running(ORG, "capped") == 1


def test_the_sweep_restarts_a_start_that_was_lost(world: World) -> None:
    world.define("free")
    request_id = world.create("free")
    # Admitted (STARTED, slot taken) but StartExecution never happened: a crash in between.
    outcome = world.slots.admit(world.request(request_id), execution_name=f"{request_id}-1", limit=0)
    assert outcome == AdmitOutcome.STARTED
    assert sweep(world.runtime).restarted == 0  # too recent to call lost
    world.clock.advance(seconds=STALE_START_SECONDS + 120)
    assert sweep(world.runtime).restarted == 1
    assert world.sfn.started == [f"{request_id}-1"]
    assert sweep(world.runtime).restarted == 1  # starting again by name is harmless
    assert world.sfn.started == [f"{request_id}-1"]


def test_a_start_carries_the_first_decision_and_leaves_the_request_started(world: World) -> None:
    # D13: the starter takes the walk's first decision and passes it as the execution's input.
    world.define("free")
    request_id = world.create("free")
    name = start_request(request_id, world.runtime)
    assert name == f"{request_id}-1"
    decision = world.sfn.inputs[name]
    assert (decision["request_id"], decision["action"], decision["task_type"]) == (
        request_id,
        "RUN_SHELL",
        "only",
    )
    request = world.request(request_id)
    assert (request.job_state, request.step, decision["step"]) == (JobState.STARTED, 1, 1)
    assert request.walk.execution == name
    [task] = world.runtime.requests.list_tasks(request_id)
    assert (task.task_type, task.task_state) == ("only", "READY")
    # Claiming the first attempt makes it EXECUTING.
    claimed = world.runtime.requests.claim_attempt(request_id, 1)
    assert claimed is not None and claimed.job_state == JobState.EXECUTING


def test_the_sweep_restarts_a_decided_start_that_was_lost(world: World) -> None:
    from formica.runtime.walker import Walker

    world.define("free")
    request_id = world.create("free")
    name = f"{request_id}-1"
    # Admitted and its first decision committed, but StartExecution never happened.
    assert world.slots.admit(world.request(request_id), execution_name=name, limit=0) == AdmitOutcome.STARTED
    decision = Walker(world.runtime).first_decision(world.request(request_id), name)
    assert decision is not None and decision["action"] == "RUN_SHELL"
    assert sweep(world.runtime).restarted == 0  # too recent to call lost
    world.clock.advance(seconds=STALE_START_SECONDS + 120)
    assert sweep(world.runtime).restarted == 1
    assert world.sfn.started == [name]
    assert world.sfn.inputs[name] == decision  # the same decision, not a second one
    assert world.request(request_id).step == 1
    # Once a task claimed the attempt, the execution evidently runs: the sweep leaves it alone.
    assert world.runtime.requests.claim_attempt(request_id, 1) is not None
    assert sweep(world.runtime).restarted == 0


def test_raising_the_limit_starts_waiting_requests_at_once_in_priority_order(world: World) -> None:
    # Given one running request and three waiting at max_concurrency 1
    world.define("raised", max_concurrency=1)
    running = world.create("raised")
    assert admit_request(running, world.runtime).admission == Admission.STARTED
    low, high, mid = (world.create("raised", priority=priority) for priority in (1, 9, 5))
    for request_id in (low, high, mid):
        assert admit_request(request_id, world.runtime).admission == Admission.WAITING_FOR_SLOT
    # When the limit goes to 3 (PUT .../concurrency)
    world.definitions.set_max_concurrency(ORG, "raised", 3)
    started = start_waiting(ORG, "raised", world.runtime)
    # Then two more start now, highest priority first, and the third still waits
    assert started == [high, mid]
    assert world.state(low) == JobState.PENDING
    assert world.slots.running(ORG, "raised") == 3
    # And removing the limit (0: unlimited) starts the rest
    world.definitions.set_max_concurrency(ORG, "raised", 0)
    assert start_waiting(ORG, "raised", world.runtime) == [low]
    assert world.started_ids() == [running, high, mid, low]


def test_a_wake_up_that_fails_is_left_to_the_sweep(world: World) -> None:
    world.define("unlucky", max_concurrency=1)
    running = world.create("unlucky")
    admit_request(running, world.runtime)
    waiting = world.create("unlucky")
    admit_request(waiting, world.runtime)
    world.definitions.set_max_concurrency(ORG, "unlucky", 2)
    world.ddb.delete_table(TableName=TABLE)  # the store fails under the wake-up
    assert start_waiting(ORG, "unlucky", world.runtime) == []


def test_a_request_started_by_admission_has_the_runtimes_clock_as_its_started_at(world: World) -> None:
    # Given a runtime whose clock stands at a fixed moment in the past
    world.define("clocked")
    request_id = world.create("clocked")
    fixed = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    world.clock.now = fixed

    # When admission starts the request
    assert admit_request(request_id, world.runtime).admission == Admission.STARTED

    # Then its started_at is that moment, as the table stores timestamps, not the wall clock's
    assert world.request(request_id).started_at == "2026-01-02T03:04:05.678901+00:00"
