"""Request and response shapes of the REST API (JSON in snake_case).

Requests forbid unknown fields, so a typo answers 400 naming the field instead of being ignored.
Exit codes are strings, as in formicary ("0", "404", "SKIPPED").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from formica.jobs import limits
from formica.jobs.limits import NAME_MAX_CHARS, NAME_PATTERN
from formica.store.tokens import TOKEN_NAME_MAX_CHARS, TokenScope

JOB_TYPE_MAX = NAME_MAX_CHARS
"""A job type (and a task type) follows the language's name rule (``formica.jobs.limits``)."""
JOB_TYPE_PATTERN = f"^{NAME_PATTERN}$"
ID_MAX = 128
KEY_MAX = 200
"""user_key and the Idempotency-Key header: 200 characters, at most 800 bytes inside a 2,048-byte key."""
DESCRIPTION_MAX = 1000
LIST_LIMIT_MAX = 100
LIST_LIMIT_DEFAULT = 50
# A request's params as JSON: one limit for submits (413) and forks (formica.jobs.limits).
PARAMS_MAX_BYTES = limits.PARAMS_MAX_BYTES


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


RequestModel = _Request
"""The base of every request body model: ``errors.validation_details`` suggests its fields for a typo."""


# -- health ---------------------------------------------------------------------------------------


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


# -- definitions ----------------------------------------------------------------------------------


class TaskSummary(BaseModel):
    task_type: str
    method: str | None = Field(
        description="formicary method as written; CONTAINER for a task written with only a container"
    )
    next_tasks: list[str] = Field(description="tasks named by on_completed, on_failed and on_exit_code")


class DefinitionResponse(BaseModel):
    """One version of a job type, with the settings of its head."""

    id: str
    job_type: str
    version: int
    latest_version: int
    created_at: str
    updated_at: str
    disabled: bool
    max_concurrency: int = Field(description="0: unlimited")
    cron_trigger: str | None = None
    next_fire_times: list[str] = Field(
        default_factory=list,
        description="the cron_trigger's next 5 fire times (ISO-8601, UTC); empty when none or disabled",
    )
    description: str | None = None
    required_params: list[str] = Field(default_factory=list)
    tasks: list[TaskSummary]


class DefinitionSummary(BaseModel):
    """A job type in a listing: its head, without the tasks."""

    id: str
    job_type: str
    latest_version: int
    created_at: str
    updated_at: str
    disabled: bool
    max_concurrency: int
    cron_trigger: str | None = None
    description: str | None = None


class DefinitionListResponse(BaseModel):
    records: list[DefinitionSummary]
    next_token: str | None = None


class DefinitionVersionRecord(BaseModel):
    """One stored version of a job type, without its text (GET .../{job_type}?version=N has it)."""

    version: int
    id: str
    sha256: str = Field(description="of the text as uploaded: an identical upload keeps the version")
    created_at: str
    latest: bool = Field(description="true for the version a submission without job_version runs")


class DefinitionVersionListResponse(BaseModel):
    """A job type's versions, newest first."""

    job_type: str
    latest_version: int
    records: list[DefinitionVersionRecord]
    next_token: str | None = None


class ConcurrencyRequest(_Request):
    max_concurrency: int = Field(ge=0, le=10_000, description="0: unlimited")


class DeletedResponse(BaseModel):
    deleted: bool = True
    job_type: str
    versions: int


# -- requests -------------------------------------------------------------------------------------


class SubmitJobRequest(_Request):
    job_type: str = Field(min_length=1, max_length=JOB_TYPE_MAX, pattern=JOB_TYPE_PATTERN)
    params: dict[str, Any] = Field(
        default_factory=dict, description=f"at most {PARAMS_MAX_BYTES} bytes as JSON (else 413)"
    )
    job_version: int | None = Field(default=None, ge=1, description="default: the latest version")
    scheduled_at: datetime | None = Field(default=None, description="ISO-8601; in the future: stays PENDING")
    job_priority: int = Field(default=5, ge=0, le=9999, description="higher runs first among PENDING")
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    user_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=KEY_MAX,
        description="repeating a user_key returns the first request",
    )


class TaskExecutionResponse(BaseModel):
    task_type: str
    method: str | None = None
    task_state: str
    exit_code: str | None = None
    exit_codes: list[str] = Field(
        default_factory=list,
        description="each attempt's exit code (its error code when it had none), the last 20, oldest first",
    )
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    task_retry: int = Field(default=0, description="how often the task was restarted (RESTART_TASK, retry)")
    job_retry: int = Field(default=0, description="the job attempt (0: the first) this execution belongs to")
    started_at: str | None = None
    ended_at: str | None = None


class ChildRequestSummary(BaseModel):
    """A request one of the parent's FORK_JOB tasks started, as the parent recorded it."""

    id: str
    job_type: str
    fork_task: str = Field(description="the parent's FORK_JOB task that started it")
    job_state: str = Field(
        description="as the parent recorded it: PENDING until the child ends, then its final state "
        "(GET the child, or list with parent_id, for the state it is in now)"
    )
    error_code: str | None = None


