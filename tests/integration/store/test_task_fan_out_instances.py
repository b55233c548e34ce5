"""A task fan-out's instance items on moto's DynamoDB: each state change is a conditional write that
one caller wins, even when many race (D42)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from formica.store.requests import InstanceEnd, InstanceItem, InstanceState, RequestRepository, now_iso


def _instance(index: int, step: int = 3) -> InstanceItem:
    return InstanceItem(
        request_id="req-1",
        step=step,
        index=index,
        task_type="each",
        item=f"item-{index}",
        item_var="item",
        created_at=now_iso(),
    )


def test_an_instance_is_started_claimed_and_ended_once_each(repo: RequestRepository) -> None:
    # Given one instance put by a look
    assert repo.put_instance(_instance(0)) is True

    # When eight looks race to put it again, and eight invocations race to claim it
    with ThreadPoolExecutor(max_workers=8) as pool:
        puts = list(pool.map(lambda _: repo.put_instance(_instance(0)), range(8)))
        claims = list(pool.map(lambda _: repo.claim_instance("req-1", 3, 0, now_iso()), range(8)))

    # Then no second put won, and exactly one claim did
    assert puts == [False] * 8
    won = [claim for claim in claims if claim is not None]
    assert len(won) == 1 and won[0].state == InstanceState.RUNNING
    assert [i.index for i in repo.running_instances()] == [0]

    # And it ends once, its result kept, out of the running partition
    end = InstanceEnd(
        state=InstanceState.COMPLETED,
        exit_code="0",
        outputs={"Start": "1.5"},
        log_key="k",
        ended_at=now_iso(),
    )
    assert repo.end_instance("req-1", 3, 0, end) is True
    assert repo.end_instance("req-1", 3, 0, end.model_copy(update={"state": InstanceState.FAILED})) is False
    (ended,) = repo.list_instances("req-1", 3)
    assert (ended.state, ended.exit_code, ended.outputs, ended.log_key) == (
        InstanceState.COMPLETED,
        "0",
        {"Start": "1.5"},
        "k",
    )
    assert repo.running_instances() == []
    # And an ended instance is never claimed again (a replayed invocation runs nothing)
    assert repo.claim_instance("req-1", 3, 0, now_iso()) is None


def test_instances_are_listed_by_step_and_index(repo: RequestRepository) -> None:
    for step, index in ((3, 10), (3, 2), (13, 0), (3, 0)):
        repo.put_instance(_instance(index, step))

    assert [i.index for i in repo.list_instances("req-1", 3)] == [0, 2, 10]
    assert [i.index for i in repo.list_instances("req-1", 13)] == [0]
    assert [(i.step, i.index) for i in repo.list_all_instances("req-1")] == [(3, 0), (3, 2), (3, 10), (13, 0)]
    assert repo.claim_instance("req-1", 99, 0, now_iso()) is None  # never created
