"""A cancelled request never shows a task still READY or EXECUTING (a step's records can land just
after the cancel); finished tasks keep their own state."""

from __future__ import annotations

from formica.store.requests import now_iso

from tests.integration.api.conftest import ApiWorld, submit


def _task(world: ApiWorld, request_id: str, seq: int, task_type: str, state: str) -> None:
    world.services.requests.update_task(
        request_id,
        seq,
        {
            "request_id": request_id,
            "seq": seq,
            "task_type": task_type,
            "task_state": state,
            "started_at": now_iso(),
        },
    )


def test_a_cancelled_request_shows_its_unfinished_task_cancelled(defined: ApiWorld) -> None:
    request_id = submit(defined, {"job_type": "hello-job"}).json()["id"]
    _task(defined, request_id, 1, "greet", "COMPLETED")
    _task(defined, request_id, 2, "bye", "EXECUTING")
    running = defined.call("GET", f"/api/jobs/requests/{request_id}").json()

    cancelled = defined.call("POST", f"/api/jobs/requests/{request_id}/cancel")
    # the step that entered `bye` writes its record after the cancel (a late BatchWriteItem)
    _task(defined, request_id, 2, "bye", "READY")
    shown = defined.call("GET", f"/api/jobs/requests/{request_id}").json()

    assert [t["task_state"] for t in running["tasks"]] == ["COMPLETED", "EXECUTING"]
    assert cancelled.status == 200 and cancelled.json()["job_state"] == "CANCELLED"
    assert shown["job_state"] == "CANCELLED"
    assert [(t["task_type"], t["task_state"]) for t in shown["tasks"]] == [
        ("greet", "COMPLETED"),
        ("bye", "CANCELLED"),
    ]
