"""Jobs that start themselves: a trigger's event becomes a request (or is filtered, deduplicated or
dropped by its rate limit).

One path for every trigger type (``fire_trigger``): the event is data in the templates' context
(``.Body``/``.Headers``/``.Query`` of a webhook, ``.Object`` of an S3 put, ``.Message`` of a queue
message), never template text; the filter, params and dedup_key render in the sandbox with its
budget. A deduplication key is an idempotency record (one conditional put); a rate window is one
conditional ADD (``store.triggers``), so racing events agree. A started request is created and
admitted as a cron fire's is (``scheduling.admit_request``: max_concurrency still decides).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from formica.jobs.errors import DefinitionError
from formica.jobs.limits import PARAMS_MAX_BYTES, params_size
from formica.jobs.models import JobDefinition, TriggerAuthMethod, TriggerDefinition, TriggerType
from formica.jobs.templates import render
from formica.runtime.configs import resolve_job_configs
from formica.runtime.deps import Runtime
from formica.runtime.scheduling import CRON_PRIORITY, admit_request, slot_store
from formica.store.definitions import DefinitionRepository
from formica.store.idempotency import IdempotencyRepository
from formica.store.requests import JobRequestItem
from formica.store.triggers import DroppedEventItem, TriggerRepository, dedup_idempotency_key

logger = logging.getLogger(__name__)

DEFAULT_DEDUP_SECONDS = 24 * 3600
"""How long a dedup_key is remembered when the trigger sets no dedup_window."""
SIGNATURE_REFUSED = "the signature does not match the body"


class TriggerError(RuntimeError):
    """An event could not be taken by a trigger."""


class TriggerNotFoundError(TriggerError):
    """No such job type, or it declares no trigger of that name and type."""


class TriggerDisabledError(TriggerError):
    """The job type is disabled: its triggers start nothing."""


class TriggerSignatureError(TriggerError):
    """A webhook call whose signature is missing or wrong (or a webhook that declares no auth in AWS)."""


class TriggerEventError(TriggerError):
    """The event cannot become a request: a template failed on it, or its params are too large."""


class TriggerOutcome(StrEnum):
    STARTED = "started"
    FILTERED = "filtered"
    DUPLICATE = "duplicate"
    DROPPED = "dropped"


@dataclass(frozen=True)
class TriggerResult:
    """What became of one event: the request it started (or the first one, for a duplicate)."""

    outcome: TriggerOutcome
    request_id: str = ""
    job_type: str = ""
    trigger: str = ""


@dataclass(frozen=True)
class TriggeredJob:
    """A job type's latest version and the one trigger of it that an event reached."""

    org: str
    job_type: str
    version: int
    definition: JobDefinition
    trigger: TriggerDefinition


def find_trigger(
    runtime: Runtime, org: str, job_type: str, trigger_type: TriggerType, name: str
) -> TriggeredJob:
    """The trigger ``name`` of type ``trigger_type`` in the latest version of the org's ``job_type``.

    Raises TriggerNotFoundError (no such job type or trigger) or TriggerDisabledError.
    """
    # The stored, validated model (the walk's port offers only the raw text, rendered per attempt).
    definitions = DefinitionRepository(runtime.settings.table_name)
    head = definitions.get_head(org, job_type)
    version = definitions.get_version(org, job_type) if head is not None else None
    if head is None or version is None:
        raise TriggerNotFoundError(f"job type {job_type!r} is not defined")
    definition = version.definition
    for trigger in definition.triggers:
        if trigger.type is trigger_type and trigger.name == name:
            if head.disabled:
                raise TriggerDisabledError(f"job type {job_type!r} is disabled")
            return TriggeredJob(org, job_type, version.version, definition, trigger)
    raise TriggerNotFoundError(f"job type {job_type!r} has no {trigger_type.value} trigger {name!r}")


