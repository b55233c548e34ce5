"""Route logic for triggers: ``POST /api/triggers/{org}/{job_type}/{name}`` (a webhook call) and
``GET /api/jobs/definitions/{job_type}/triggers/dropped`` (the events rate limits dropped).

The webhook route carries no API token: the signature over the raw body is its authentication
(``formica.runtime.triggers``), and the organisation is in the path because job types are unique
only within one. Every refusal of a signature is one 401 message; a body over
``WEBHOOK_MAX_BODY_BYTES`` is 413 before anything is read.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from formica.api.errors import (
    ConflictError,
    PayloadTooLargeError,
    ResourceNotFoundError,
    UnauthorizedError,
    ValidationApiError,
)
from formica.settings import get_settings
from formica.store.triggers import TriggerRepository

WEBHOOK_MAX_BODY_BYTES = 256 * 1024
"""The largest webhook body taken (GitHub's push events are far below it)."""


class TriggerFiredResponse(BaseModel):
    """What became of a webhook call (202 in every case)."""

    request_id: str = Field(description="the request started; for a duplicate, the first one; else empty")
    filtered: bool = Field(default=False, description="the trigger's filter did not render true")
    duplicate: bool = Field(default=False, description="an event with the same dedup_key started it already")
    dropped: bool = Field(default=False, description="over the rate limit: recorded, listed as dropped")


class DroppedEventResponse(BaseModel):
    trigger: str
    reason: str
    event_id: str
    at: str
    params: dict[str, object] = Field(description="the params the request would have had")


class DroppedEventListResponse(BaseModel):
    records: list[DroppedEventResponse] = Field(description="newest first, the last 7 days, at most 100")


def receive_webhook(
    org: str,
    job_type: str,
    name: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    query: Mapping[str, str],
) -> TriggerFiredResponse:
    """Take one webhook call; raises the API's errors (401, 404, 409, 413, 400)."""
    # Cold start: the other routes never load the runtime (see services.ModuleRuntime).
    from formica.runtime import get_runtime, triggers  # noqa: PLC0415

    if len(body) > WEBHOOK_MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"a webhook body may have at most {WEBHOOK_MAX_BODY_BYTES} bytes")
    # In AWS (no local endpoint) a webhook must say how it is authenticated, even if "none".
    require_auth = get_settings().aws_endpoint_url is None
    try:
        result = triggers.receive_webhook(
            get_runtime(),
            org,
            job_type,
            name,
            body=body,
            headers=headers,
            query=query,
            require_auth=require_auth,
        )
    except triggers.TriggerSignatureError as exc:
        raise UnauthorizedError(str(exc)) from exc
    except triggers.TriggerNotFoundError as exc:
        raise ResourceNotFoundError(str(exc)) from exc
    except triggers.TriggerDisabledError as exc:
        raise ConflictError(str(exc)) from exc
    except triggers.TriggerEventError as exc:
        raise ValidationApiError(str(exc)) from exc
    outcome = triggers.TriggerOutcome
    return TriggerFiredResponse(
        request_id=result.request_id,
        filtered=result.outcome is outcome.FILTERED,
        duplicate=result.outcome is outcome.DUPLICATE,
        dropped=result.outcome is outcome.DROPPED,
    )


def list_dropped(org: str, job_type: str) -> DroppedEventListResponse:
    """The org's job type's dropped events (another organisation's are never read)."""
    store = TriggerRepository(get_settings().table_name)
    return DroppedEventListResponse(
        records=[
            DroppedEventResponse(
                trigger=event.trigger,
                reason=event.reason,
                event_id=event.event_id,
                at=event.at,
                params=event.params,
            )
            for event in store.list_dropped(org, job_type)
        ]
    )
