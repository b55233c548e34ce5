"""Route logic for ``POST /api/grants``: an attempt's capability exchanged for freshly signed URLs.

The route carries no API token: the capability in the body is the credential (it names one attempt
of one organisation, and nothing in the body can widen what it grants). An unknown, malformed or
expired capability is 401, with one message for all three. A ``live_chunk`` asks for one chunk of
the attempt's running log instead (``runners.grants.exchange_live_chunk``): a chunk the capability
may not write (out of order, too large, its count spent) is 409 with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from formica.api.errors import ConflictError, UnauthorizedError
from formica.api.services import ApiServices
from formica.runners.grants import (
    AttemptGrant,
    CapabilityRefusedError,
    LiveChunkRange,
    LiveChunkRefusedError,
    curl_config,
    exchange_capability,
    exchange_live_chunk,
)
from formica.store.grants import CAPABILITY_MAX_CHARS

__all__ = ["AttemptGrant", "GrantExchangeRequest", "exchange", "exchange_as_curl_config"]

GRANT_REFUSED = "the capability is unknown or has expired"


class GrantExchangeRequest(BaseModel):
    """What a runner sends: its capability, and the form it wants the grant in."""

    model_config = ConfigDict(extra="forbid")

    capability: str = Field(min_length=1, max_length=CAPABILITY_MAX_CHARS)
    format: Literal["json", "curl"] = Field(
        default="json", description="json: the grant; curl: a curl config file (the helper containers)"
    )
    live_chunk: LiveChunkRange | None = Field(
        default=None,
        description="ask for a presigned PUT of this chunk of the attempt's running log only",
    )


def exchange(
    services: ApiServices, request: GrantExchangeRequest, *, now: datetime | None = None
) -> AttemptGrant:
    """The grant of ``request.capability`` (only the live chunk's PUT when one is asked for); 401
    when the capability is refused, 409 when the chunk is."""
    moment = now or datetime.now(UTC)
    try:
        if request.live_chunk is not None:
            return exchange_live_chunk(
                services.grants, services.blobs, request.capability, request.live_chunk, now=moment
            )
        return exchange_capability(services.grants, services.blobs, request.capability, now=moment)
    except CapabilityRefusedError as exc:
        raise UnauthorizedError(GRANT_REFUSED) from exc
    except LiveChunkRefusedError as exc:
        raise ConflictError(str(exc)) from exc


def exchange_as_curl_config(services: ApiServices, request: GrantExchangeRequest) -> str:
    """The grant as a curl config file: a helper holds a download, an upload or a live log
    capability (a live chunk's answer is its PUT: the URL and the content type to send)."""
    grant = exchange(services, request)
    try:
        return curl_config(grant)
    except CapabilityRefusedError as exc:
        raise UnauthorizedError(str(exc)) from exc
