"""The notify function's service: lifecycle events in, webhook deliveries and notifications out.

Messages come from the delivery queue: the bus's lifecycle events (an EventBridge envelope, routed
there by the stack's rule) and this module's own webhook retries. For an event it renders the
request's definition and sends the job's ``webhook`` a job event, and a task's ``webhook`` that
task's events; each delivery is recorded under the request (``store.deliveries``) before its first
attempt. A failed attempt goes back on the queue with an exponential delay (``webhook_backoff_seconds``
doubled each time, at most ``webhook_max_attempts`` attempts: 40 s and 5 attempts span about ten
minutes). Nothing here runs in the walk: a slow or failing receiver delays only its own deliveries.
A delivery whose attempt was lost (the process died before claiming or settling it, with no retry
queued) is queued again by the minute sweep (``repair_lost_deliveries``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from formica.engine.masking import MASK, NO_SECRETS, SecretMasker
from formica.engine.walk import JobState
from formica.jobs.errors import DefinitionError
from formica.jobs.models import JobDefinition, WebhookDefinition
from formica.runners.egress import EgressPolicy
from formica.runners.webhook import WebhookCall, WebhookOutcome, send_webhook
from formica.runtime.deps import Runtime
from formica.runtime.metrics import delivery_failed
from formica.runtime.notify_channels import (
    ChannelOutcome,
    ChannelServices,
    attempt_email,
    attempt_slack,
    notify_deliveries,
)
from formica.runtime.walker import Walker
from formica.store.deliveries import DeliveryChannel, DeliveryRepository, DeliveryStatus, WebhookDeliveryItem
from formica.store.events import (
    EVENT_SOURCE,
    JOB_STATE_CHANGE,
    TASK_STATE_CHANGE,
    DeliveryQueue,
    DeliveryQueueError,
)
from formica.store.requests import JobRequestItem, iso
from formica.store.secrets import SecretStoreError
from formica.store.webhook_secrets import WebhookSecrets

logger = logging.getLogger(__name__)

_FINAL_STATES = frozenset(str(state) for state in JobState if state.is_final)

RETRY_MESSAGE = "webhook-retry"
"""The ``formica`` field of a retry message on the delivery queue."""

Sender = Callable[[WebhookCall, str, int, EgressPolicy], WebhookOutcome]
"""Sends one attempt: (call, secret, timestamp, egress) -> outcome (``runners.webhook.send_webhook``)."""


def _send(call: WebhookCall, secret: str, timestamp: int, egress: EgressPolicy) -> WebhookOutcome:
    return send_webhook(call, secret=secret, timestamp=timestamp, egress=egress)


@dataclass
class NotifyServices:
    """What the notify function works with besides the Runtime."""

    deliveries: DeliveryRepository
    queue: DeliveryQueue
    secrets: WebhookSecrets
    backoff_seconds: float = 40.0
    max_attempts: int = 5
    repair_grace_seconds: float = 900.0
    """How long a PENDING delivery may show no activity before the sweep queues its next attempt."""
    send: Sender = _send
    channels: ChannelServices = field(default_factory=ChannelServices)
    """Email and Slack (``notify``): email off unless an EmailSender is given."""


def retry_delay_seconds(services: NotifyServices, attempt: int) -> int:
    """The wait after failed attempt ``attempt`` (1-based): the backoff doubled each time."""
    return max(0, round(services.backoff_seconds * float(2 ** (attempt - 1))))


def handle_message(runtime: Runtime, services: NotifyServices, body: Mapping[str, Any]) -> int:
    """Handle one queue message; returns how many delivery attempts it made.

    Raises the store's errors (the queue delivers the message again); a message that is not one of
    ours, or names a request that no longer exists, is dropped with a warning.
    """
    if body.get("formica") == RETRY_MESSAGE:
        return attempt_delivery(
            runtime, services, str(body["request_id"]), str(body["delivery_id"]), int(body["attempt"])
        )
    if body.get("source") != EVENT_SOURCE or body.get("detail-type") not in (
        JOB_STATE_CHANGE,
        TASK_STATE_CHANGE,
    ):
        logger.warning("queue message dropped: not a lifecycle event", extra={"keys": sorted(body)[:10]})
        return 0
    detail = body.get("detail")
    if not isinstance(detail, dict):
        logger.warning("queue message dropped: event has no detail")
        return 0
    return handle_event(runtime, services, detail)


def handle_event(runtime: Runtime, services: NotifyServices, detail: Mapping[str, Any]) -> int:
    """Record and attempt the webhook deliveries one lifecycle event calls for and, for a request's
    final job event, its ``notify`` messages (a channel not set up here is recorded SKIPPED)."""
    request = runtime.requests.get(str(detail.get("job_request_id", "")))
    if request is None or request.org != detail.get("organization_id"):
        logger.warning("lifecycle event dropped: no such request", extra={"event_id": detail.get("id")})
        return 0
    task_type = str(detail.get("task_type") or "")
    try:
        definition = Walker(runtime).render(request, task_type=task_type, task_retry=0, now=runtime.now())
    except DefinitionError as exc:
        logger.warning(
            "lifecycle event not delivered: the definition does not render",
            extra={"request_id": request.request_id, "error": str(exc)[:300]},
        )
        return 0
    attempts = 0
    for target, hook in _webhooks_for(definition, task_type):
        delivery = _new_delivery(request, detail, target, hook, runtime.now_iso())
        if services.deliveries.create(delivery):
            attempts += attempt_delivery(runtime, services, request.request_id, delivery.delivery_id, 1)
    if not task_type and str(detail.get("job_state")) in _FINAL_STATES:
        for delivery in notify_deliveries(runtime, services.channels, request, definition, detail):
            created = services.deliveries.create(delivery)
            if created and delivery.status == DeliveryStatus.PENDING:
                attempts += attempt_delivery(runtime, services, request.request_id, delivery.delivery_id, 1)
            elif created:
                logger.info(
                    "notification skipped",
                    extra={"request_id": request.request_id, "channel": str(delivery.channel)},
                )
    return attempts


def _webhooks_for(definition: JobDefinition, task_type: str) -> list[tuple[str, WebhookDefinition]]:
    if not task_type:
        # A URL that renders empty (a config not set yet) sends nothing.
        hook = definition.webhook
        return [("job", hook)] if hook is not None and hook.url.strip() else []
    for task in definition.tasks:
        if task.task_type == task_type and task.webhook is not None and task.webhook.url.strip():
            return [(f"task-{task_type}", task.webhook)]
    return []


def _new_delivery(
    request: JobRequestItem, detail: Mapping[str, Any], target: str, hook: WebhookDefinition, now: str
) -> WebhookDeliveryItem:
    state = detail.get("task_state") or detail.get("job_state")
    event = f"TASK {detail['task_type']} {state}" if detail.get("task_type") else f"JOB {state}"
    return WebhookDeliveryItem(
        request_id=request.request_id,
        delivery_id=f"{detail['id']}#{target}",
        org=request.org,
        event=event,
        url=hook.url.strip(),
        method=(hook.method or "POST").upper(),
        headers=dict(hook.headers),
        query=dict(hook.query),
        body=json.dumps(dict(detail), separators=(",", ":"), sort_keys=True),
        created_at=now,
        updated_at=now,
    )


def attempt_delivery(
    runtime: Runtime, services: NotifyServices, request_id: str, delivery_id: str, attempt: int
) -> int:
    """Claim and send attempt ``attempt`` of a delivery; on failure queue the next one (or give up).

    The next attempt is queued before this one is settled, so a crash between the two leaves a
    retry that still claims; a queue that refuses the retry settles the delivery FAILED.
    """
    deliveries = services.deliveries
    now = runtime.now()
    if not deliveries.claim_attempt(request_id, delivery_id, attempt, iso(now)):
        return 0  # sent already (a redelivered message) or settled
    delivery = deliveries.get(request_id, delivery_id)
    if delivery is None:
        return 0
    sent = _attempt(runtime, services, delivery, now)
    outcome = sent.outcome
    log = {
        "request_id": request_id,
        "delivery_id": delivery_id,
        "channel": str(delivery.channel),
        "attempt": attempt,
        "result": outcome.result,
    }
    if outcome.delivered:
        status = DeliveryStatus.DELIVERED
    elif outcome.retryable and attempt < services.max_attempts:
        status = DeliveryStatus.PENDING
        retry = {
            "formica": RETRY_MESSAGE,
            "request_id": request_id,
            "delivery_id": delivery_id,
            "attempt": attempt + 1,
        }
        try:
            services.queue.send(retry, delay_seconds=retry_delay_seconds(services, attempt))
        except DeliveryQueueError as exc:
            status = DeliveryStatus.FAILED
            outcome = WebhookOutcome(
                False, f"{outcome.result}; retry not queued: {exc}"[:500], retryable=False
            )
    else:
        status = DeliveryStatus.FAILED
    if not outcome.delivered:
        delivery_failed(str(delivery.channel), given_up=status == DeliveryStatus.FAILED)
    deliveries.settle_attempt(
        request_id,
        delivery_id,
        attempt,
        status=status,
        result=outcome.result,
        now=runtime.now_iso(),
        outbox_file=sent.outbox_file,
    )
    logger.info("delivery attempt", extra={**log, "status": str(status)})
    return 1


def _attempt(
    runtime: Runtime, services: NotifyServices, delivery: WebhookDeliveryItem, now: datetime
) -> ChannelOutcome:
    if delivery.channel == DeliveryChannel.EMAIL:
        return attempt_email(services.channels, delivery)
    if delivery.channel == DeliveryChannel.SLACK:
        return attempt_slack(runtime, services.channels, delivery)
    return ChannelOutcome(_attempt_webhook(runtime, services, delivery, now))


def _attempt_webhook(
    runtime: Runtime, services: NotifyServices, delivery: WebhookDeliveryItem, now: datetime
) -> WebhookOutcome:
    try:
        secret = services.secrets.secret_for(delivery.org)
    except SecretStoreError as exc:
        return WebhookOutcome(False, f"signing secret unavailable: {exc}"[:300])
    call = WebhookCall(
        url=delivery.url,
        method=delivery.method,
        headers=delivery.headers,
        query=delivery.query,
        body=delivery.body.encode("utf-8"),
    )
    try:
        call, masker = _with_secret_configs(runtime, delivery, call, now)
    except DefinitionError as exc:
        return WebhookOutcome(False, f"the webhook does not render: {exc}"[:300], retryable=False)
    egress = EgressPolicy(runtime.settings.http_allowed_networks)
    outcome = services.send(call, secret, int(now.timestamp()), egress)
    return replace(outcome, result=masker.mask(outcome.result))


def _with_secret_configs(
    runtime: Runtime, delivery: WebhookDeliveryItem, call: WebhookCall, now: datetime
) -> tuple[WebhookCall, SecretMasker]:
    """The call with the secret configs its URL, headers or query name.

    A delivery is recorded with the webhook rendered as the walk renders (a secret config as
    ``****``), so no secret is ever stored; where one was, each attempt renders the webhook again
    with the secrets read afresh (a rotated secret applies from the next attempt on) and masks
    them in what it records.
    """
    stored = [delivery.url, *delivery.headers.values(), *delivery.query.values()]
    if not any(MASK in value for value in stored):
        return call, NO_SECRETS
    request = runtime.requests.get(delivery.request_id)
    target = delivery.delivery_id.rsplit("#", 1)[-1]
    task_type = target.removeprefix("task-") if target.startswith("task-") else ""
    if request is None:
        return call, NO_SECRETS
    walker = Walker(runtime)
    definition = walker.render(request, task_type=task_type, task_retry=0, now=now, with_secrets=True)
    hooks = _webhooks_for(definition, task_type)
    if not hooks:
        return call, NO_SECRETS
    hook = hooks[0][1]
    rendered = replace(call, url=hook.url.strip(), headers=dict(hook.headers), query=dict(hook.query))
    return rendered, walker.attempt_configs(request).masker


def repair_lost_deliveries(runtime: Runtime, services: NotifyServices) -> int:
    """The sweep: a PENDING delivery with no activity for ``repair_grace_seconds`` lost its attempt
    (its process died after recording it and before claiming attempt 1, or after claiming an
    attempt and before queueing the next). Its next attempt is queued again, with no delay; one
    whose last attempt was lost is settled FAILED. Returns how many were repaired.

    The grace exceeds the largest retry delay plus the function's timeout, so a retry on its way is
    not pre-empted; if one is late all the same, both messages name the same attempt and its claim
    (conditional on the attempt count) lets one send.
    """
    deliveries = services.deliveries
    now = runtime.now()
    moment = iso(now)
    before = iso(now - timedelta(seconds=services.repair_grace_seconds))
    repaired = 0
    for delivery in deliveries.idle_pending(before=before):
        where = {
            "request_id": delivery.request_id,
            "delivery_id": delivery.delivery_id,
            "channel": str(delivery.channel),
            "attempts": delivery.attempts,
        }
        if delivery.attempts >= services.max_attempts:
            result = f"attempt {delivery.attempts} lost: the notify function stopped before recording it"
            if deliveries.give_up_lost(delivery, result, moment):
                delivery_failed(str(delivery.channel), given_up=True)
                logger.warning("a lost delivery given up", extra=where)
                repaired += 1
            continue
        if not deliveries.mark_requeued(delivery, moment):
            continue  # it moved on since the index was read
        retry = {
            "formica": RETRY_MESSAGE,
            "request_id": delivery.request_id,
            "delivery_id": delivery.delivery_id,
            "attempt": delivery.attempts + 1,
        }
        try:
            services.queue.send(retry, delay_seconds=0)
        except DeliveryQueueError as exc:
            # Marked but not queued: the next sweep after the grace period tries again.
            logger.warning("a lost delivery not queued again", extra={**where, "error": str(exc)[:300]})
            continue
        logger.warning("a lost delivery queued again", extra=where)
        repaired += 1
    return repaired