def fire_trigger(
    runtime: Runtime,
    job: TriggeredJob,
    event: Mapping[str, Any],
    *,
    now: float | None = None,
    store: TriggerRepository | None = None,
    idempotency: IdempotencyRepository | None = None,
) -> TriggerResult:
    """Start ``job`` for ``event`` unless its trigger filters, deduplicates or rate-limits it.

    Parameters
    ----------
    runtime
        The process's runtime (definitions, requests, admission).
    job
        The job type and the trigger the event reached (``find_trigger``, ``jobs_triggered_by``).
    event
        The templates' variables: ``Body``/``Headers``/``Query``, ``Object`` or ``Message``.
    now, store, idempotency
        The clock (epoch seconds) and the stores (tests); default: the runtime's clock and the
        process's table.

    Returns
    -------
    TriggerResult
        STARTED with the new request's id; FILTERED; DUPLICATE with the first request's id;
        DROPPED (recorded, listed by ``GET .../triggers/dropped``).

    Raises
    ------
    TriggerEventError
        A template failed on the event, or the params it gave are over the params limit.
    """
    moment = now if now is not None else runtime.now().timestamp()
    trigger = job.trigger
    triggers = store or TriggerRepository(runtime.settings.table_name)
    keys = idempotency or IdempotencyRepository(runtime.settings.table_name)
    context = {**event, "JobType": job.job_type, "OrganizationID": job.org, "TriggerName": trigger.name}
    result = TriggerResult(TriggerOutcome.FILTERED, job_type=job.job_type, trigger=trigger.name)
    if (
        trigger.filter is not None
        and "true" not in _render(trigger, "filter", trigger.filter, context).lower()
    ):
        logger.info("trigger event filtered", extra={"job_type": job.job_type, "trigger": trigger.name})
        return result
    params: dict[str, Any] = {
        name: _render(trigger, f"params.{name}", text, context) for name, text in trigger.params.items()
    }
    if params and params_size(params) > PARAMS_MAX_BYTES:
        raise TriggerEventError(f"trigger {trigger.name!r}: params over {PARAMS_MAX_BYTES} bytes as JSON")
    missing = [name for name in job.definition.required_params if name not in params]
    if missing:
        raise TriggerEventError(
            f"trigger {trigger.name!r} gives no value for required params: {', '.join(missing)}"
        )
    request_id = str(uuid.uuid4())
    dedup = _render(trigger, "dedup_key", trigger.dedup_key, context).strip() if trigger.dedup_key else ""
    dedup_key = dedup_idempotency_key(job.job_type, trigger.name, dedup) if dedup else None
    if dedup_key is not None:
        window = int(trigger.dedup_window or DEFAULT_DEDUP_SECONDS)
        bound = keys.claim(job.org, dedup_key, request_id, ttl_seconds=window, now=moment)
        if bound != request_id:
            logger.info("trigger event duplicate", extra={"job_type": job.job_type, "trigger": trigger.name})
            return TriggerResult(TriggerOutcome.DUPLICATE, bound, job.job_type, trigger.name)
    try:
        limit = trigger.rate_limit
        if limit is not None and not triggers.take_start(
            job.org, job.job_type, trigger.name, limit=limit.max, window_seconds=limit.window, now=moment
        ):
            triggers.record_dropped(
                DroppedEventItem(
                    org=job.org,
                    job_type=job.job_type,
                    trigger=trigger.name,
                    reason=f"rate_limit: {limit.max} starts per {int(limit.window)}s reached",
                    params=params,
                ),
                now=moment,
            )
            if dedup_key is not None:  # not started: a redelivery may still start it later
                keys.release(job.org, dedup_key, request_id)
            logger.warning("trigger event dropped", extra={"job_type": job.job_type, "trigger": trigger.name})
            return TriggerResult(TriggerOutcome.DROPPED, "", job.job_type, trigger.name)
        created = runtime.now_iso()
        request = JobRequestItem(
            request_id=request_id,
            org=job.org,
            job_type=job.job_type,
            job_version=job.version,
            user_id=f"trigger:{trigger.name}",
            description=f"{trigger.type.value} trigger {trigger.name}",
            params=params,
            job_priority=CRON_PRIORITY,
            created_at=created,
            updated_at=created,
        )
        slot_store(runtime).register(job.org, job.job_type)
        runtime.requests.create(request)
    except Exception:
        if dedup_key is not None:
            keys.release(job.org, dedup_key, request_id)
        raise
    admission = admit_request(request_id, runtime)
    logger.info(
        "trigger started a request",
        extra={
            "request_id": request_id,
            "job_type": job.job_type,
            "trigger": trigger.name,
            "admission": str(admission.admission),
        },
    )
    return TriggerResult(TriggerOutcome.STARTED, request_id, job.job_type, trigger.name)


