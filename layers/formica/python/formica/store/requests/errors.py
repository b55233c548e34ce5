"""What the request store raises: DynamoDB failures and the refusals of its conditional writes."""

from __future__ import annotations

from formica.engine.walk import JobState

__all__ = [
    "RequestFinishedError",
    "RequestNotFinishedError",
    "RequestNotFoundError",
    "RequestStoreError",
    "StepConflictError",
]


class RequestStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while reading or writing requests."""


class RequestNotFoundError(RequestStoreError):
    """No such request (or it belongs to another organisation)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"job request {request_id!r} not found")
        self.request_id = request_id


class StepConflictError(RequestStoreError):
    """The request's step moved (or it was cancelled) since it was read: someone else committed."""

    def __init__(self, request_id: str, expected_step: int) -> None:
        super().__init__(f"job request {request_id!r} is no longer at step {expected_step}")
        self.request_id = request_id
        self.expected_step = expected_step


class RequestNotFinishedError(RequestStoreError):
    """The request is still PENDING or running: it cannot be restarted."""

    def __init__(self, request_id: str, job_state: JobState) -> None:
        super().__init__(f"job request {request_id!r} has not finished: {job_state}")
        self.request_id = request_id
        self.job_state = job_state


class RequestFinishedError(RequestStoreError):
    """The request already reached a final state (COMPLETED, FAILED or CANCELLED)."""

    def __init__(self, request_id: str, job_state: JobState) -> None:
        super().__init__(f"job request {request_id!r} already finished: {job_state}")
        self.request_id = request_id
        self.job_state = job_state
