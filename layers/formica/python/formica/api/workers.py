"""The worker routes: a worker of the organisation's own (``formica worker``) leases a WEBSOCKET task's
attempt, heartbeats and reports it (``formica.runtime.workers`` does the work).

The caller is a token with the ``worker`` scope; everything is within its organisation. The lease id
travels in the body, never in a URL (URLs are written to access logs). The runtime is imported on
first use: only these routes load it.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from formica.api.errors import ConflictError, ResourceNotFoundError, ValidationApiError

LEASE_MAX = 100


class WorkerAttemptResponse(BaseModel):
    """A poll's answer: the attempt leased, or none (``lease`` null) when nothing waits."""

    lease: str | None = Field(
        default=None, description="The lease id (secret): heartbeat and report with it."
    )
    lease_seconds: int = Field(default=0, description="The lease lapses this long after the last heartbeat.")
    heartbeat_seconds: int = Field(default=0, description="How often to heartbeat.")
    attempt: dict[str, Any] | None = Field(
        default=None,
        description="The rendered task, its context, and a capability for its files (exchanged at "
        "POST /api/grants), as the SHELL sandbox gets it.",
    )


class LeaseRequest(BaseModel):
    """The body of a heartbeat."""

    model_config = ConfigDict(extra="forbid")

    lease: str = Field(min_length=1, max_length=LEASE_MAX)


class HeartbeatResponse(BaseModel):
    lease_seconds: int
    heartbeat_seconds: int


class WorkerReportRequest(BaseModel):
    """The body of a report: the lease and the attempt's outcome."""

    model_config = ConfigDict(extra="forbid")

    lease: str = Field(min_length=1, max_length=LEASE_MAX)
    outcome: dict[str, Any] = Field(
        description="exit_code, error_code, error_message, log, outputs, artifacts, warnings (the "
        "sandbox's outcome; what cannot be checked is dropped)"
    )


class WorkerReportResponse(BaseModel):
    request_id: str
    step: int
    accepted: bool


def _workers() -> Any:
    # Cold start: the runtime (the walk, SQS) loads only for the worker routes.
    return importlib.import_module("formica.runtime.workers")


def _runtime() -> Any:
    return importlib.import_module("formica.runtime").get_runtime()


def poll(org: str, tags: str) -> WorkerAttemptResponse:
    """Lease one waiting attempt of ``org`` whose tags the worker's (comma-separated) cover; 400 for
    bad tags."""
    workers = _workers()
    try:
        leased = workers.poll(_runtime(), org, [tag for tag in tags.split(",") if tag.strip()])
    except workers.WorkerRequestError as exc:
        raise ValidationApiError(str(exc)) from exc
    return WorkerAttemptResponse() if leased is None else WorkerAttemptResponse(**leased)


def heartbeat(org: str, body: LeaseRequest) -> HeartbeatResponse:
    """Extend the lease; 404 for an unknown lease, 409 when it is no longer the worker's."""
    workers = _workers()
    try:
        return HeartbeatResponse(**workers.heartbeat(_runtime(), org, body.lease))
    except workers.LeaseNotFoundError as exc:
        raise ResourceNotFoundError("no such lease") from exc
    except workers.LeaseLostError as exc:
        raise ConflictError(str(exc)) from exc


def report(org: str, body: WorkerReportRequest) -> WorkerReportResponse:
    """Record the attempt's outcome and advance the walk; 404 for an unknown lease, 409 when it is no
    longer the worker's or was reported, 400 for an outcome that is not one."""
    workers = _workers()
    try:
        return WorkerReportResponse(**workers.complete(_runtime(), org, body.lease, body.outcome))
    except workers.LeaseNotFoundError as exc:
        raise ResourceNotFoundError("no such lease") from exc
    except workers.LeaseLostError as exc:
        raise ConflictError(str(exc)) from exc
    except ValueError as exc:
        raise ValidationApiError(f"outcome: {exc}"[:500]) from exc
