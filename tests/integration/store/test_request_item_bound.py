"""Whatever tasks publish as outputs, the request item stays under DynamoDB's 400 KB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from formica.engine.walk import AttemptResult, Clock, record_attempt, start_walk
from formica.jobs.models import JobDefinition
from formica.store.requests import JobRequestItem, RequestRepository, StepCommit, StoredAttempt, now_iso
from formica.store.schema import REQUEST_SK, request_pk

from tests.integration.store.conftest import TABLE

DYNAMODB_ITEM_MAX_BYTES = 400 * 1024
TASKS = 30


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's count: each attribute's name and value, strings and numbers as UTF-8 text."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        (kind, raw), *_ = value.items()
        size += 1 if kind == "BOOL" else len(str(raw).encode("utf-8", errors="surrogatepass"))
    return size


def worst_outputs(task: int) -> dict[str, str]:
    # As many outputs as a task may publish, each value as long as allowed and costly to store:
    # 3 bytes per character in UTF-8, 6 once JSON escapes the control characters.
    return {f"out_{task}_{n:02d}": ("€\x01" * 4096)[:4096] for n in range(64)}


def test_the_request_item_stays_under_400_kb_whatever_the_tasks_publish(ddb: Any) -> None:
    # Given a chain of SHELL tasks, each publishing the most (and costliest) outputs it can
    repo = RequestRepository(TABLE, client=ddb)
    tasks = [
        {"task_type": f"t{i}", "method": "SHELL", "script": ["true"], "on_completed": f"t{i + 1}"}
        for i in range(TASKS - 1)
    ] + [{"task_type": f"t{TASKS - 1}", "method": "SHELL", "script": ["true"]}]
    definition = JobDefinition.model_validate({"job_type": "big", "tasks": tasks})
    now = now_iso()
    repo.create(
        JobRequestItem(
            request_id="r1", org="acme", job_type="big", job_version=1, created_at=now, updated_at=now
        )
    )
    repo.mark_started("r1", execution_name="r1-1")
    clock = Clock(datetime.now(UTC), datetime.now(UTC), None)
    transition = start_walk(definition, clock)
    sizes: list[int] = []
    for step in range(TASKS + 1):
        repo.commit_step(
            "r1",
            step,
            StepCommit(
                walk=transition.walk,
                decision=transition.decision,
                job_state=transition.job_state,
                task_updates=transition.task_updates,
            ),
        )
        if transition.job_state.is_final:
            break
        # When each attempt reports its outputs (recorded on the request first, as containers do)
        result = AttemptResult(exit_code="0", outputs=worst_outputs(step))
        repo.claim_attempt("r1", step + 1)
        repo.record_attempt("r1", step + 1, StoredAttempt(step=step + 1, result=result))
        item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": request_pk("r1")}, "sk": {"S": REQUEST_SK}})[
            "Item"
        ]
        sizes.append(item_size(item))
        transition = record_attempt(definition, transition.walk, result, clock)

    # Then the item never came near DynamoDB's limit, and the latest task's outputs are kept
    assert max(sizes) < DYNAMODB_ITEM_MAX_BYTES // 2, sizes
    stored = repo.get("r1")
    assert stored is not None and f"t{TASKS - 1}" in stored.walk.outputs
