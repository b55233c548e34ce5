"""MANUAL tasks on the real state machine (moto): the walk waits on a task token for the verdict."""

from __future__ import annotations

import pytest
from formica.engine.walk import JobState
from formica.runtime import cancel_request, get_runtime
from formica.runtime.approvals import (
    AlreadyVotedError,
    ApprovalNotWaitingError,
    VoterNotAllowedError,
    cast_vote,
    pending_approvals,
)
from formica.store.requests import ApprovalItem, JobRequestItem

from tests.workflow.conftest import ORG, Walk

RELEASE = """
job_type: release
tasks:
- task_type: build
  method: SHELL
  script: [echo built]
  on_completed: sign-off
- task_type: sign-off
  method: MANUAL
  approval_policy:
    min_approvals: {min_approvals}
    allowed_users: [alice, bob, carol]
  on_exit_code:
{routes}
- task_type: deploy
  method: SHELL
  script:
    - echo "deployed by {{{{ .ApprovedBy }}}}"
- task_type: rollback
  method: SHELL
  script: [echo rolled back]
"""


def release(min_approvals: int = 1, routes: str = "    APPROVED: deploy\n    REJECTED: rollback") -> str:
    return RELEASE.format(min_approvals=min_approvals, routes=routes)


def waiting(walk: Walk, request_id: str) -> ApprovalItem:
    """Wait until the request waits at its MANUAL task; its recorded approval."""

    def at_approval(request: JobRequestItem) -> bool:
        current = request.walk.current
        if request.is_final or current is None or current.task_type != "sign-off":
            return False
        return get_runtime().requests.get_approval(request_id, request.step) is not None

    request = walk.wait_for(request_id, at_approval)
    approval = get_runtime().requests.get_approval(request_id, request.step)
    assert approval is not None
    return approval


def vote(request_id: str, voter: str, *, approve: bool, comment: str = "") -> str | None:
    outcome = cast_vote(
        get_runtime(), ORG, request_id, "sign-off", voter=voter, approve=approve, comment=comment
    )
    return outcome.verdict


def task_states(walk: Walk, request_id: str) -> dict[str, str]:
    return {task.task_type: str(task.task_state) for task in walk.tasks(request_id)}


def test_an_approval_routes_on_approved_and_the_walk_waits_until_then(walk: Walk) -> None:
    # Given a job waiting at its MANUAL task
    walk.upload(release())
    request_id = walk.submit("release")
    approval = waiting(walk, request_id)
    # Then it is listed as pending and nothing else runs meanwhile
    assert approval.is_pending and approval.policy.allowed_users == ["alice", "bob", "carol"]
    listed = pending_approvals(get_runtime().requests, ORG)
    assert [(item.request_id, item.task_type) for item, _ in listed] == [(request_id, "sign-off")]
    assert walk.request(request_id).job_state == JobState.EXECUTING
    # When alice approves
    assert vote(request_id, "alice", approve=True, comment="ship it") == "APPROVED"
    # Then the walk goes on to deploy, which sees who approved
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done.error_message
    states = task_states(walk, request_id)
    assert states == {"build": "COMPLETED", "sign-off": "COMPLETED", "deploy": "COMPLETED"}
    assert "deployed by alice" in walk.log(request_id, "deploy")
    assert pending_approvals(get_runtime().requests, ORG) == []
    votes = get_runtime().requests.list_votes(request_id, approval.step)
    assert [(v.voter, v.approve, v.comment) for v in votes] == [("alice", True, "ship it")]


def test_a_routed_rejection_follows_its_route(walk: Walk) -> None:
    walk.upload(release())
    request_id = walk.submit("release")
    waiting(walk, request_id)
    assert vote(request_id, "bob", approve=False, comment="not today") == "REJECTED"
    done = walk.wait(request_id)
    # The rejection is routed: a handled failure, the job completes through rollback.
    assert done.job_state == JobState.COMPLETED, done.error_message
    assert task_states(walk, request_id) == {
        "build": "COMPLETED",
        "sign-off": "FAILED",
        "rollback": "COMPLETED",
    }


