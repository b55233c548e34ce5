"""The rules of a job's ``triggers``: checked at upload, so a trigger that could never fire (no
bucket, no topic, a secret-less signature, a template that does not compile) is a 400 naming the
field and its line, not an event that fails later.

``formica.jobs.validation`` calls ``trigger_problems`` for the job; it yields (message, field path)
pairs that it turns into Problems.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from formica.jobs.errors import DefinitionError
from formica.jobs.limits import name_problem, shown
from formica.jobs.models import TriggerAuthMethod, TriggerDefinition, TriggerType
from formica.jobs.templates import variables_used

MAX_TRIGGERS = 20
"""The most triggers one job declares."""
RATE_LIMIT_MAX = 100_000
"""The largest ``rate_limit.max``."""
WINDOW_MAX_SECONDS = 7 * 24 * 3600.0
"""The longest ``rate_limit.window`` and ``dedup_window`` (a week)."""
S3_MODES = ("poll", "notify")
"""formicary's S3 modes: both are served by S3's event notifications through EventBridge."""

# Which fields belong to which trigger type (the others are refused, so a misplaced key is an error).
_OWN_FIELDS: dict[TriggerType, frozenset[str]] = {
    TriggerType.WEBHOOK: frozenset({"auth"}),
    TriggerType.S3: frozenset({"bucket", "prefix", "suffix", "mode"}),
    TriggerType.QUEUE: frozenset({"topic", "group"}),
}
_TYPED_FIELDS = frozenset().union(*_OWN_FIELDS.values())


def trigger_problems(triggers: Sequence[TriggerDefinition]) -> Iterator[tuple[str, tuple[str | int, ...]]]:
    """What is wrong with a job's ``triggers``: (message, field path) pairs.

    Parameters
    ----------
    triggers
        The job's triggers, as the models read them.

    Yields
    ------
    tuple[str, tuple[str | int, ...]]
        The message and the path of the key it is about (``("triggers", 0, "bucket")``).
    """
    if len(triggers) > MAX_TRIGGERS:
        yield f"the job declares {len(triggers)} triggers; the limit is {MAX_TRIGGERS}", ("triggers",)
    seen: set[str] = set()
    for index, trigger in enumerate(triggers):
        where: tuple[str | int, ...] = ("triggers", index)
        reason = name_problem("trigger name", trigger.name)
        if reason:
            yield reason, (*where, "name")
        elif trigger.name in seen:
            yield (
                f"trigger name {shown(trigger.name)} is used twice: names are unique in a job",
                (*where, "name"),
            )
        seen.add(trigger.name)
        for field in sorted(_TYPED_FIELDS - _OWN_FIELDS[trigger.type]):
            if getattr(trigger, field) is not None:
                yield f"{field} is not a field of a {trigger.type.value} trigger", (*where, field)
        yield from _type_problems(trigger, where)
        yield from _limit_problems(trigger, where)
        for field, text in _templates(trigger):
            try:
                variables_used(text)
            except DefinitionError as exc:
                yield f"{field}: {exc.problems[0].message}", (*where, *field.split(".", 1))


def _type_problems(
    trigger: TriggerDefinition, where: tuple[str | int, ...]
) -> Iterator[tuple[str, tuple[str | int, ...]]]:
    if trigger.type is TriggerType.WEBHOOK and trigger.auth is not None:
        auth = trigger.auth
        if auth.method is TriggerAuthMethod.HMAC_SHA256:
            if not auth.secret_config:
                yield "auth hmac_sha256 needs secret_config: the name of a secret config", (*where, "auth")
            if not auth.header.strip() or any(c in auth.header for c in ": \t\r\n"):
                yield f"auth header {shown(auth.header)} is not a header name", (*where, "auth", "header")
        elif auth.secret_config:
            yield "auth none takes no secret_config", (*where, "auth", "secret_config")
    if trigger.type is TriggerType.S3:
        if not trigger.bucket:
            yield "an s3 trigger needs bucket", where
        if trigger.mode is not None and trigger.mode not in S3_MODES:
            yield (
                f"mode {shown(trigger.mode)} is not supported: use {' or '.join(S3_MODES)}",
                (*where, "mode"),
            )
    if trigger.type is TriggerType.QUEUE:
        if not trigger.topic:
            yield "a queue trigger needs topic", where
        else:
            reason = name_problem("topic", trigger.topic)
            if reason:
                yield reason, (*where, "topic")


def _limit_problems(
    trigger: TriggerDefinition, where: tuple[str | int, ...]
) -> Iterator[tuple[str, tuple[str | int, ...]]]:
    limit = trigger.rate_limit
    if limit is not None:
        if not 1 <= limit.max <= RATE_LIMIT_MAX:
            yield f"rate_limit max must be between 1 and {RATE_LIMIT_MAX}", (*where, "rate_limit", "max")
        if not 1 <= limit.window <= WINDOW_MAX_SECONDS:
            yield "rate_limit window must be between 1s and 168h", (*where, "rate_limit", "window")
    if trigger.dedup_window is not None:
        if not trigger.dedup_key:
            yield "dedup_window needs dedup_key", (*where, "dedup_window")
        if not 1 <= trigger.dedup_window <= WINDOW_MAX_SECONDS:
            yield "dedup_window must be between 1s and 168h", (*where, "dedup_window")


def _templates(trigger: TriggerDefinition) -> Iterator[tuple[str, str]]:
    for field in ("filter", "dedup_key"):
        text = getattr(trigger, field)
        if text:
            yield field, text
    for name, text in trigger.params.items():
        yield f"params.{name}", text
