"""Container runs in the single table (moto DynamoDB), and the in-memory fake held to the same rules."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from formica.store.container_runs import (
    LAUNCHED_GSI2PK,
    ContainerRunItem,
    ContainerRunRepository,
    ContainerRunStatus,
    DynamoContainerRunRepository,
)

from tests.fakes.container_runs import InMemoryContainerRunRepository

TABLE = "formica-store-test"  # the table conftest.py creates


def _run(
    request_id: str = "req-1", step: int = 3, created_at: str = "2026-11-28T18:40:00.000000+00:00"
) -> ContainerRunItem:
    return ContainerRunItem(
        request_id=request_id,
        step=step,
        runtime="ecs",
        task_token="token-1",
        org="acme",
        task_type="build",
        attempt=2,
        created_at=created_at,
        deadline_at="2026-11-28T18:50:00.000000+00:00",
    )


@pytest.fixture(params=["dynamodb", "memory"])
def runs(request: pytest.FixtureRequest) -> ContainerRunRepository:
    if request.param == "memory":
        return InMemoryContainerRunRepository()
    ddb = request.getfixturevalue("ddb")
    return DynamoContainerRunRepository(TABLE, client=ddb)


def test_create_then_get(runs: ContainerRunRepository) -> None:
    assert runs.create(_run()) is True
    stored = runs.get("req-1", 3)

    assert stored == _run()
    assert stored is not None and stored.status is ContainerRunStatus.LAUNCHED
    assert runs.get("req-1", 4) is None


def test_a_second_create_for_the_same_step_is_refused(runs: ContainerRunRepository) -> None:
    runs.create(_run())
    other = _run().model_copy(update={"task_token": "token-2"})

    assert runs.create(other) is False
    stored = runs.get("req-1", 3)
    assert stored is not None and stored.task_token == "token-1"


def test_set_handle_on_a_launched_run(runs: ContainerRunRepository) -> None:
    runs.create(_run())
    assert runs.set_handle("req-1", 3, ecs_task_arn="arn:task/1", task_token="token-2") is True

    stored = runs.get("req-1", 3)
    assert stored is not None
    assert (stored.ecs_task_arn, stored.task_token) == ("arn:task/1", "token-2")


def test_finish_happens_once(runs: ContainerRunRepository) -> None:
    runs.create(_run())

    first = runs.finish("req-1", 3, exit_code="3", error_code=None, error_message=None)
    second = runs.finish("req-1", 3, exit_code="0", error_code="ERR_X", error_message="late")

    assert first is not None
    assert (first.status, first.exit_code, first.finished_at is not None) == (
        ContainerRunStatus.FINISHED,
        "3",
        True,
    )
    assert second is None
    stored = runs.get("req-1", 3)
    assert stored is not None and stored.exit_code == "3" and stored.error_code is None
    assert runs.set_handle("req-1", 3, task_token="token-9") is False
    assert runs.finish("req-9", 1, exit_code="0", error_code=None, error_message=None) is None


def test_racing_finishes_have_one_winner(runs: ContainerRunRepository) -> None:
    runs.create(_run())
    winners: list[Any] = []

    def finish(code: str) -> None:
        if runs.finish("req-1", 3, exit_code=code, error_code=None, error_message=None) is not None:
            winners.append(code)

    threads = [threading.Thread(target=finish, args=(str(n),)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(winners) == 1


def test_launched_runs_are_listed_oldest_first_until_finished(runs: ContainerRunRepository) -> None:
    runs.create(_run("req-b", 1, "2026-11-28T18:42:00.000000+00:00"))
    runs.create(_run("req-a", 1, "2026-11-28T18:41:00.000000+00:00"))
    runs.create(_run("req-c", 2, "2026-11-28T18:43:00.000000+00:00"))
    runs.finish("req-c", 2, exit_code="0", error_code=None, error_message=None)

    assert [(r.request_id, r.step) for r in runs.list_launched()] == [("req-a", 1), ("req-b", 1)]
    assert [r.request_id for r in runs.list_launched(created_before="2026-11-28T18:41:30")] == ["req-a"]
    assert len(runs.list_launched(limit=1)) == 1


def test_runs_of_a_request(runs: ContainerRunRepository) -> None:
    runs.create(_run("req-1", 7))
    runs.create(_run("req-1", 2))
    runs.create(_run("req-2", 1))

    assert [r.step for r in runs.list_for_request("req-1")] == [2, 7]


def test_the_item_follows_the_table_contract(ddb: Any) -> None:
    repo = DynamoContainerRunRepository(TABLE, client=ddb)
    repo.create(_run())
    key = {"pk": {"S": "REQ#req-1"}, "sk": {"S": "RUN#0000000003"}}

    item = ddb.get_item(TableName=TABLE, Key=key)["Item"]
    assert item["gsi2pk"] == {"S": LAUNCHED_GSI2PK}
    assert item["gsi2sk"]["S"].startswith("2026-11-28T18:40:00")
    assert item["status"] == {"S": "LAUNCHED"}

    repo.finish("req-1", 3, exit_code="", error_code="ERR_CONTAINER_START", error_message="pull failed")
    item = ddb.get_item(TableName=TABLE, Key=key)["Item"]
    assert "gsi2pk" not in item and "gsi2sk" not in item  # sparse: gone from the reconciler's index
    assert item["exit_code"] == {"S": ""}
