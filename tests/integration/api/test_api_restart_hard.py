"""POST .../restart: soft by default, ?hard=true passed to the runtime (the walk's part is in
tests/workflow/test_retries_and_restarts.py)."""

from __future__ import annotations

from tests.integration.api.conftest import ApiWorld, finish, submit


def test_restart_is_soft_unless_hard_is_asked(defined: ApiWorld) -> None:
    first = submit(defined, {"job_type": "hello-job"}).json()["id"]
    second = submit(defined, {"job_type": "hello-job"}).json()["id"]
    finish(defined, first, "FAILED")
    finish(defined, second, "FAILED")

    soft = defined.call("POST", f"/api/jobs/requests/{first}/restart")
    hard = defined.call("POST", f"/api/jobs/requests/{second}/restart", query={"hard": "true"})
    bad = defined.call("POST", f"/api/jobs/requests/{second}/restart", query={"hard": "maybe"})

    assert (soft.status, hard.status) == (200, 200)
    assert defined.runtime.restarted == [first, second]
    assert defined.runtime.restarted_hard == [False, True]
    assert bad.status == 400
