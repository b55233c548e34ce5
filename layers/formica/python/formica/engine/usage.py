"""What one request used, counted as its walk runs: state transitions, Lambda, Fargate, DynamoDB, S3.

Pure: the counters and the rule that says how many state transitions a committed step causes.
Each walk step is committed with one conditional write (``RequestRepository.commit_step``); the
usage of the invocation that commits rides on that write as an atomic ADD, so a replayed call (its
step guard fails) adds nothing and two writers never both count. The prices that turn usage into
dollars are ``formica.engine.pricing``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from formica.engine.walk import Decision, path_events

__all__ = ["LambdaUsage", "RequestUsage", "StepEntry", "step_transitions"]


class StepEntry(StrEnum):
    """How the invocation that commits a step was reached, beyond the decision's own path.

    ``DECIDED``: a task Lambda, a container's completion or a starter (the execution begins at
    Route with the decision as input): no state of its own is left to count. ``BEGIN``: an
    execution started with ``{request_id}`` alone entered Route and Begin before deciding.
    ``CATCH``: a task state failed and its Catch entered Advance. ``FATAL``: Advance failed and its
    Catch entered AdvanceFailed, which goes straight to Failed (no Route).
    """

    DECIDED = "DECIDED"
    BEGIN = "BEGIN"
    CATCH = "CATCH"
    FATAL = "FATAL"


_ENTRY_STATES = {StepEntry.DECIDED: 0, StepEntry.BEGIN: 2, StepEntry.CATCH: 1}
_FATAL_STATES = 2
"""AdvanceFailed, then Failed."""


def step_transitions(decision: Decision, entry: StepEntry = StepEntry.DECIDED) -> int:
    """State transitions (states entered) that committing ``decision`` accounts for.

    A committed decision is read by the Choice (Route) and sends the execution down its path
    (``walk.path_events``: a Wait when it has a delay, the task state; ContinueAsNew and Continued;
    or the end state), which ends where the next commit is made. So every state entered belongs to
    exactly one commit, and the sum over a request's commits is its executions' states entered.

    Parameters
    ----------
    decision:
        The decision the step commits.
    entry:
        The states entered before the committing invocation that no earlier decision paid for.

    Returns
    -------
    int
        States entered, as Step Functions Standard bills them (retries of a Lambda state excepted:
        a retry re-runs a state the walk cannot see).
    """
    if entry == StepEntry.FATAL:
        return _FATAL_STATES
    return _ENTRY_STATES[entry] + path_events(decision)[1]


class LambdaUsage(BaseModel):
    """One function's invocations for a request and their memory x billed time."""

    invocations: int = 0
    mb_ms: int = 0
    """Configured memory (MB) x duration (ms, rounded up per invocation): GB-seconds x 1,024,000."""

    @property
    def gb_seconds(self) -> float:
        return self.mb_ms / 1024 / 1000


class RequestUsage(BaseModel):
    """What a request (or an invocation, before it is added to its request) used.

    DynamoDB requests are counted as request units of one per item read or written (two per item of
    a transaction): a lower bound for items over 4 KB read or 1 KB written. S3 requests are the ones
    Formica's own code makes; uploads and downloads through presigned URLs are not seen.
    """

    transitions: int = 0
    lambdas: dict[str, LambdaUsage] = Field(default_factory=dict)
    fargate_cpu_unit_ms: int = 0
    """ECS CPU units (1,024 per vCPU) x milliseconds billed (image pull to stop)."""
    fargate_mib_ms: int = 0
    """Task memory (MiB) x milliseconds billed."""
    dynamodb_read_units: int = 0
    dynamodb_write_units: int = 0
    s3_write_requests: int = 0
    """PUT, COPY, POST and LIST requests (S3's dearer tier)."""
    s3_read_requests: int = 0
    """GET, HEAD and every other request."""

    @property
    def fargate_vcpu_seconds(self) -> float:
        return self.fargate_cpu_unit_ms / 1024 / 1000

    @property
    def fargate_gb_seconds(self) -> float:
        return self.fargate_mib_ms / 1024 / 1000

    @property
    def lambda_gb_seconds(self) -> float:
        return sum(usage.gb_seconds for usage in self.lambdas.values())

    @property
    def lambda_invocations(self) -> int:
        return sum(usage.invocations for usage in self.lambdas.values())

    def is_empty(self) -> bool:
        return self == RequestUsage()

    def plus(self, other: RequestUsage) -> RequestUsage:
        """The sum of two usages (a new object)."""
        lambdas = {name: usage.model_copy() for name, usage in self.lambdas.items()}
        for name, usage in other.lambdas.items():
            mine = lambdas.setdefault(name, LambdaUsage())
            mine.invocations += usage.invocations
            mine.mb_ms += usage.mb_ms
        return RequestUsage(
            transitions=self.transitions + other.transitions,
            lambdas=lambdas,
            fargate_cpu_unit_ms=self.fargate_cpu_unit_ms + other.fargate_cpu_unit_ms,
            fargate_mib_ms=self.fargate_mib_ms + other.fargate_mib_ms,
            dynamodb_read_units=self.dynamodb_read_units + other.dynamodb_read_units,
            dynamodb_write_units=self.dynamodb_write_units + other.dynamodb_write_units,
            s3_write_requests=self.s3_write_requests + other.s3_write_requests,
            s3_read_requests=self.s3_read_requests + other.s3_read_requests,
        )
