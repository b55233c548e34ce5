"""POST /api/jobs/requests/{id}/resume: a PAUSED request is handed to the runtime with the caller's
token name; anything else is refused (409 not paused, 404 unknown or another organisation's, 403
without the submit scope)."""

from __future__ import annotations

from formica.engine.walk import JobState, TaskRun, WaitKind, WalkState
from formica.jobs.models import RunnerKind
from formica.store.requests import JobRequestItem, now_iso
from formica.store.tokens import TokenRepository

from tests.integration.api.conftest import TABLE, ApiWorld


def stored(world: ApiWorld, request_id: str, state: JobState) -> None:
    now = now_iso()
    run = TaskRun(
        task_type="prepare",
        seq=1,
        runner=RunnerKind.SHELL,
        started_at=now,
        try_started_at=now,
        waiting=WaitKind.RESUME if state == JobState.PAUSED else None,
    )
    world.services.requests.create(
        JobRequestItem(
            request_id=request_id,
            org="acme",
            job_type="pausing",
            job_version=1,
            created_at=now,
            updated_at=now,
            job_state=state,
            step=2,
            walk=WalkState(current=run),
        )
    )


def test_a_paused_request_is_resumed_by_the_callers_token(world: ApiWorld) -> None:
    stored(world, "r-1", JobState.PAUSED)
    _, secret = TokenRepository(TABLE, client=world.ddb).create("acme", "ops-bot", scopes=("read", "submit"))
    answer = world.call("POST", "/api/jobs/requests/r-1/resume", token=secret)
    assert answer.status == 200, answer.text
    assert world.runtime.resumed == [("r-1", "ops-bot")]


def test_only_a_paused_request_of_the_organisation_is_resumed(world: ApiWorld) -> None:
    stored(world, "r-2", JobState.EXECUTING)
    running = world.call("POST", "/api/jobs/requests/r-2/resume")
    assert running.status == 409
    assert "EXECUTING, not PAUSED" in running.json()["message"]
    stored(world, "r-3", JobState.PAUSED)
    assert world.call("POST", "/api/jobs/requests/r-3/resume", token=world.other_token).status == 404
    assert world.call("POST", "/api/jobs/requests/nope/resume").status == 404
    _, reader = TokenRepository(TABLE, client=world.ddb).create("acme", "reader", scopes=("read",))
    refused = world.call("POST", "/api/jobs/requests/r-3/resume", token=reader)
    assert refused.status == 403 and "submit" in refused.json()["message"]
    assert world.runtime.resumed == []
