"""A job's ``notify`` channels: one email and one Slack message when its request ends as ``when`` asks.

``notify_deliveries`` turns a request's final ``Job State Change`` into at most one delivery per
channel, recorded like a webhook's (``store.deliveries``) with its ``channel``: the message is
composed once, when the event arrives, and each attempt sends that text. A channel that is not set
up here is recorded SKIPPED with the reason (email without a sender, Slack without a
``SlackWebhookURL`` config), never silently dropped. ``attempt_email`` sends through the
``EmailSender`` port (SES in AWS, ``.eml`` files under `formica dev`); ``attempt_slack`` reads the
Slack webhook URL from the job's configs at each attempt, so it is never stored, and masks it in
every result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from formica.engine.routing import TaskState
from formica.jobs.models import JobDefinition
from formica.jobs.notify_rules import NotifyChannelKind, notify_wanted
from formica.runners.egress import EgressPolicy
from formica.runners.slack import send_slack
from formica.runners.webhook import WebhookOutcome
from formica.runtime.configs import resolve_job_configs
from formica.runtime.deps import Runtime
from formica.store.deliveries import DeliveryChannel, DeliveryStatus, WebhookDeliveryItem
from formica.store.mail import EmailMessage, EmailSender, EmailSendError
from formica.store.requests import JobRequestItem, TaskExecutionItem

SLACK_WEBHOOK_CONFIG = "SlackWebhookURL"
"""The config (organisation's or job type's, normally secret) holding the Slack incoming webhook URL."""
EMAIL_OFF = "email is off here: no sender is configured (the notify_sender context value)"
SLACK_OFF = f"slack is off for this job: no {SLACK_WEBHOOK_CONFIG} config"
ERROR_TEXT_MAX = 500
"""The longest error text quoted in a message."""

SlackPoster = Callable[[str, bytes, EgressPolicy], WebhookOutcome]
"""Posts one Slack payload: (webhook URL, JSON body, egress) -> outcome (``runners.slack.send_slack``)."""


def _post_slack(url: str, payload: bytes, egress: EgressPolicy) -> WebhookOutcome:
    return send_slack(url, payload, egress=egress)


@dataclass
class ChannelServices:
    """How the notify function sends email and Slack messages.

    ``email`` None: email is off (deliveries recorded SKIPPED). ``email_to_outbox``: the sender
    writes files (the local outbox), whose names the deliveries record.
    """

    email: EmailSender | None = None
    email_sender: str = ""
    email_to_outbox: bool = False
    post_slack: SlackPoster = field(default=_post_slack)


@dataclass(frozen=True)
class RequestSummary:
    """What a notification says about a request that ended."""

    subject: str
    lines: tuple[str, ...]


def summarize(
    request: JobRequestItem, tasks: list[TaskExecutionItem], job_state: str, api_url: str | None
) -> RequestSummary:
    """The subject and the plain-text lines of a notification (pure).

    Lines: job type, request id, state, the failed task with its exit code and error (the last one
    that failed, when any did), the request's error, the duration, and the dashboard's page of the
    request when the API's URL is known.
    """
    lines = [
        f"Job type:    {request.job_type}",
        f"Request:     {request.request_id}",
        f"State:       {job_state}",
    ]
    failed = [task for task in tasks if task.task_state == TaskState.FAILED and not task.allowed_failure]
    if failed:
        task = max(failed, key=lambda item: item.seq)
        exit_code = task.exit_code or "none"
        lines.append(f"Failed task: {task.task_type} (exit code {exit_code})")
        error = " ".join(part for part in (task.error_code, task.error_message) if part)
        if error:
            lines.append(f"Task error:  {error[:ERROR_TEXT_MAX]}")
    if job_state != "COMPLETED" and (request.error_code or request.error_message):
        error = " ".join(part for part in (request.error_code, request.error_message) if part)
        lines.append(f"Job error:   {error[:ERROR_TEXT_MAX]}")
    duration = _duration(request.started_at or request.created_at, request.ended_at or request.updated_at)
    if duration is not None:
        lines.append(f"Duration:    {duration}")
    if api_url:
        lines.append(f"Dashboard:   {api_url.rstrip('/')}/#/requests/{request.request_id}")
    subject = f"[Formica] {request.job_type} {job_state} (request {request.request_id})"
    return RequestSummary(subject=subject, lines=tuple(lines))


def _duration(start: str | None, end: str | None) -> str | None:
    if not start or not end:
        return None
    try:
        seconds = int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    except ValueError:
        return None
    if seconds < 0:
        return None
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {seconds}s"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def email_body(summary: RequestSummary) -> str:
    """The stored form of an email delivery: its subject and text, as JSON."""
    text = "\n".join(summary.lines) + "\n"
    return json.dumps({"subject": summary.subject, "text": text}, separators=(",", ":"))


def slack_body(summary: RequestSummary, recipients: list[str]) -> str:
    """The Slack payload (JSON): the recipients named first, then the subject and the lines.

    Incoming webhooks post to the channel they were made for; the recipients are written into the
    text so the people and channels meant are named there (only legacy webhooks honour a
    ``channel`` field, so none is sent).
    """
    mentions = " ".join(recipients)
    text = "\n".join([f"{mentions} {summary.subject}".strip(), *summary.lines])
    return json.dumps({"text": text}, separators=(",", ":"))


def notify_deliveries(
    runtime: Runtime,
    channels: ChannelServices,
    request: JobRequestItem,
    definition: JobDefinition,
    detail: Mapping[str, Any],
) -> list[WebhookDeliveryItem]:
    """The deliveries a request's final ``Job State Change`` calls for: one per channel whose
    ``when`` matches, SKIPPED (with the reason) when the channel is not set up here.

    Raises the store's errors (configs, tasks): the queue delivers the event again.
    """
    job_state = str(detail.get("job_state") or "")
    wanted = [
        (name, channel)
        for name, channel in definition.notify.items()
        if name in tuple(NotifyChannelKind) and channel.recipients and notify_wanted(channel.when, job_state)
    ]
    if not wanted:
        return []
    summary = summarize(
        request, runtime.requests.list_tasks(request.request_id), job_state, runtime.settings.api_url
    )
    deliveries = []
    for name, channel in wanted:
        recipients = [recipient.strip() for recipient in channel.recipients]
        if name == NotifyChannelKind.EMAIL:
            skipped = None if channels.email is not None else EMAIL_OFF
            body = email_body(summary)
        else:
            configs = resolve_job_configs(runtime, request.org, request.job_type)
            skipped = None if configs.variables.get(SLACK_WEBHOOK_CONFIG, "").strip() else SLACK_OFF
            body = configs.masker.mask(slack_body(summary, recipients))
        now = runtime.now_iso()
        deliveries.append(
            WebhookDeliveryItem(
                request_id=request.request_id,
                delivery_id=f"{detail['id']}#{name}",
                org=request.org,
                event=f"JOB {job_state}",
                url=f"{name}:{','.join(recipients)}",
                channel=DeliveryChannel(name),
                recipients=recipients,
                method="POST",
                body=body,
                status=DeliveryStatus.SKIPPED if skipped else DeliveryStatus.PENDING,
                last_result=skipped,
                created_at=now,
                updated_at=now,
            )
        )
    return deliveries


@dataclass(frozen=True)
class ChannelOutcome:
    """One attempt's outcome, and the outbox file an email was written to (locally)."""

    outcome: WebhookOutcome
    outbox_file: str | None = None