def _render(trigger: TriggerDefinition, field: str, text: str, context: Mapping[str, Any]) -> str:
    try:
        return render(text, context)
    except DefinitionError as exc:
        message = exc.problems[0].message if exc.problems else str(exc)
        raise TriggerEventError(f"trigger {trigger.name!r} {field}: {message}") from exc


# -- webhooks -------------------------------------------------------------------------------------


def receive_webhook(
    runtime: Runtime,
    org: str,
    job_type: str,
    name: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    require_auth: bool,
) -> TriggerResult:
    """A webhook call: its signature checked over the raw body, then ``fire_trigger``.

    Parameters
    ----------
    runtime
        The process's runtime (the signing secret is a secret config of the org or job type).
    org, job_type, name
        From the route's path: the trigger is looked up in this organisation only.
    body, headers, query
        The call as received; the body is JSON (an empty body is ``{}``).
    require_auth
        Refuse a webhook whose trigger declares no ``auth`` (AWS); ``auth: {method: none}`` written
        explicitly is always accepted.

    Raises
    ------
    TriggerNotFoundError, TriggerDisabledError, TriggerSignatureError, TriggerEventError
    """
    job = find_trigger(runtime, org, job_type, TriggerType.WEBHOOK, name)
    _check_signature(runtime, job, body, headers, require_auth=require_auth)
    try:
        parsed: Any = json.loads(body) if body.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise TriggerEventError("the webhook's body is not JSON") from exc
    header_map = {**{key.lower(): value for key, value in headers.items()}, **headers}
    return fire_trigger(runtime, job, {"Body": parsed, "Headers": header_map, "Query": dict(query)})


def _check_signature(
    runtime: Runtime, job: TriggeredJob, body: bytes, headers: Mapping[str, str], *, require_auth: bool
) -> None:
    auth = job.trigger.auth
    if auth is None:
        if require_auth:
            raise TriggerSignatureError(
                "this webhook declares no auth: sign it (auth: {method: hmac_sha256, secret_config}) "
                "or accept unsigned calls with auth: {method: none}"
            )
        return
    if auth.method is TriggerAuthMethod.NONE:
        return
    wanted = auth.header.lower()
    given = next((value for key, value in headers.items() if key.lower() == wanted), "")
    secret = resolve_job_configs(runtime, job.org, job.job_type).variables.get(auth.secret_config or "")
    if not secret:
        logger.warning(
            "webhook secret config missing", extra={"job_type": job.job_type, "trigger": job.trigger.name}
        )
        raise TriggerSignatureError(SIGNATURE_REFUSED)
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    signature = given.strip().removeprefix("sha256=")
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", errors="replace")):
        raise TriggerSignatureError(SIGNATURE_REFUSED)


# -- events that name no job type: a queue's message, an object put in a bucket --------------------

_JOBS_CACHE_SECONDS = 30.0
_jobs_cache: dict[tuple[str, str], tuple[float, list[TriggeredJob]]] = {}


