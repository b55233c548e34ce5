"""A MANUAL task's approval and its votes, stored under the request's partition.

Items (docs/architecture.md, the table contract):

- approval  ``pk=REQ#{id}``, ``sk=APPROVAL#{step:08d}``: what waits (task, policy, deadline) and,
            once reached, the verdict; while it waits it is in gsi2 ``ORG#{org}#APPROVALS`` /
            ``{created_at}#{id}`` (the organisation's pending approvals, without a scan)
- vote      ``pk=REQ#{id}``, ``sk=APPROVAL#{step:08d}#VOTE#{voter}``: who, approve or reject, when,
            the comment
- resume    ``pk=REQ#{id}``, ``sk=RESUME#{step:08d}``: who resumed the job paused at that step, when
            (put once: a second resume of the same pause is refused)

A verdict and a resume are recorded before the walk is answered; until it is (``answered``), the
approval or resume item is in gsi2 ``ANSWERS#UNSENT`` / ``{at}#{id}``, in the same write that records
it, so the sweep answers again what a crash lost (``formica.runtime.pauses.repair_lost_answers``).

A voter votes once (the vote's put is conditional on its absence); the verdict is reached once (a
conditional update from PENDING).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from formica.jobs.models import ApprovalPolicy
from formica.store.dynamo import DynamoTable
from formica.store.requests.errors import RequestStoreError
from formica.store.schema import request_pk

__all__ = ["APPROVAL_PENDING", "ApprovalItem", "ApprovalRecords", "UnsentAnswer", "VoteItem"]

APPROVAL_PENDING = "PENDING"
APPROVAL_CLOSED_STATE = "CLOSED"
APPROVAL_SK_PREFIX = "APPROVAL#"
RESUME_SK_PREFIX = "RESUME#"
UNSENT_ANSWERS = "ANSWERS#UNSENT"
"""gsi2pk of a verdict or resume recorded whose answer to the walk is not known to be sent."""


def approval_sk(step: int) -> str:
    return f"{APPROVAL_SK_PREFIX}{step:08d}"


def resume_sk(step: int) -> str:
    return f"{RESUME_SK_PREFIX}{step:08d}"


def approvals_gsi2pk(org: str) -> str:
    return f"ORG#{org}#APPROVALS"


class ApprovalItem(BaseModel):
    """A MANUAL task waiting for (or given) its verdict at one walk step."""

    request_id: str
    org: str
    job_type: str
    task_type: str
    step: int
    policy: ApprovalPolicy
    created_at: str
    deadline: str | None = None
    state: str = APPROVAL_PENDING
    """PENDING, then APPROVED or REJECTED (the verdict), or CLOSED (the walk moved on without one)."""
    decided_at: str | None = None

    @property
    def is_pending(self) -> bool:
        return self.state == APPROVAL_PENDING

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": request_pk(self.request_id)},
            "sk": {"S": approval_sk(self.step)},
            "kind": {"S": "APPROVAL"},
            "request_id": {"S": self.request_id},
            "org": {"S": self.org},
            "job_type": {"S": self.job_type},
            "task_type": {"S": self.task_type},
            "step": {"N": str(self.step)},
            "policy_json": {"S": self.policy.model_dump_json(exclude_defaults=True)},
            "created_at": {"S": self.created_at},
            "approval_state": {"S": self.state},
        }
        for name in ("deadline", "decided_at"):
            value = getattr(self, name)
            if value is not None:
                item[name] = {"S": value}
        if self.is_pending:
            item["gsi2pk"] = {"S": approvals_gsi2pk(self.org)}
            item["gsi2sk"] = {"S": f"{self.created_at}#{self.request_id}"}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ApprovalItem:
        return cls(
            request_id=item["request_id"]["S"],
            org=item["org"]["S"],
            job_type=item["job_type"]["S"],
            task_type=item["task_type"]["S"],
            step=int(item["step"]["N"]),
            policy=ApprovalPolicy.model_validate_json(item["policy_json"]["S"]),
            created_at=item["created_at"]["S"],
            deadline=item["deadline"]["S"] if "deadline" in item else None,
            state=item["approval_state"]["S"],
            decided_at=item["decided_at"]["S"] if "decided_at" in item else None,
        )


class UnsentAnswer(BaseModel):
    """A verdict (kind APPROVAL) or a resume (kind RESUME) whose answer may not have reached the walk."""

    request_id: str
    step: int
    sk: str
    kind: str
    by: str = ""


class VoteItem(BaseModel):
    """One voter's vote on one approval."""

    request_id: str
    step: int
    voter: str
    approve: bool
    comment: str = ""
    voted_at: str

    def to_item(self) -> dict[str, Any]:
        return {
            "pk": {"S": request_pk(self.request_id)},
            "sk": {"S": f"{approval_sk(self.step)}#VOTE#{self.voter}"},
            "kind": {"S": "VOTE"},
            "request_id": {"S": self.request_id},
            "step": {"N": str(self.step)},
            "voter": {"S": self.voter},
            "approve": {"BOOL": self.approve},
            "comment": {"S": self.comment},
            "voted_at": {"S": self.voted_at},
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> VoteItem:
        return cls(
            request_id=item["request_id"]["S"],
            step=int(item["step"]["N"]),
            voter=item["voter"]["S"],
            approve=bool(item["approve"]["BOOL"]),
            comment=item.get("comment", {}).get("S", ""),
            voted_at=item["voted_at"]["S"],
        )


class ApprovalRecords(DynamoTable):
    """The approval methods of ``RequestRepository`` (boto3, the single table)."""

    def put_approval(self, approval: ApprovalItem) -> bool:
        """Record what waits; False when this step's approval is recorded already (a replay)."""
        return self._put_once(approval.to_item(), f"approval of {approval.request_id!r}")

    def get_approval(self, request_id: str, step: int) -> ApprovalItem | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": approval_sk(step)}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not read the approval of {request_id!r}: {exc}") from exc
        item = response.get("Item")
        return None if item is None else ApprovalItem.from_item(item)

    def put_vote(self, vote: VoteItem) -> bool:
        """Record a vote; False when this voter already voted on this approval."""
        return self._put_once(vote.to_item(), f"vote of {vote.voter!r} on {vote.request_id!r}")

    def list_votes(self, request_id: str, step: int) -> list[VoteItem]:
        """Every vote on the approval at ``step`` (consistent read)."""
        try:
            items, _ = self._query_prefix_items(request_pk(request_id), f"{approval_sk(step)}#VOTE#")
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not list the votes on {request_id!r}: {exc}") from exc
        return sorted((VoteItem.from_item(item) for item in items), key=lambda vote: vote.voted_at)

    def close_approval(self, request_id: str, step: int, state: str, at: str) -> bool:
        """PENDING -> ``state`` (the verdict, or CLOSED), once: False when it was no longer pending.
        A verdict (not CLOSED) waits in gsi2 ``ANSWERS#UNSENT`` until ``answered``."""
        values = {":state": {"S": state}, ":at": {"S": at}, ":pending": {"S": APPROVAL_PENDING}}
        if state == APPROVAL_CLOSED_STATE:
            expression = "SET approval_state = :state, decided_at = :at REMOVE gsi2pk, gsi2sk"
        else:
            expression = "SET approval_state = :state, decided_at = :at, gsi2pk = :unsent, gsi2sk = :sk"
            values[":unsent"] = {"S": UNSENT_ANSWERS}
            values[":sk"] = {"S": f"{at}#{request_id}"}
        try:
            return self._update_if(
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": approval_sk(step)}},
                UpdateExpression=expression,
                ConditionExpression="approval_state = :pending",
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not close the approval of {request_id!r}: {exc}") from exc

    def pending_approvals(self, org: str, *, max_items: int = 500) -> list[ApprovalItem]:
        """The organisation's approvals still PENDING, oldest first (gsi2, eventually consistent)."""
        try:
            items = self._gsi2_items(approvals_gsi2pk(org), max_items=max_items)
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not list pending approvals: {exc}") from exc
        return [ApprovalItem.from_item(item) for item in items]

    def put_resume(self, request_id: str, step: int, *, by: str, at: str) -> bool:
        """Record who resumed the pause at ``step`` (in gsi2 ``ANSWERS#UNSENT`` until ``answered``);
        False when it was resumed already."""
        item = {
            "pk": {"S": request_pk(request_id)},
            "sk": {"S": resume_sk(step)},
            "kind": {"S": "RESUME"},
            "request_id": {"S": request_id},
            "step": {"N": str(step)},
            "resumed_by": {"S": by},
            "resumed_at": {"S": at},
            "gsi2pk": {"S": UNSENT_ANSWERS},
            "gsi2sk": {"S": f"{at}#{request_id}"},
        }
        return self._put_once(item, f"resume of {request_id!r}")

    def answered(self, request_id: str, sk: str) -> None:
        """The walk was answered (or queued for a slot) for this verdict or resume: out of gsi2."""
        try:
            self._update_if(
                Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": sk}},
                UpdateExpression="REMOVE gsi2pk, gsi2sk",
                ConditionExpression="gsi2pk = :unsent",
                ExpressionAttributeValues={":unsent": {"S": UNSENT_ANSWERS}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not mark the answer of {request_id!r} sent: {exc}") from exc

    def unsent_answers(self, *, before: str, max_items: int = 100) -> list[UnsentAnswer]:
        """Verdicts and resumes recorded before ``before`` whose answer is not known to be sent."""
        try:
            items = self._gsi2_items(UNSENT_ANSWERS, max_items=max_items)
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not list unsent answers: {exc}") from exc
        return [
            UnsentAnswer(
                request_id=item["request_id"]["S"],
                step=int(item["step"]["N"]),
                sk=item["sk"]["S"],
                kind=item["kind"]["S"],
                by=item.get("resumed_by", {}).get("S", ""),
            )
            for item in items
            if item["gsi2sk"]["S"] < before
        ]

    def _put_once(self, item: dict[str, Any], what: str) -> bool:
        """Put a new item (an approval, a vote, a child); False when it exists already."""
        try:
            return self._put_if_absent(item)
        except (ClientError, BotoCoreError) as exc:
            raise RequestStoreError(f"could not record the {what}: {exc}") from exc
