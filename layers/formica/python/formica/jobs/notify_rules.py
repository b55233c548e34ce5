"""The rules of ``notify`` (email, slack) and ``webhook`` blocks: checked at upload, so a wrong
address, ``when`` or URL is a 400 naming the field and its line, not a delivery that fails later.

``formica.jobs.validation`` calls ``notify_problems`` for the job and ``webhook_problems`` for the
job and for each task; each yields (message, field path) pairs that it turns into Problems.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from enum import StrEnum

from formica.jobs.limits import shown
from formica.jobs.models import NotifyChannel, WebhookDefinition


class NotifyWhen(StrEnum):
    """formicary's ``when`` of a notify channel: which ends of a request it is told about."""

    ALWAYS = "always"
    ON_SUCCESS = "onSuccess"
    ON_FAILURE = "onFailure"
    NEVER = "never"


NOTIFY_WHEN_NONE = "none"
"""formicary's examples also write ``when: none``: read as ``never``."""

_WHEN_STATES: dict[str, frozenset[str]] = {
    NotifyWhen.ALWAYS: frozenset({"COMPLETED", "FAILED", "CANCELLED"}),
    NotifyWhen.ON_SUCCESS: frozenset({"COMPLETED"}),
    NotifyWhen.ON_FAILURE: frozenset({"FAILED"}),
}


def notify_wanted(when: str, job_state: str) -> bool:
    """Whether a channel with ``when`` is told about a request that ended in ``job_state``.

    ``always``: every final state (COMPLETED, FAILED, CANCELLED); ``onSuccess``: COMPLETED;
    ``onFailure``: FAILED; ``never`` (or ``none``), and any state that is not final: no.
    """
    return job_state in _WHEN_STATES.get(when, frozenset())


class NotifyChannelKind(StrEnum):
    """The channels Formica delivers: email (SES; an .eml outbox locally) and Slack (incoming webhook)."""

    EMAIL = "email"
    SLACK = "slack"