def attempt_email(channels: ChannelServices, delivery: WebhookDeliveryItem) -> ChannelOutcome:
    """Send an email delivery's message through the EmailSender port."""
    if channels.email is None:
        return ChannelOutcome(WebhookOutcome(False, EMAIL_OFF, retryable=False))
    stored = json.loads(delivery.body)
    message = EmailMessage(
        sender=channels.email_sender,
        recipients=tuple(delivery.recipients),
        subject=str(stored["subject"]),
        text=str(stored["text"]),
        key=delivery.delivery_id,
    )
    try:
        reference = channels.email.send(message)
    except EmailSendError as exc:
        return ChannelOutcome(WebhookOutcome(False, str(exc)[:300], retryable=exc.retryable))
    if channels.email_to_outbox:
        return ChannelOutcome(WebhookOutcome(True, f"written to the outbox: {reference}"), reference)
    return ChannelOutcome(WebhookOutcome(True, f"sent: message id {reference}"))


def attempt_slack(
    runtime: Runtime, channels: ChannelServices, delivery: WebhookDeliveryItem
) -> ChannelOutcome:
    """Post a Slack delivery's payload to the job's SlackWebhookURL config (read afresh, so a
    rotated URL takes effect at the next attempt); the URL is masked in the result."""
    request = runtime.requests.get(delivery.request_id)
    if request is None:
        return ChannelOutcome(WebhookOutcome(False, "the request no longer exists", retryable=False))
    configs = resolve_job_configs(runtime, request.org, request.job_type)
    url = configs.variables.get(SLACK_WEBHOOK_CONFIG, "").strip()
    if not url:
        return ChannelOutcome(WebhookOutcome(False, SLACK_OFF, retryable=False))
    egress = EgressPolicy(runtime.settings.http_allowed_networks)
    outcome = channels.post_slack(url, delivery.body.encode("utf-8"), egress)
    masked = configs.masker.mask(outcome.result)
    return ChannelOutcome(WebhookOutcome(outcome.delivered, masked.replace(url, "****"), outcome.retryable))
