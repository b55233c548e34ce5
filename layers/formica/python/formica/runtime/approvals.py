"""MANUAL tasks: the walk waits on a task token for the approvers' verdict.

- ``await_approval`` (the Launch Lambda, for an AWAIT_APPROVAL decision): gives the request's
  max_concurrency slot back and records the approval (the task, its policy, its deadline) under the
  request; the token Launch recorded waits, at no cost, until a verdict or the state's timeout (the
  ``sla_deadline``: the walk applies ``timeout_action``, ``formica.engine.walk``).
- ``record_vote`` (the API's approve / reject routes): one vote per voter (a conditional put), and
  when the votes reach a verdict, the approval is closed once (a conditional update); then
  ``answer_verdict`` answers the token with the verdict as the attempt's exit code, APPROVED or REJECTED
  (``go_on``: a max_concurrency slot taken again, or queued for one; then recorded, committed,
  SendTaskSuccess).
- ``pending_approvals``: the organisation's approvals still waiting (the API's listing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from formica.engine.walk import ERR_MANUAL_REJECTION, AttemptResult, TaskRun, WaitKind
from formica.jobs.errors import DefinitionError
from formica.jobs.models import EXIT_APPROVED, EXIT_REJECTED, ApprovalPolicy, RunnerKind
from formica.runtime.completion import complete_container_attempt
from formica.runtime.deps import Runtime
from formica.runtime.scheduling import give_slot_back, go_on
from formica.runtime.walker import ERR_INVALID_DEFINITION, Walker
from formica.store.requests import (
    ApprovalItem,
    JobRequestItem,
    RequestNotFoundError,
    RequestRepository,
    VoteItem,
    iso,
    now_iso,
)
from formica.store.requests.approvals import APPROVAL_CLOSED_STATE, approval_sk

logger = logging.getLogger(__name__)

APPROVAL_CLOSED = APPROVAL_CLOSED_STATE
"""An approval whose walk moved on without a verdict (cancelled, timed out)."""
COMMENT_MAX_CHARS = 1000


class ApprovalNotWaitingError(RuntimeError):
    """No approval of that task waits on the request (none, decided, or the walk moved on)."""


class VoterNotAllowedError(RuntimeError):
    """The approval's policy does not let this voter vote."""


class AlreadyVotedError(RuntimeError):
    """This voter already voted on this approval."""


@dataclass(frozen=True)
class VoteOutcome:
    """What a vote did: the approval's state after it, and every vote so far."""

    approval: ApprovalItem
    votes: list[VoteItem] = field(default_factory=list)
    verdict: str | None = None


def await_approval(runtime: Runtime, request: JobRequestItem, step: int) -> dict[str, Any]:
    """The Launch Lambda's MANUAL task: give the slot back, record what waits; the token waits."""
    current = request.walk.current
    assert current is not None  # noqa: S101 - checked by the caller
    give_slot_back(runtime, request)
    now = runtime.now()
    try:
        definition = Walker(runtime).render(
            request, task_type=current.task_type, task_retry=current.task_retry, now=now
        )
    except DefinitionError as exc:
        failed = AttemptResult(error_code=ERR_INVALID_DEFINITION, error_message=str(exc))
        complete_container_attempt(runtime, request.request_id, step, failed)
        return {"request_id": request.request_id, "step": step, "launched": True}
    policy = definition.task(current.task_type).approval_policy or ApprovalPolicy()
    deadline = None
    if policy.sla_deadline:
        deadline = iso(now + timedelta(seconds=policy.sla_deadline))
    approval = ApprovalItem(
        request_id=request.request_id,
        org=request.org,
        job_type=request.job_type,
        task_type=current.task_type,
        step=step,
        policy=policy,
        created_at=iso(now),
        deadline=deadline,
    )
    runtime.requests.put_approval(approval)
    logger.info("awaiting approval", extra={"request_id": request.request_id, "step": step})
    return {"request_id": request.request_id, "step": step, "launched": True}


def verdict(policy: ApprovalPolicy, votes: list[VoteItem]) -> str | None:
    """APPROVED, REJECTED, or None (still waiting) for these votes under ``policy``.

    Approved at ``approvals_needed`` approvals. Rejected by one rejection when unanimity is
    required, else by ``min_approvals`` rejections, and as soon as the allowed users left to vote
    can no longer bring the approvals needed.
    """
    approvals = sum(1 for vote in votes if vote.approve)
    rejections = len(votes) - approvals
    needed = policy.approvals_needed
    if policy.require_unanimous and rejections:
        return EXIT_REJECTED
    if approvals >= needed:
        return EXIT_APPROVED
    if rejections >= policy.min_approvals:
        return EXIT_REJECTED
    if policy.allowed_users:
        left = set(policy.allowed_users) - {vote.voter for vote in votes}
        if approvals + len(left) < needed:
            return EXIT_REJECTED
    return None


def _waits_for_verdict(run: TaskRun) -> bool:
    return run.runner == RunnerKind.MANUAL or run.waiting == WaitKind.APPROVAL


def _waiting(requests: RequestRepository, request: JobRequestItem, task_type: str) -> ApprovalItem:
    current = request.walk.current
    if request.is_final or current is None or not _waits_for_verdict(current):
        raise ApprovalNotWaitingError(f"request {request.request_id} waits for no approval")
    if current.task_type != task_type:
        raise ApprovalNotWaitingError(
            f"request {request.request_id} waits for task {current.task_type}'s approval, not {task_type}'s"
        )
    approval = requests.get_approval(request.request_id, request.step)
    if approval is None or not approval.is_pending:
        raise ApprovalNotWaitingError(f"task {task_type} of request {request.request_id} waits for no vote")
    return approval


