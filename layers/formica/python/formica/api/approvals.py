"""The approval routes: vote on a MANUAL task (approve / reject) and list what waits for a verdict.

The vote is recorded by ``formica.runtime.approvals.record_vote`` on the API's request store; the
vote that reaches the verdict answers the waiting walk through the runtime (``answer_verdict``).
The runtime is imported on first use: only these routes load it.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from formica.api.auth import Principal
from formica.api.errors import ConflictError, ForbiddenError, ResourceNotFoundError
from formica.api.services import ApiServices
from formica.store.requests import ApprovalItem, RequestNotFoundError, VoteItem

COMMENT_MAX = 1000


class VoteRequest(BaseModel):
    """The optional body of approve / reject."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=COMMENT_MAX, description="Why (recorded with the vote).")


class VoteRecord(BaseModel):
    voter: str = Field(description="The voting token's name.")
    approve: bool
    comment: str = ""
    voted_at: str


class ApprovalResponse(BaseModel):
    request_id: str
    job_type: str
    task_type: str
    step: int
    state: str = Field(description="PENDING, APPROVED, REJECTED, or CLOSED (the walk moved on without one).")
    min_approvals: int
    approvals_needed: int
    allowed_users: list[str] = Field(default_factory=list)
    require_unanimous: bool = False
    timeout_action: str
    deadline: str | None = Field(default=None, description="When the sla_deadline passes (ISO-8601).")
    created_at: str
    votes: list[VoteRecord] = Field(default_factory=list)


class ApprovalListResponse(BaseModel):
    approvals: list[ApprovalResponse]


def _response(approval: ApprovalItem, votes: list[VoteItem]) -> ApprovalResponse:
    policy = approval.policy
    return ApprovalResponse(
        request_id=approval.request_id,
        job_type=approval.job_type,
        task_type=approval.task_type,
        step=approval.step,
        state=approval.state,
        min_approvals=policy.min_approvals,
        approvals_needed=policy.approvals_needed,
        allowed_users=list(policy.allowed_users),
        require_unanimous=policy.require_unanimous,
        timeout_action=str(policy.timeout_action),
        deadline=approval.deadline,
        created_at=approval.created_at,
        votes=[
            VoteRecord(voter=vote.voter, approve=vote.approve, comment=vote.comment, voted_at=vote.voted_at)
            for vote in votes
        ],
    )


def _approvals() -> Any:
    # Cold start: the runtime (Step Functions, the walk) loads only for the routes that vote.
    return importlib.import_module("formica.runtime.approvals")


def vote(
    services: ApiServices,
    principal: Principal,
    request_id: str,
    task_type: str,
    *,
    approve: bool,
    body: VoteRequest | None = None,
) -> ApprovalResponse:
    """Record the caller's vote; the vote that reaches the verdict answers the waiting walk.

    404 for an unknown request, 409 when nothing of that task waits or the caller voted already,
    403 when the policy's allowed_users does not name the caller's token.
    """
    approvals = _approvals()
    voter = principal.token_name or principal.token_id
    try:
        outcome = approvals.record_vote(
            services.requests,
            principal.org,
            request_id,
            task_type,
            voter=voter,
            approve=approve,
            comment=(body.comment if body is not None else ""),
        )
    except RequestNotFoundError as exc:
        raise ResourceNotFoundError(f"job request {request_id!r} not found") from exc
    except approvals.VoterNotAllowedError as exc:
        raise ForbiddenError(str(exc)) from exc
    except (approvals.ApprovalNotWaitingError, approvals.AlreadyVotedError) as exc:
        raise ConflictError(str(exc)) from exc
    if outcome.verdict is not None:
        services.runtime.answer_verdict(outcome)
    return _response(outcome.approval, outcome.votes)


def list_pending(services: ApiServices, org: str) -> ApprovalListResponse:
    """The organisation's approvals still waiting for a verdict, oldest first, with their votes."""
    waiting = _approvals().pending_approvals(services.requests, org)
    return ApprovalListResponse(approvals=[_response(approval, votes) for approval, votes in waiting])