def test_an_unrouted_rejection_fails_the_job_with_err_manual_rejection(walk: Walk) -> None:
    unrouted = release(routes="    APPROVED: deploy").split("- task_type: rollback")[0]
    walk.upload(unrouted)
    request_id = walk.submit("release")
    waiting(walk, request_id)
    vote(request_id, "carol", approve=False, comment="missing changelog")
    done = walk.wait(request_id)
    assert done.job_state == JobState.FAILED
    assert done.error_code == "ERR_MANUAL_REJECTION"
    assert done.error_message is not None and "carol" in done.error_message
    assert "missing changelog" in done.error_message


def test_two_approvals_are_needed_once_each_and_only_from_allowed_users(walk: Walk) -> None:
    walk.upload(release(min_approvals=2))
    request_id = walk.submit("release")
    waiting(walk, request_id)
    # A token the policy does not name may not vote.
    with pytest.raises(VoterNotAllowedError):
        vote(request_id, "mallory", approve=True)
    # The first approval is not enough; the same voter cannot count twice.
    assert vote(request_id, "alice", approve=True) is None
    with pytest.raises(AlreadyVotedError):
        vote(request_id, "alice", approve=True)
    assert walk.request(request_id).job_state == JobState.EXECUTING
    # The second voter's approval decides.
    assert vote(request_id, "bob", approve=True) == "APPROVED"
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done.error_message
    assert "deployed by alice,bob" in walk.log(request_id, "deploy")
    # Nothing waits any more: a late vote is refused.
    with pytest.raises(ApprovalNotWaitingError):
        vote(request_id, "carol", approve=False)


def test_a_cancelled_request_stops_waiting_for_its_approval(walk: Walk) -> None:
    walk.upload(release())
    request_id = walk.submit("release")
    waiting(walk, request_id)
    cancel_request(ORG, request_id, get_runtime())
    done = walk.wait(request_id)
    assert done.job_state == JobState.CANCELLED
    with pytest.raises(ApprovalNotWaitingError):
        vote(request_id, "alice", approve=True)
    assert pending_approvals(get_runtime().requests, ORG) == []


SLA = """
job_type: sla-{action}
tasks:
- task_type: sign-off
  method: MANUAL
  approval_policy:
    sla_deadline: 1s
    timeout_action: {action}
  on_exit_code:
    APPROVED: deploy
- task_type: deploy
  method: SHELL
  script: [echo deployed]
"""


@pytest.mark.parametrize(
    ("action", "state", "error_code", "tasks"),
    [
        ("AUTO_APPROVE", JobState.COMPLETED, None, {"sign-off": "COMPLETED", "deploy": "COMPLETED"}),
        ("AUTO_REJECT", JobState.FAILED, "ERR_MANUAL_REJECTION", {"sign-off": "FAILED"}),
        ("FAIL", JobState.FAILED, "ERR_APPROVAL_TIMED_OUT", {"sign-off": "FAILED"}),
    ],
)
def test_the_sla_deadline_applies_the_timeout_action(
    walk: Walk, action: str, state: JobState, error_code: str | None, tasks: dict[str, str]
) -> None:
    walk.upload(SLA.format(action=action))
    request_id = walk.submit(f"sla-{action}")
    done = walk.wait(request_id, timeout=30)
    assert done.job_state == state, done.error_message
    assert done.error_code == error_code
    assert task_states(walk, request_id) == tasks


def test_a_request_waiting_for_approval_gives_its_concurrency_slot_back(walk: Walk) -> None:
    # Given a job type that runs one request at a time, with a MANUAL task
    walk.upload("max_concurrency: 1\n" + release())
    first = walk.submit("release")
    waiting(walk, first)
    # When a second request is submitted while the first waits for its verdict
    second = walk.submit("release")
    # Then it is admitted and reaches its own approval: the waiting one holds no slot
    waiting(walk, second)
    assert vote(second, "alice", approve=True) == "APPROVED"
    assert walk.wait(second).job_state == JobState.COMPLETED
    assert vote(first, "bob", approve=True) == "APPROVED"
    assert walk.wait(first).job_state == JobState.COMPLETED