WEBHOOK_METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")
"""The HTTP methods a webhook may use (the event JSON is the body of each)."""
WEBHOOK_SIGNATURE_HEADER = "X-Formica-Signature-256"
"""``sha256=<hex>``: HMAC-SHA256 of ``{timestamp}.{body}`` under the organisation's webhook secret."""
WEBHOOK_TIMESTAMP_HEADER = "X-Formica-Timestamp"
"""Epoch seconds of the delivery attempt, inside the signed text (a receiver refuses old ones)."""
RESERVED_WEBHOOK_HEADERS = frozenset(
    name.lower()
    for name in (
        WEBHOOK_SIGNATURE_HEADER,
        WEBHOOK_TIMESTAMP_HEADER,
        "Content-Type",
        "Content-Length",
        "Host",
        "Transfer-Encoding",
        "Connection",
    )
)
"""Headers Formica sets itself: a webhook's ``headers`` may not name them."""
NOTIFY_RECIPIENTS_MAX = 50
"""The most recipients of one channel (SES takes at most 50 destinations per message)."""
WEBHOOK_HEADERS_MAX = 20
"""The most headers (and, separately, query parameters) of one webhook."""
WEBHOOK_URL_MAX_CHARS = 2048
"""The longest webhook URL."""

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+")
_EMAIL_MAX_CHARS = 254
_SLACK_RECIPIENT = re.compile(r"[#@]?[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def _closest(word: str, choices: tuple[str, ...]) -> str:
    lowered = {choice.lower(): choice for choice in choices}
    match = lowered.get(word.lower().replace("_", "").replace("-", ""))
    return f' (did you mean "{match}"?)' if match else ""


def notify_problems(notify: Mapping[str, NotifyChannel]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """What is wrong with a job's ``notify``: (message, field path) pairs.

    Parameters
    ----------
    notify
        The job's channels by name, as the models read them.

    Yields
    ------
    tuple[str, tuple[str, ...]]
        The message and the path of the key it is about (``("notify", "email", "when")``).
    """
    kinds = tuple(kind.value for kind in NotifyChannelKind)
    whens = tuple(when.value for when in NotifyWhen)
    for name, channel in notify.items():
        where = ("notify", name)
        if name not in kinds:
            yield (
                f"notify channel {shown(name)} is not supported: use {' or '.join(kinds)}"
                f"{_closest(name, kinds)}",
                where,
            )
            continue
        if channel.when not in whens and channel.when != NOTIFY_WHEN_NONE:
            yield (
                f"notify.{name}.when {shown(channel.when)} is not one of {', '.join(whens)}"
                f"{_closest(channel.when, whens)}",
                (*where, "when"),
            )
        if channel.when not in (NotifyWhen.NEVER, NOTIFY_WHEN_NONE) and not channel.recipients:
            yield f"notify.{name} has no recipients", (*where, "recipients")
        if len(channel.recipients) > NOTIFY_RECIPIENTS_MAX:
            yield (
                f"notify.{name} has {len(channel.recipients)} recipients; "
                f"the limit is {NOTIFY_RECIPIENTS_MAX}",
                (*where, "recipients"),
            )
        for recipient in channel.recipients:
            if name == NotifyChannelKind.EMAIL and (
                len(recipient) > _EMAIL_MAX_CHARS or not _EMAIL.fullmatch(recipient)
            ):
                yield (
                    f"notify.email recipient {shown(recipient)} is not an email address",
                    (*where, "recipients"),
                )
            elif name == NotifyChannelKind.SLACK and not _SLACK_RECIPIENT.fullmatch(recipient):
                yield (
                    f"notify.slack recipient {shown(recipient)} is not a channel (#builds) or user (@ana)",
                    (*where, "recipients"),
                )


def webhook_problems(webhook: WebhookDefinition | None) -> Iterator[tuple[str, tuple[str, ...]]]:
    """What is wrong with a ``webhook`` block (a job's or a task's): (message, field path) pairs.

    The URL is checked as rendered at upload: a scheme other than http(s) or spaces are refused; an
    empty URL (a template whose variable is not set yet, as in formicary's examples) is accepted and
    sends nothing while it renders empty; where it sends is judged at delivery by the egress guard.
    """
    if webhook is None:
        return
    url = webhook.url.strip()
    scheme = _SCHEME.match(url)
    if not url:
        pass  # nothing to check until it renders to something
    elif len(url) > WEBHOOK_URL_MAX_CHARS:
        yield (
            f"webhook.url is {len(url)} characters; the limit is {WEBHOOK_URL_MAX_CHARS}",
            ("webhook", "url"),
        )
    elif any(char.isspace() for char in url):
        yield f"webhook.url {shown(url)} contains whitespace", ("webhook", "url")
    elif scheme is None or scheme.group(1).lower() not in ("http", "https"):
        yield f"webhook.url {shown(url)} is not an http:// or https:// URL", ("webhook", "url")
    if webhook.method.upper() not in WEBHOOK_METHODS:
        yield (
            f"webhook.method {shown(webhook.method)} is not one of {', '.join(WEBHOOK_METHODS)}",
            ("webhook", "method"),
        )
    for field_name in ("headers", "query"):
        values: dict[str, str] = getattr(webhook, field_name)
        if len(values) > WEBHOOK_HEADERS_MAX:
            yield (
                f"webhook.{field_name} has {len(values)} entries; the limit is {WEBHOOK_HEADERS_MAX}",
                ("webhook", field_name),
            )
    for name, value in webhook.headers.items():
        path = ("webhook", "headers", name)
        if not _HEADER_NAME.fullmatch(name):
            yield f"webhook.headers name {shown(name)} is not an HTTP header name", path
        elif name.lower() in RESERVED_WEBHOOK_HEADERS:
            yield f"webhook.headers {name} is set by Formica itself", path
        if "\r" in value or "\n" in value:
            yield f"webhook.headers {shown(name)} has a line break in its value", path
