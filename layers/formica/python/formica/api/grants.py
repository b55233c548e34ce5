"""Route logic for ``POST /api/grants``: an attempt's capability exchanged for freshly signed URLs.

The route carries no API token: the capability in the body is the credential (it names one attempt
of one organisation, and nothing in the body can widen what it grants). An unknown, malformed or
expired capability is 401, with one message for all three.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from formica.api.errors import UnauthorizedError
from formica.api.services import ApiServices
from formica.runners.grants import AttemptGrant, CapabilityRefusedError, curl_config, exchange_capability
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


def exchange(
    services: ApiServices, request: GrantExchangeRequest, *, now: datetime | None = None
) -> AttemptGrant:
    """The grant of ``request.capability``; 401 when the capability is refused."""
    try:
        return exchange_capability(
            services.grants, services.blobs, request.capability, now=now or datetime.now(UTC)
        )
    except CapabilityRefusedError as exc:
        raise UnauthorizedError(GRANT_REFUSED) from exc


def exchange_as_curl_config(services: ApiServices, request: GrantExchangeRequest) -> str:
    """The grant as a curl config file: a helper holds either a download or an upload capability."""
    grant = exchange(services, request)
    try:
        return curl_config(grant)
    except CapabilityRefusedError as exc:
        raise UnauthorizedError(str(exc)) from exc