class LambdaCostResponse(BaseModel):
    """One function's invocations for a request and their GB-seconds (configured memory x billed time)."""

    function: str
    invocations: int
    gb_seconds: float


class CostDollarsResponse(BaseModel):
    """Dollars at the list prices of ``prices_region`` (``prices_as_of``), unrounded."""

    transitions: float
    lambdas: float
    fargate: float
    dynamodb: float
    s3: float
    total: float


class RequestCostResponse(BaseModel):
    """What a request used, counted as its walk ran, and its dollars at list prices."""

    transitions: int = Field(description="Step Functions state transitions (states entered)")
    lambda_invocations: int
    lambda_gb_seconds: float
    lambdas: list[LambdaCostResponse] = Field(default_factory=list)
    fargate_vcpu_seconds: float
    fargate_gb_seconds: float
    dynamodb_read_units: int
    dynamodb_write_units: int
    s3_write_requests: int = Field(description="PUT, COPY, POST and LIST requests")
    s3_read_requests: int = Field(description="GET and every other request")
    dollars: CostDollarsResponse
    prices_region: str = Field(description="the region whose list prices were applied")
    prices_as_of: str


class JobRequestResponse(BaseModel):
    id: str
    job_type: str
    job_version: int
    job_state: str = Field(
        description="PENDING, STARTED, EXECUTING, COMPLETED, FAILED or CANCELLED (READY, formicary's state "
        "between scheduling and start, is never stored: Formica admits and starts in one write)"
    )
    job_priority: int = 5
    description: str | None = None
    user_key: str | None = None
    scheduled_at: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    retried: int = 0
    created_at: str
    started_at: str | None = None
    ended_at: str | None = None
    tasks: list[TaskExecutionResponse] = Field(default_factory=list)
    parent_id: str | None = Field(
        default=None,
        description="the request whose FORK_JOB task started this one; null when it was submitted "
        "(or scheduled) directly",
    )
    children: list[ChildRequestSummary] | None = Field(
        default=None,
        description="the requests this one's FORK_JOB tasks started, in creation order; only in GET of one "
        "request (null in listings)",
    )
    cost: RequestCostResponse | None = Field(
        default=None,
        description="what the request used so far and its dollars at list prices; only in GET of one "
        "request (null in listings)",
    )


class GraphTaskState(BaseModel):
    """A task of the request's definition as the walk left it (its latest execution)."""

    task_type: str
    node: str = Field(description="the task's node id in `mermaid`")
    task_state: str | None = Field(description="null: the walk never entered the task")
    exit_code: str | None = None
    attempts: int = 0
    executions: int = Field(default=0, description="how many times the walk entered the task")


class GraphEdge(BaseModel):
    """One move of the walk from a task to the next, in the order taken."""

    from_task: str
    to_task: str
    label: str = Field(
        description="the route taken: completed, failed, exit N; always_run for a task run because the "
        "job was failing; restart for the first task after a job restart"
    )
    job_retry: int = Field(description="the job attempt (0: the first) the move belongs to")


class RequestGraphResponse(BaseModel):
    """The request's definition as a graph, with the walk taken drawn on it."""

    request_id: str
    job_type: str
    job_version: int
    job_state: str
    mermaid: str = Field(
        description="the definition's Mermaid flowchart with each task coloured by its state and the "
        "edges the walk followed drawn thick"
    )
    tasks: list[GraphTaskState]
    edges: list[GraphEdge]


class JobRequestListResponse(BaseModel):
    records: list[JobRequestResponse]
    next_token: str | None = None


# -- artifacts ------------------------------------------------------------------------------------


class ArtifactResponse(BaseModel):
    id: str
    task_type: str
    name: str
    size: int
    sha256: str
    content_type: str
    download_url: str = Field(description="the API route that redirects to a short-lived presigned URL")
    instance: int | None = Field(
        default=None,
        description="the task fan-out instance (its item, from 0) that uploaded it, its name under "
        "instance-N/; null: an attempt of the task itself",
    )


class ArtifactListResponse(BaseModel):
    records: list[ArtifactResponse]


# -- tokens ---------------------------------------------------------------------------------------


DEFAULT_TOKEN_SCOPES = (TokenScope.READ, TokenScope.SUBMIT)
"""A new token's scopes when the request names none: an everyday user's, never admin by accident."""


class CreateTokenRequest(_Request):
    name: str = Field(
        min_length=1, max_length=TOKEN_NAME_MAX_CHARS, description="unique among the organisation's tokens"
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    scopes: list[TokenScope] = Field(
        default_factory=lambda: list(DEFAULT_TOKEN_SCOPES),
        min_length=1,
        max_length=len(TokenScope),
        description="what the token may do; only scopes the calling token holds (admin holds all)",
    )


class TokenResponse(BaseModel):
    id: str
    name: str
    org: str
    scopes: list[TokenScope] = Field(description="admin holds every other scope")
    created_at: str
    expires_at: str | None = None
    revoked_at: str | None = None


class CreatedTokenResponse(TokenResponse):
    token: str = Field(description="the secret: shown once, never stored")


class TokenListResponse(BaseModel):
    records: list[TokenResponse]
    next_token: str | None = None
