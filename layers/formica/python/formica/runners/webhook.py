"""One webhook attempt: the event JSON signed and sent through the egress guard.

The signature is ``sha256=`` + HMAC-SHA256 (hex) of ``{timestamp}.{body}`` under the organisation's
secret, in ``X-Formica-Signature-256``; the timestamp (epoch seconds) is ``X-Formica-Timestamp``, so
a receiver that refuses old timestamps refuses a replayed delivery too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from formica.jobs.notify_rules import WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER
from formica.runners.egress import EgressPolicy, forbidden_cause, guarded_client

WEBHOOK_TIMEOUT_SECONDS = 10.0
"""How long one attempt waits for the receiver's answer."""


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``{timestamp}.{body}`` under ``secret``.

    Parameters
    ----------
    secret
        The organisation's webhook secret (its text is the key, UTF-8).
    timestamp
        The delivery attempt's epoch seconds (``X-Formica-Timestamp``).
    body
        The request body exactly as sent.
    """
    signed = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookOutcome:
    """How one attempt went: delivered (2xx), or not, and whether trying again can help."""

    delivered: bool
    result: str
    """The HTTP status (``HTTP 200``) or the reason it was not sent."""
    retryable: bool = True


@dataclass(frozen=True)
class WebhookCall:
    """What one attempt sends."""

    url: str
    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


def send_webhook(
    call: WebhookCall,
    *,
    secret: str,
    timestamp: int,
    egress: EgressPolicy,
    client: httpx.Client | None = None,
) -> WebhookOutcome:
    """Send one attempt; never raises for what the receiver or the network does.

    A URL the egress guard refuses is not retried (``retryable`` False); a connection error, a
    timeout or a non-2xx answer is.
    """
    headers = {
        **call.headers,
        "Content-Type": "application/json",
        WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
        WEBHOOK_SIGNATURE_HEADER: webhook_signature(secret, timestamp, call.body),
    }
    http = client or guarded_client(egress, max_redirects=0)
    try:
        response = http.request(
            call.method.upper(),
            call.url,
            params=dict(call.query),
            headers=headers,
            content=call.body,
            timeout=WEBHOOK_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        forbidden = forbidden_cause(exc)
        if forbidden is not None:
            return WebhookOutcome(False, f"refused by the egress rule: {forbidden}", retryable=False)
        return WebhookOutcome(False, f"{type(exc).__name__}: {exc}"[:300])
    finally:
        if client is None:
            http.close()
    status = response.status_code
    return WebhookOutcome(200 <= status < 300, f"HTTP {status}")
