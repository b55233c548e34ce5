"""``GET /api/jobs/requests/{id}/webhooks``: the request's deliveries (the route's logic).

Each delivery is one lifecycle event sent to one webhook, or one ``notify`` message (``channel``
email or slack) about the request's end: where it went, which event, its status and how many
attempts it took; under `formica dev` an email names the ``.eml`` file it was written to.
Headers, query and body are not shown (headers may carry a receiver's credentials rendered from
configs). ``GET /api/webhooks/secret`` (admin) answers the organisation's
signing secret, which receivers use to check ``X-Formica-Signature-256``.
"""

from __future__ import annotations

from pydantic import BaseModel

from formica.api.errors import ResourceNotFoundError
from formica.api.services import ApiServices
from formica.jobs.notify_rules import WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER


class WebhookDeliveryResponse(BaseModel):
    """One delivery of one lifecycle event: to a webhook, or a notify channel's message."""

    channel: str = "webhook"
    """webhook, email or slack."""
    url: str
    """A webhook's URL; ``email:`` or ``slack:`` and the recipients for a notify channel."""
    recipients: list[str] = []
    """A notify channel's recipients."""
    outbox_file: str | None = None
    """`formica dev`: the ``.eml`` file in the outbox folder an email was written to."""
    method: str
    event: str
    """``JOB COMPLETED``, ``TASK build FAILED``..."""
    status: str
    """PENDING (not sent yet, or waiting for its next attempt), DELIVERED, FAILED or SKIPPED (the
    channel is not set up here: ``last_result`` says why)."""
    attempts: int
    last_result: str | None
    """The last attempt's HTTP status (``HTTP 200``) or why it was not delivered."""
    created_at: str
    updated_at: str


class WebhookDeliveryListResponse(BaseModel):
    records: list[WebhookDeliveryResponse]


def list_webhook_deliveries(services: ApiServices, org: str, request_id: str) -> WebhookDeliveryListResponse:
    """The request's deliveries, oldest event first; NOT_FOUND for a request of another organisation."""
    if services.requests.get_for_org(org, request_id) is None:
        raise ResourceNotFoundError(f"job request {request_id!r} not found")
    if services.deliveries is None:
        return WebhookDeliveryListResponse(records=[])
    return WebhookDeliveryListResponse(
        records=[
            WebhookDeliveryResponse(
                channel=str(item.channel),
                url=item.url,
                recipients=list(item.recipients),
                outbox_file=item.outbox_file,
                method=item.method,
                event=item.event,
                status=str(item.status),
                attempts=item.attempts,
                last_result=item.last_result,
                created_at=item.created_at,
                updated_at=item.updated_at,
            )
            for item in services.deliveries.list_for_request(request_id)
            if item.org == org
        ]
    )


class WebhookSecretResponse(BaseModel):
    """The organisation's webhook signing secret (docs/api.md shows how a receiver checks a delivery)."""

    secret: str
    signature_header: str = WEBHOOK_SIGNATURE_HEADER
    timestamp_header: str = WEBHOOK_TIMESTAMP_HEADER


def webhook_secret(services: ApiServices, org: str) -> WebhookSecretResponse:
    """The organisation's signing secret, created when first asked for (or first used)."""
    if services.webhook_secrets is None:  # a host without Secrets Manager (some tests)
        raise ResourceNotFoundError("webhook signing is not configured here")
    # A store error is the API's 500 like any other (api.errors): the secret is never in a message.
    return WebhookSecretResponse(secret=services.webhook_secrets.secret_for(org))
