"""One Slack message: a JSON payload POSTed to an incoming webhook URL through the egress guard.

The URL is a secret (whoever holds it can post to the channel): it is never logged, never recorded,
and masked in every result this module returns (an error text that quotes the URL shows ``****``).
"""

from __future__ import annotations

import httpx

from formica.engine.masking import SecretMasker
from formica.runners.egress import EgressPolicy, forbidden_cause, guarded_client
from formica.runners.webhook import WEBHOOK_TIMEOUT_SECONDS, WebhookOutcome


def send_slack(
    url: str, payload: bytes, *, egress: EgressPolicy, client: httpx.Client | None = None
) -> WebhookOutcome:
    """POST ``payload`` (JSON) to the incoming webhook ``url``; never raises for what Slack or the
    network does. A URL the egress guard refuses (or not http(s)) is not retried; a connection
    error, a timeout, a 429 or a 5xx is; another 4xx is not (a revoked hook stays revoked)."""
    masker = SecretMasker([url])
    if not url.lower().startswith(("https://", "http://")):
        return WebhookOutcome(False, "the SlackWebhookURL config is not an http(s) URL", retryable=False)
    http = client or guarded_client(egress, max_redirects=0)
    try:
        response = http.post(
            url,
            content=payload,
            headers={"Content-Type": "application/json"},
            timeout=WEBHOOK_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        forbidden = forbidden_cause(exc)
        if forbidden is not None:
            return WebhookOutcome(
                False, masker.mask(f"refused by the egress rule: {forbidden}"), retryable=False
            )
        return WebhookOutcome(False, masker.mask(f"{type(exc).__name__}: {exc}")[:300])
    finally:
        if client is None:
            http.close()
    status = response.status_code
    retryable = status == 429 or status >= 500
    return WebhookOutcome(200 <= status < 300, f"HTTP {status}", retryable=retryable)