def org_triggers(runtime: Runtime, org: str, *, now: float | None = None) -> list[TriggeredJob]:
    """Every trigger of the organisation's enabled job types (their latest versions).

    Read from the org's definition heads and kept per process for ``_JOBS_CACHE_SECONDS``, so a
    batch of events costs one listing: a definition uploaded a moment ago is seen within that time.
    """
    moment = time.monotonic() if now is None else now
    key = (runtime.settings.table_name, org)
    kept = _jobs_cache.get(key)
    if kept is not None and moment - kept[0] < _JOBS_CACHE_SECONDS:
        return kept[1]
    definitions = DefinitionRepository(runtime.settings.table_name)
    found: list[TriggeredJob] = []
    next_token: str | None = None
    while True:
        page = definitions.list_for_org(org, limit=100, next_token=next_token, disabled=False)
        for head in page.records:
            version = definitions.get_version(org, head.job_type, head.latest_version)
            if version is None:
                continue
            definition = version.definition
            found.extend(
                TriggeredJob(org, head.job_type, version.version, definition, trigger)
                for trigger in definition.triggers
            )
        next_token = page.next_token
        if next_token is None:
            break
    _jobs_cache[key] = (moment, found)
    return found


def forget_org_triggers() -> None:
    """Drop the kept listings (tests, and `formica dev` after an upload)."""
    _jobs_cache.clear()


def receive_queue_message(runtime: Runtime, org: str, topic: str, body: str) -> list[TriggerResult]:
    """A message of the org's queue for ``topic``: every queue trigger naming the topic fires.

    Raises TriggerEventError for a body that is not JSON (the message is then a batch item failure,
    redelivered and at last moved to the dead-letter queue), or a template that fails on it.
    """
    try:
        message: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise TriggerEventError("the queue message is not JSON") from exc
    jobs = [
        job
        for job in org_triggers(runtime, org)
        if job.trigger.type is TriggerType.QUEUE and job.trigger.topic == topic
    ]
    return [fire_trigger(runtime, job, {"Message": message}) for job in jobs]


S3_OBJECT_CREATED = "Object Created"
"""The EventBridge detail-type of an S3 put, copy or completed upload; S3 also sends others
(Object Deleted, Object Tags Added...) on the same rule's bus, which start nothing."""


def receive_s3_event(runtime: Runtime, event: Mapping[str, Any], orgs: list[str]) -> list[TriggerResult]:
    """An S3 event from EventBridge: the s3 triggers of ``orgs`` (those the bucket is granted to)
    whose bucket, prefix and suffix match fire with ``.Object`` (Key, Bucket, Size, ETag)."""
    if event.get("source") != "aws.s3" or event.get("detail-type") != S3_OBJECT_CREATED:
        logger.info("s3 event ignored", extra={"detail_type": str(event.get("detail-type"))})
        return []
    detail = event.get("detail") or {}
    bucket = str((detail.get("bucket") or {}).get("name", ""))
    raw = detail.get("object") or {}
    obj = {
        "Key": str(raw.get("key", "")),
        "Bucket": bucket,
        "Size": raw.get("size", 0),
        "ETag": str(raw.get("etag") or raw.get("eTag") or ""),
    }
    results: list[TriggerResult] = []
    for org in orgs:
        for job in org_triggers(runtime, org):
            trigger = job.trigger
            if (
                trigger.type is TriggerType.S3
                and trigger.bucket == bucket
                and obj["Key"].startswith(trigger.prefix or "")
                and obj["Key"].endswith(trigger.suffix or "")
            ):
                results.append(fire_trigger(runtime, job, {"Object": obj}))
    return results


def granted_orgs(runtime: Runtime, bucket: str) -> list[str]:
    """The organisations ``bucket``'s events reach (settings ``trigger_buckets``; ``*``: every bucket)."""
    text = runtime.settings.trigger_buckets
    if not text:
        return []
    try:
        grants = json.loads(text)
    except ValueError as exc:
        raise TriggerError("FORMICA_TRIGGER_BUCKETS is not JSON") from exc
    orgs = [*grants.get(bucket, []), *grants.get("*", [])]
    return list(dict.fromkeys(str(org) for org in orgs))
