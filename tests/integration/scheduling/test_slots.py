"""The slot counter under moto: never above the limit, never below zero, one release per slot."""

from __future__ import annotations

import threading

from formica.engine.walk import JobState, WalkState
from formica.store.slots import AdmitOutcome, SlotRepository

from tests.integration.scheduling.conftest import ORG, World


def _admit(world: World, request_id: str, limit: int) -> AdmitOutcome:
    request = world.request(request_id)
    return world.slots.admit(request, execution_name=f"{request_id}-1", limit=limit)


def test_admission_starts_the_request_and_takes_a_slot_in_one_write(world: World) -> None:
    world.define("job")
    first, second, third = (world.create("job") for _ in range(3))

    assert _admit(world, first, 2) == AdmitOutcome.STARTED
    assert _admit(world, second, 2) == AdmitOutcome.STARTED
    assert _admit(world, third, 2) == AdmitOutcome.NO_SLOT

    assert world.state(first) == JobState.STARTED
    assert world.request(first).execution_name == f"{first}-1"
    assert world.state(third) == JobState.PENDING  # still in gsi2, waiting
    assert world.slots.running(ORG, "job") == 2
    assert sorted(world.slots.holders(ORG, "job")) == sorted([first, second])


def test_a_request_is_admitted_once(world: World) -> None:
    world.define("job")
    request_id = world.create("job")
    stale = world.request(request_id)
    assert _admit(world, request_id, 0) == AdmitOutcome.STARTED
    # A second admitter read the request while it was PENDING: its transaction changes nothing.
    assert world.slots.admit(stale, execution_name="other", limit=0) == AdmitOutcome.NOT_PENDING
    assert world.slots.running(ORG, "job") == 1
    assert world.request(request_id).execution_name == f"{request_id}-1"


def test_release_is_idempotent_and_never_goes_below_zero(world: World) -> None:
    world.define("job")
    request_id = world.create("job")
    _admit(world, request_id, 1)

    assert world.slots.release(ORG, "job", request_id) is True
    # A retried Lambda, or a cancel racing the walk's end, releases the same slot again: no-op.
    assert world.slots.release(ORG, "job", request_id) is False
    assert world.slots.release(ORG, "job", "never-admitted") is False
    assert world.slots.running(ORG, "job") == 0
    assert world.slots.holders(ORG, "job") == []


def test_unlimited_job_types_are_counted_too(world: World) -> None:
    world.define("job")
    ids = [world.create("job") for _ in range(4)]
    for request_id in ids:
        assert _admit(world, request_id, 0) == AdmitOutcome.STARTED
    assert world.slots.running(ORG, "job") == 4
    # Setting a limit later sees them: nothing more starts until the count is below it.
    late = world.create("job")
    assert _admit(world, late, 3) == AdmitOutcome.NO_SLOT


def test_racing_admissions_never_exceed_the_limit(world: World) -> None:
    world.define("job")
    ids = [world.create("job") for _ in range(20)]
    requests = {request_id: world.request(request_id) for request_id in ids}
    outcomes: dict[str, AdmitOutcome] = {}
    barrier = threading.Barrier(len(ids))
    slots = SlotRepository(world.slots._table, client=world.ddb)

    def admit(request_id: str) -> None:
        barrier.wait()
        outcomes[request_id] = slots.admit(requests[request_id], execution_name=f"{request_id}-1", limit=3)

    threads = [threading.Thread(target=admit, args=(request_id,)) for request_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    started = [request_id for request_id, outcome in outcomes.items() if outcome == AdmitOutcome.STARTED]
    assert len(started) == 3
    assert world.slots.running(ORG, "job") == 3
    assert sorted(world.slots.holders(ORG, "job")) == sorted(started)
    assert sorted(i for i in ids if world.state(i) == JobState.STARTED) == sorted(started)


def test_racing_releases_give_each_slot_back_once(world: World) -> None:
    world.define("job")
    ids = [world.create("job") for _ in range(3)]
    for request_id in ids:
        _admit(world, request_id, 3)
    barrier = threading.Barrier(9)
    results: list[bool] = []
    lock = threading.Lock()

    def release(request_id: str) -> None:
        barrier.wait()
        released = world.slots.release(ORG, "job", request_id)
        with lock:
            results.append(released)

    # Each slot released three times at once (the walk's end, a retry of it, a cancel).
    threads = [threading.Thread(target=release, args=(request_id,)) for request_id in ids * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 3
    assert world.slots.running(ORG, "job") == 0


def test_a_slot_left_by_an_earlier_run_is_reported(world: World) -> None:
    world.define("job")
    request_id = world.create("job")
    _admit(world, request_id, 0)
    world.finish(request_id)  # releases through the hook
    assert world.slots.holders(ORG, "job") == []
    # A crash before the release would leave the holder; a later admission of the same request sees it.
    world.slots.requeue(world.request(request_id), walk=WalkState())
    world.ddb.put_item(
        TableName=world.slots._table,
        Item={
            "pk": {"S": f"ORG#{ORG}#SLOTS#job"},
            "sk": {"S": f"REQ#{request_id}"},
            "request_id": {"S": request_id},
        },
    )
    assert _admit(world, request_id, 0) == AdmitOutcome.HELD


def test_registered_job_types_are_listed_for_the_sweep(world: World) -> None:
    world.slots.register(ORG, "a")
    world.slots.register(ORG, "a")
    world.slots.register("other", "b")
    counters = {(c.org, c.job_type): c.running for c in world.slots.counters()}
    assert counters == {(ORG, "a"): 0, ("other", "b"): 0}


def test_pending_requests_come_by_priority_then_age(world: World) -> None:
    world.define("job")
    low = world.create("job", priority=1)
    high = world.create("job", priority=9)
    mid_old = world.create("job", priority=5)
    mid_new = world.create("job", priority=5)
    assert [r.request_id for r in world.slots.pending(ORG, "job")] == [high, mid_old, mid_new, low]
    assert [r.request_id for r in world.slots.pending(ORG, "job", max_items=2)] == [high, mid_old]


def test_filtered_due_and_requeued_transitions_are_conditional(world: World) -> None:
    world.define("job")
    request_id = world.create("job")
    assert world.slots.make_due(request_id, scheduled_at="2026-01-01T00:00:00+00:00") is True
    assert world.slots.mark_filtered(request_id, error_code="ERR_FILTERED_JOB", message="skip") is True
    filtered = world.request(request_id)
    assert (filtered.job_state, filtered.error_code) == (JobState.FAILED, "ERR_FILTERED_JOB")
    assert list(world.slots.pending(ORG, "job")) == []
    assert world.slots.mark_filtered(request_id, error_code="ERR_FILTERED_JOB", message="again") is False
    assert world.slots.make_due(request_id, scheduled_at="2026-01-01T00:00:00+00:00") is False

    requeued = world.slots.requeue(filtered, walk=WalkState())
    assert requeued.job_state == JobState.PENDING and requeued.error_code is None
    assert [r.request_id for r in world.slots.pending(ORG, "job")] == [request_id]
