"""RequestRepository under moto: items round-trip, conditional steps, claims, listing, cancel."""

from __future__ import annotations

from typing import Any

import pytest
from formica.engine.routing import TaskState
from formica.engine.walk import Action, AttemptResult, Decision, JobState, TaskUpdate, WalkState
from formica.store.pagination import InvalidCursorError
from formica.store.requests import (
    ArtifactItem,
    JobRequestItem,
    RequestFinishedError,
    RequestRepository,
    StepCommit,
    StepConflictError,
    StoredAttempt,
    now_iso,
)
from formica.store.schema import table_definition


def new_request(request_id: str = "r1", org: str = "acme", **fields: Any) -> JobRequestItem:
    now = now_iso()
    values: dict[str, Any] = {
        "request_id": request_id,
        "org": org,
        "job_type": "sensor-job",
        "job_version": 1,
        "params": {"Key": "Value", "n": 3},
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return JobRequestItem(**values)


def started(repo: RequestRepository, request_id: str = "r1") -> JobRequestItem:
    repo.create(new_request(request_id))
    return repo.mark_started(request_id, execution_name=f"{request_id}-1")


def commit(
    repo: RequestRepository, step: int, state: JobState = JobState.EXECUTING, **fields: Any
) -> JobRequestItem:
    repo.commit_step(
        "r1",
        step,
        StepCommit(
            walk=WalkState(next_seq=2),
            decision=Decision(action=Action.RUN_SHELL, task_type="first"),
            job_state=state,
            **fields,
        ),
    )
    stored = repo.get("r1")
    assert stored is not None
    return stored


def test_table_definition_is_the_documented_contract() -> None:
    definition = table_definition("t")
    assert [k["AttributeName"] for k in definition["KeySchema"]] == ["pk", "sk"]
    assert {i["IndexName"] for i in definition["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2"}
    assert definition["BillingMode"] == "PAY_PER_REQUEST"


def test_request_round_trips_and_lists_pending_by_priority(repo: RequestRepository) -> None:
    repo.create(new_request("low", job_priority=1))
    repo.create(new_request("high", job_priority=9))
    got = repo.get("low")
    assert got is not None and got.params == {"Key": "Value", "n": 3}
    assert got.job_state == JobState.PENDING
    assert [r.request_id for r in repo.list_pending("acme", "sensor-job")] == ["high", "low"]
    repo.mark_started("high", execution_name="high-1")
    assert [r.request_id for r in repo.list_pending("acme", "sensor-job")] == ["low"]


def test_get_for_org_hides_other_organisations(repo: RequestRepository) -> None:
    repo.create(new_request("r1", org="acme"))
    assert repo.get_for_org("acme", "r1") is not None
    assert repo.get_for_org("other", "r1") is None
    assert repo.get_for_org("acme", "missing") is None


def test_list_for_org_pages_newest_first_and_filters(repo: RequestRepository) -> None:
    for index in range(5):
        repo.create(new_request(f"r{index}", job_type="a" if index % 2 else "b"))
    repo.create(new_request("x", org="other"))
    first = repo.list_for_org("acme", limit=3)
    assert [r.request_id for r in first.records] == ["r4", "r3", "r2"]
    assert first.next_token is not None
    second = repo.list_for_org("acme", limit=3, next_token=first.next_token)
    assert [r.request_id for r in second.records] == ["r1", "r0"]
    only_a = repo.list_for_org("acme", job_type="a", limit=10)
    assert {r.request_id for r in only_a.records} == {"r1", "r3"}
    assert repo.list_for_org("acme", job_state=JobState.COMPLETED).records == []
    with pytest.raises(InvalidCursorError):
        repo.list_for_org("other", next_token=first.next_token)


def test_commit_step_is_conditional_on_the_step(repo: RequestRepository) -> None:
    started(repo)
    update = TaskUpdate(seq=1, task_type="first", task_state=TaskState.READY, started_at=now_iso())
    after = commit(repo, 0, task_updates=[update])
    assert after.step == 1
    assert after.decision is not None and after.decision.step == 1
    assert after.decision_from_step == 0
    assert after.job_state == JobState.EXECUTING
    with pytest.raises(StepConflictError):
        commit(repo, 0)
    [task] = repo.list_tasks("r1")
    assert (task.seq, task.task_type, task.task_state) == (1, "first", TaskState.READY)


def test_task_records_are_written_with_the_step(repo: RequestRepository) -> None:
    started(repo)
    commit(repo, 0, task_updates=[TaskUpdate(seq=1, task_type="first", task_state=TaskState.READY)])
    done = TaskUpdate(
        seq=1,
        task_type="first",
        task_state=TaskState.COMPLETED,
        exit_code="0",
        outputs={"a": "b"},
        log_key="acme/r1/first/logs/attempt-1.log",
        warnings=["w"],
        ended_at=now_iso(),
    )
    after = commit(repo, 1, task_updates=[done])
    [task] = repo.list_tasks("r1")
    assert task.task_state == TaskState.COMPLETED
    assert task.log_key == "acme/r1/first/logs/attempt-1.log"
    assert task.warnings == ["w"]
    assert task.outputs == {"a": "b"}
    # The step keeps its records, so a replay can write them again.
    assert after.outbox is not None and after.outbox.task_updates == [done]
    repo.update_task("r1", 1, {"task_state": "EXECUTING"})
    repo.flush_outbox("r1", after.outbox)
    assert repo.list_tasks("r1")[0].task_state == TaskState.COMPLETED


def test_an_attempt_is_claimed_once(repo: RequestRepository) -> None:
    started(repo)
    commit(repo, 0)
    claimed = repo.claim_attempt("r1", 1)
    assert claimed is not None and claimed.claimed_step == 1
    assert repo.claim_attempt("r1", 1) is None
    assert repo.claim_attempt("r1", 2) is None  # not the current step
    attempt = StoredAttempt(step=1, result=AttemptResult(exit_code="0"))
    assert repo.record_attempt("r1", 1, attempt) is True
    stored = repo.get("r1")
    assert stored is not None and stored.attempt == attempt
    commit(repo, 1)
    assert repo.record_attempt("r1", 1, attempt) is False  # the walk moved on


def test_cancel_is_conditional_and_blocks_later_steps(repo: RequestRepository) -> None:
    started(repo)
    commit(repo, 0)
    assert repo.set_task_token("r1", 1, "token-1") is True
    cancelled = repo.mark_cancelled("r1", error_code="ERR_JOB_CANCELLED", message="cancelled")
    assert cancelled.job_state == JobState.CANCELLED
    assert cancelled.task_token == "token-1"
    assert repo.is_cancelled("r1") is True
    with pytest.raises(StepConflictError):
        commit(repo, 1)
    with pytest.raises(RequestFinishedError):
        repo.mark_cancelled("r1", error_code="ERR_JOB_CANCELLED", message="again")


def test_finished_request_cannot_be_cancelled(repo: RequestRepository) -> None:
    started(repo)
    commit(repo, 0, state=JobState.COMPLETED)
    with pytest.raises(RequestFinishedError) as raised:
        repo.mark_cancelled("r1", error_code="ERR_JOB_CANCELLED", message="late")
    assert raised.value.job_state == JobState.COMPLETED


def test_execution_name_moves_only_from_the_expected_one(repo: RequestRepository) -> None:
    started(repo)
    assert repo.set_execution("r1", expected="r1-1", name="r1-2") is True
    assert repo.set_execution("r1", expected="r1-1", name="r1-3") is False
    stored = repo.get("r1")
    assert stored is not None and (stored.execution_name, stored.execution_count) == ("r1-2", 2)


def test_artifacts_round_trip(repo: RequestRepository) -> None:
    started(repo)
    artifact = ArtifactItem(
        request_id="r1",
        artifact_id="a1",
        org="acme",
        task_type="third",
        name="date.txt",
        key="acme/r1/third/artifacts/date.txt",
        size=29,
        sha256="0" * 64,
        created_at=now_iso(),
    )
    repo.put_artifact(artifact)
    assert repo.list_artifacts("r1") == [artifact]
    assert repo.get_artifact("r1", "a1") == artifact
    assert repo.list_tasks("r1") == []


def test_cancel_task_is_conditional(repo: RequestRepository) -> None:
    started(repo)
    commit(
        repo,
        0,
        task_updates=[
            TaskUpdate(seq=1, task_type="first", task_state=TaskState.COMPLETED, exit_code="0"),
            TaskUpdate(seq=2, task_type="second", task_state=TaskState.EXECUTING),
        ],
    )

    assert repo.cancel_task("r1", 2, error_code="ERR_TASK_CANCELLED", ended_at=now_iso()) is True
    assert repo.cancel_task("r1", 1, error_code="ERR_TASK_CANCELLED", ended_at=now_iso()) is False
    assert repo.cancel_task("r1", 3, error_code="ERR_TASK_CANCELLED", ended_at=now_iso()) is False

    tasks = {task.seq: task for task in repo.list_tasks("r1")}
    assert set(tasks) == {1, 2}  # no partial item for seq 3
    assert (tasks[1].task_state, tasks[1].error_code) == (TaskState.COMPLETED, None)
    assert (tasks[2].task_state, tasks[2].error_code) == (TaskState.CANCELLED, "ERR_TASK_CANCELLED")
