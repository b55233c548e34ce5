"""Retention: request, task, artifact/log and child items carry ``expires_at`` (the table's TTL)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from formica.engine.routing import TaskState
from formica.engine.walk import Action, Decision, JobState, TaskUpdate, WalkState
from formica.runtime.wiring import build_runtime
from formica.settings import reset_settings
from formica.store.aws import reset_clients
from formica.store.requests import ArtifactItem, JobRequestItem, RequestRepository, StepCommit, now_iso
from formica.store.requests.items import ChildItem
from formica.store.schema import SECONDS_PER_DAY

TABLE = "formica-store-test"
DAYS = 7


def _request(request_id: str) -> JobRequestItem:
    now = now_iso()
    return JobRequestItem(
        request_id=request_id,
        org="acme",
        job_type="sensor-job",
        job_version=1,
        created_at=now,
        updated_at=now,
    )


def _artifact(request_id: str, artifact_id: str, kind: str) -> ArtifactItem:
    return ArtifactItem(
        request_id=request_id,
        artifact_id=artifact_id,
        org="acme",
        task_type="first",
        name=f"{artifact_id}.txt",
        key=f"acme/{request_id}/first/{kind}s/{artifact_id}.txt",
        size=3,
        sha256="0" * 64,
        kind=kind,
        created_at=now_iso(),
    )


def _items(ddb: Any, request_id: str) -> dict[str, dict[str, Any]]:
    response = ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"REQ#{request_id}"}},
        ConsistentRead=True,
    )
    return {item["sk"]["S"]: item for item in response["Items"]}


def _assert_expires_in_days(item: dict[str, Any], before: float, after: float) -> None:
    assert "expires_at" in item, f"{item['sk']['S']} has no expires_at"
    expiry = int(item["expires_at"]["N"])
    assert int(before) + DAYS * SECONDS_PER_DAY <= expiry <= int(after) + DAYS * SECONDS_PER_DAY


def test_every_item_of_a_request_expires_after_the_retention(ddb: Any) -> None:
    # Given a repository keeping items DAYS days
    repo = RequestRepository(TABLE, client=ddb, retention_days=DAYS)
    before = time.time()
    # When a request is created, walks a step that records a task and its log, and gets an
    # artifact and a forked child
    repo.create(_request("r1"))
    repo.mark_started("r1", execution_name="r1-1")
    repo.commit_step(
        "r1",
        0,
        StepCommit(
            walk=WalkState(next_seq=2),
            decision=Decision(action=Action.SUCCEED),
            job_state=JobState.COMPLETED,
            task_updates=[
                TaskUpdate(seq=1, task_type="first", task_state=TaskState.COMPLETED, exit_code="0")
            ],
            artifacts=[_artifact("r1", "log1", "log")],
        ),
    )
    repo.put_artifact(_artifact("r1", "art1", "artifact"))
    repo.put_child(
        ChildItem(
            parent_id="r1",
            child_id="c1",
            job_type="sensor-job",
            fork_task="first",
            step=1,
            created_at=now_iso(),
        )
    )
    after = time.time()
    # Then each of them expires DAYS days after it was written
    items = _items(ddb, "r1")
    assert set(items) == {"REQ", "TASK#0001", "ART#log1", "ART#art1", "CHILD#c1"}
    for item in items.values():
        _assert_expires_in_days(item, before, after)
    assert repo.get("r1") is not None


def test_each_step_moves_a_walking_request_expiry_on(ddb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = RequestRepository(TABLE, client=ddb, retention_days=DAYS)
    repo.create(_request("r2"))
    created = int(_items(ddb, "r2")["REQ"]["expires_at"]["N"])
    repo.mark_started("r2", execution_name="r2-1")
    later = time.time() + 3 * SECONDS_PER_DAY
    monkeypatch.setattr("formica.store.schema.time.time", lambda: later)
    repo.commit_step(
        "r2",
        0,
        StepCommit(
            walk=WalkState(next_seq=2),
            decision=Decision(action=Action.RUN_SHELL, task_type="first"),
            job_state=JobState.EXECUTING,
        ),
    )
    stepped = int(_items(ddb, "r2")["REQ"]["expires_at"]["N"])
    assert stepped >= created + 3 * SECONDS_PER_DAY - 1


def test_the_process_runtime_keeps_items_for_the_settings_retention(
    ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORMICA_TABLE_NAME", TABLE)
    monkeypatch.setenv("FORMICA_BUCKET_NAME", "unused")
    monkeypatch.setenv("FORMICA_RETENTION_DAYS", str(DAYS))
    reset_settings()
    reset_clients()
    try:
        runtime = build_runtime()
    finally:
        reset_settings()
    repo = runtime.requests
    assert isinstance(repo, RequestRepository)
    before = time.time()
    repo.create(_request("r3"))
    _assert_expires_in_days(_items(ddb, "r3")["REQ"], before, time.time())
    reset_clients()