def record_vote(
    requests: RequestRepository,
    org: str,
    request_id: str,
    task_type: str,
    *,
    voter: str,
    approve: bool,
    comment: str = "",
) -> VoteOutcome:
    """Record ``voter``'s vote on the approval ``task_type`` of the request waits for, and close the
    approval (once) when the votes reach a verdict: ``VoteOutcome.verdict`` is set for the one call
    that closed it, which must then answer the walk (``answer_verdict``).

    Raises
    ------
    RequestNotFoundError
        No such request in ``org``.
    ApprovalNotWaitingError
        The request waits for no approval of that task.
    VoterNotAllowedError
        The policy's ``allowed_users`` does not name ``voter``.
    AlreadyVotedError
        ``voter`` already voted on this approval.
    """
    request = requests.get_for_org(org, request_id)
    if request is None:
        raise RequestNotFoundError(f"job request {request_id} not found")
    approval = _waiting(requests, request, task_type)
    policy = approval.policy
    if policy.allowed_users and voter not in policy.allowed_users:
        raise VoterNotAllowedError(f"token {voter!r} is not among task {task_type}'s allowed_users")
    vote = VoteItem(
        request_id=request_id,
        step=approval.step,
        voter=voter,
        approve=approve,
        comment=comment[:COMMENT_MAX_CHARS],
        # record_vote takes the API's repository, not a Runtime: the vote is stamped by the wall clock.
        voted_at=now_iso(),
    )
    if not requests.put_vote(vote):
        raise AlreadyVotedError(f"token {voter!r} already voted on task {task_type} of request {request_id}")
    logger.info(
        "approval vote recorded",
        extra={"request_id": request_id, "task_type": task_type, "voter": voter, "approve": approve},
    )
    votes = requests.list_votes(request_id, approval.step)
    reached = verdict(policy, votes)
    if reached is None or not requests.close_approval(request_id, approval.step, reached, now_iso()):
        latest = requests.get_approval(request_id, approval.step) or approval
        return VoteOutcome(approval=latest, votes=votes)
    decided = approval.model_copy(update={"state": reached})
    return VoteOutcome(approval=decided, votes=votes, verdict=reached)


def cast_vote(
    runtime: Runtime,
    org: str,
    request_id: str,
    task_type: str,
    *,
    voter: str,
    approve: bool,
    comment: str = "",
) -> VoteOutcome:
    """``record_vote``, then, when this vote reached the verdict, answer the walk with it."""
    outcome = record_vote(
        runtime.requests, org, request_id, task_type, voter=voter, approve=approve, comment=comment
    )
    answer_verdict(runtime, outcome)
    return outcome


def answer_verdict(runtime: Runtime, outcome: VoteOutcome) -> bool:
    """Answer the waiting token with the verdict ``outcome`` reached (nothing when it reached none):
    the attempt recorded with exit code APPROVED or REJECTED, the step committed, the token told."""
    if outcome.verdict is None:
        return False
    return _answer(runtime, outcome.approval, outcome.verdict, outcome.votes)


def _answer(runtime: Runtime, approval: ApprovalItem, reached: str, votes: list[VoteItem]) -> bool:
    approvers = ",".join(vote.voter for vote in votes if vote.approve)
    rejecters = ",".join(vote.voter for vote in votes if not vote.approve)
    outputs = {"ApprovalVerdict": reached, "ApprovedBy": approvers, "RejectedBy": rejecters}
    if reached == EXIT_APPROVED:
        result = AttemptResult(exit_code=EXIT_APPROVED, outputs=outputs)
    else:
        reasons = "; ".join(
            f"{vote.voter}: {vote.comment}" for vote in votes if not vote.approve and vote.comment
        )
        message = f"task {approval.task_type} was rejected by {rejecters or 'its approvers'}"
        result = AttemptResult(
            exit_code=EXIT_REJECTED,
            error_code=ERR_MANUAL_REJECTION,
            error_message=(message + (f" ({reasons})" if reasons else ""))[:2000],
            outputs=outputs,
        )
    request = runtime.requests.get(approval.request_id)
    if request is None:
        return False
    # The request gave its slot back while it waited: it takes one again (or queues) to go on.
    sent = go_on(runtime, request, approval.step, result)
    runtime.requests.answered(approval.request_id, approval_sk(approval.step))
    return sent


def answer_again(runtime: Runtime, request_id: str, step: int) -> bool:
    """Answer the walk with the verdict recorded at ``step`` (the sweep, when the first answer was
    lost); False when no verdict is recorded there."""
    approval = runtime.requests.get_approval(request_id, step)
    if approval is None or approval.state not in (EXIT_APPROVED, EXIT_REJECTED):
        return False
    return _answer(runtime, approval, approval.state, runtime.requests.list_votes(request_id, step))


def pending_approvals(requests: RequestRepository, org: str) -> list[tuple[ApprovalItem, list[VoteItem]]]:
    """The organisation's approvals still waiting, with their votes; an approval whose walk moved
    on (cancelled, timed out) is closed as it is found."""
    waiting: list[tuple[ApprovalItem, list[VoteItem]]] = []
    for approval in requests.pending_approvals(org):
        request = requests.get(approval.request_id)
        if request is None or request.is_final or request.step != approval.step:
            # Only a repository here (the API's listing): the closing is stamped by the wall clock.
            requests.close_approval(approval.request_id, approval.step, APPROVAL_CLOSED, now_iso())
            continue
        waiting.append((approval, requests.list_votes(approval.request_id, approval.step)))
    return waiting
