"""The approval routes: approve / reject a MANUAL task that waits, the pending listing, and every
refusal (403 scope or voter, 404, 409 nothing waits or a second vote)."""

from __future__ import annotations

import pytest
from formica.engine.walk import JobState, TaskRun, WalkState
from formica.jobs.models import ApprovalPolicy, RunnerKind
from formica.store.requests import ApprovalItem, JobRequestItem, now_iso
from formica.store.tokens import TokenRepository

from tests.integration.api.conftest import TABLE, ApiWorld

STEP = 3


def waiting_request(world: ApiWorld, request_id: str, policy: ApprovalPolicy) -> None:
    """Given: a request whose walk waits at its MANUAL task ``sign-off`` (what Launch records)."""
    now = now_iso()
    run = TaskRun(task_type="sign-off", seq=2, runner=RunnerKind.MANUAL, started_at=now, try_started_at=now)
    world.services.requests.create(
        JobRequestItem(
            request_id=request_id,
            org="acme",
            job_type="release",
            job_version=1,
            created_at=now,
            updated_at=now,
            job_state=JobState.EXECUTING,
            step=STEP,
            walk=WalkState(current=run),
        )
    )
    world.services.requests.put_approval(
        ApprovalItem(
            request_id=request_id,
            org="acme",
            job_type="release",
            task_type="sign-off",
            step=STEP,
            policy=policy,
            created_at=now,
        )
    )


def token(world: ApiWorld, name: str, scopes: tuple[str, ...] = ("read", "approve")) -> str:
    _, secret = TokenRepository(TABLE, client=world.ddb).create("acme", name, scopes=scopes)
    return secret


@pytest.fixture
def voters(world: ApiWorld) -> dict[str, str]:
    return {name: token(world, name) for name in ("alice", "bob", "mallory")}


def url(request_id: str, verb: str) -> str:
    return f"/api/jobs/requests/{request_id}/tasks/sign-off/{verb}"


def test_two_approvals_decide_and_each_vote_is_recorded(world: ApiWorld, voters: dict[str, str]) -> None:
    waiting_request(world, "r-1", ApprovalPolicy(min_approvals=2, allowed_users=["alice", "bob"]))
    listed = world.call("GET", "/api/approvals/pending").json()["approvals"]
    assert [(a["request_id"], a["task_type"], a["approvals_needed"]) for a in listed] == [
        ("r-1", "sign-off", 2)
    ]

    first = world.call("POST", url("r-1", "approve"), token=voters["alice"], json_body={"comment": "lgtm"})
    assert first.status == 200, first.json()
    assert first.json()["state"] == "PENDING" and world.runtime.verdicts == []
    second = world.call("POST", url("r-1", "approve"), token=voters["bob"])

    assert second.status == 200 and second.json()["state"] == "APPROVED"
    votes = [(v["voter"], v["approve"], v["comment"]) for v in second.json()["votes"]]
    assert votes == [("alice", True, "lgtm"), ("bob", True, "")]
    # The deciding vote answered the walk, once, with the verdict.
    assert [outcome.verdict for outcome in world.runtime.verdicts] == ["APPROVED"]
    assert world.call("GET", "/api/approvals/pending").json()["approvals"] == []


def test_a_rejection_decides_and_answers_the_walk(world: ApiWorld, voters: dict[str, str]) -> None:
    waiting_request(world, "r-2", ApprovalPolicy())
    rejected = world.call("POST", url("r-2", "reject"), token=voters["mallory"], json_body={"comment": "no"})
    assert rejected.status == 200 and rejected.json()["state"] == "REJECTED"
    assert [outcome.verdict for outcome in world.runtime.verdicts] == ["REJECTED"]


def test_refusals_name_their_reason(world: ApiWorld, voters: dict[str, str]) -> None:
    waiting_request(world, "r-3", ApprovalPolicy(min_approvals=2, allowed_users=["alice", "bob"]))
    # A token without the approve scope never reaches the route.
    reader = token(world, "reader", scopes=("read",))
    no_scope = world.call("POST", url("r-3", "approve"), token=reader)
    assert no_scope.status == 403 and "approve" in no_scope.json()["message"]
    # A token the policy does not name.
    outsider = world.call("POST", url("r-3", "approve"), token=voters["mallory"])
    assert outsider.status == 403 and "allowed_users" in outsider.json()["message"]
    # A second vote of the same token.
    assert world.call("POST", url("r-3", "approve"), token=voters["alice"]).status == 200
    again = world.call("POST", url("r-3", "reject"), token=voters["alice"])
    assert again.status == 409 and "already voted" in again.json()["message"]
    # A task that does not wait, a request that does not exist, another organisation's request.
    other_task = world.call("POST", "/api/jobs/requests/r-3/tasks/deploy/approve", token=voters["bob"])
    assert other_task.status == 409
    assert world.call("POST", url("nope", "approve"), token=voters["bob"]).status == 404
    assert world.call("POST", url("r-3", "approve"), token=world.other_token).status == 404
    assert world.runtime.verdicts == []


def test_a_request_that_moved_on_waits_for_no_vote_and_leaves_the_listing(
    world: ApiWorld, voters: dict[str, str]
) -> None:
    waiting_request(world, "r-4", ApprovalPolicy())
    world.runtime.cancel("acme", "r-4")
    late = world.call("POST", url("r-4", "approve"), token=voters["alice"])
    assert late.status == 409
    assert world.call("GET", "/api/approvals/pending").json()["approvals"] == []
