"""Route logic for job definitions: upload (YAML or JSON), read, list, graph, disable, concurrency, delete."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from formica.api.errors import (
    ErrorDetail,
    PayloadTooLargeError,
    ResourceNotFoundError,
    UnsupportedMediaTypeError,
    ValidationApiError,
    json_error_message,
)
from formica.api.models import (
    DefinitionListResponse,
    DefinitionResponse,
    DefinitionSummary,
    DefinitionVersionListResponse,
    DefinitionVersionRecord,
    DeletedResponse,
    TaskSummary,
)
from formica.api.services import ApiServices
from formica.jobs.cron import CronError
from formica.jobs.cron import next_fire_times as cron_fire_times
from formica.jobs.graph import to_mermaid
from formica.jobs.limits import definition_size_problem
from formica.settings import get_settings
from formica.store.definitions import DefinitionHeadItem, DefinitionVersionItem
from formica.store.schedules import schedule_store_from_settings, sync_definition_schedule
from formica.store.slots import SlotRepository


def _not_found(job_type: str, version: int | None = None) -> ResourceNotFoundError:
    if version is None:
        return ResourceNotFoundError(f"job type {job_type!r} is not defined")
    return ResourceNotFoundError(f"job type {job_type!r} has no version {version}")


def definition_text(body: bytes, content_type: str | None) -> str:
    """The YAML text of an upload: YAML as sent, or JSON re-expressed as YAML.

    Raises ValidationApiError (empty, not UTF-8, bad JSON), PayloadTooLargeError and
    UnsupportedMediaTypeError (neither YAML nor JSON).
    """
    too_large = definition_size_problem(len(body))
    if too_large:
        raise PayloadTooLargeError(too_large, [ErrorDetail(message=too_large, field="body")])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationApiError("the job definition is not UTF-8 text") from exc
    if not text.strip():
        raise ValidationApiError("the job definition is empty")
    media = (content_type or "").lower()
    if "yaml" in media:
        return text
    if "json" in media or (not media and text.lstrip().startswith("{")):
        return _json_as_yaml(text)
    if not media or media.startswith("text/plain"):
        return text
    raise UnsupportedMediaTypeError("send the definition as YAML (Content-Type containing 'yaml') or JSON")


def _json_as_yaml(text: str) -> str:
    import yaml  # noqa: PLC0415 - cold start: only JSON uploads need yaml here

    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        message = json_error_message(exc.msg, exc.doc, exc.pos).replace("the body", "the job definition")
        raise ValidationApiError(message, [ErrorDetail(message=message, field="body")]) from exc
    except (ValueError, RecursionError) as exc:
        raise ValidationApiError("the job definition is not valid JSON") from exc
    if not isinstance(document, dict):
        raise ValidationApiError("a job definition in JSON must be an object")
    try:
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValidationApiError("the job definition cannot be expressed as YAML") from exc


def _summary_tasks(item: DefinitionVersionItem) -> tuple[list[TaskSummary], list[str]]:
    definition = item.definition
    tasks = [
        TaskSummary(
            task_type=task.task_type,
            method=task.method_name,
            next_tasks=task.next_tasks(),
        )
        for task in definition.tasks
    ]
    return tasks, list(definition.required_params)


def next_fire_times(cron_trigger: str | None, *, disabled: bool = False, count: int = 5) -> list[str]:
    """The next fire times of a cron_trigger, ISO-8601 UTC; none when disabled."""
    if not cron_trigger or disabled:
        return []
    try:
        moments = cron_fire_times(cron_trigger, datetime.now(UTC), count)
    except CronError:  # stored before cron triggers were checked this strictly
        return []
    return [moment.isoformat().replace("+00:00", "Z") for moment in moments]


def sync_schedule(org: str, job_type: str, head: DefinitionHeadItem | None) -> None:
    """The definition's EventBridge schedule follows its head (created, updated, disabled,
    deleted), and the job type is registered for the PENDING sweep."""
    settings = get_settings()
    sync_definition_schedule(
        org,
        job_type,
        head,
        schedules=schedule_store_from_settings(settings),
        registry=SlotRepository(settings.table_name),
    )


def definition_response(item: DefinitionVersionItem, head: DefinitionHeadItem) -> DefinitionResponse:
    tasks, required = _summary_tasks(item)
    return DefinitionResponse(
        id=item.definition_id,
        job_type=item.job_type,
        version=item.version,
        latest_version=head.latest_version,
        created_at=item.created_at,
        updated_at=head.updated_at,
        disabled=head.disabled,
        max_concurrency=head.max_concurrency,
        cron_trigger=item.definition.cron_trigger,
        next_fire_times=next_fire_times(item.definition.cron_trigger, disabled=head.disabled),
        description=item.definition.description,
        required_params=required,
        tasks=tasks,
    )


def _summary(head: DefinitionHeadItem) -> DefinitionSummary:
    return DefinitionSummary(
        id=head.latest_definition_id,
        job_type=head.job_type,
        latest_version=head.latest_version,
        created_at=head.created_at,
        updated_at=head.updated_at,
        disabled=head.disabled,
        max_concurrency=head.max_concurrency,
        cron_trigger=head.cron_trigger,
        description=head.description,
    )


def upload_definition(
    services: ApiServices, org: str, body: bytes, content_type: str | None
) -> tuple[DefinitionResponse, int]:
    """Validate and store an upload; returns (response, status): 201 new job type, 200 otherwise."""
    from formica.jobs import parse_definition  # noqa: PLC0415 - cold start: yaml and jinja2 only for uploads

    text = definition_text(body, content_type)
    definition = parse_definition(text)
    item, created, _changed = services.definitions.put_version(org, text, definition)
    head = services.definitions.get_head(org, item.job_type)
    if head is None:  # deleted between our write and this read
        raise _not_found(item.job_type)
    sync_schedule(org, item.job_type, head)  # also for an unchanged upload: it repairs a lost sync
    return definition_response(item, head), 201 if created else 200


def _version_and_head(
    services: ApiServices, org: str, job_type: str, version: int | None
) -> tuple[DefinitionVersionItem, DefinitionHeadItem]:
    head = services.definitions.get_head(org, job_type)
    if head is None:
        raise _not_found(job_type)
    item = services.definitions.get_version(org, job_type, version or head.latest_version)
    if item is None:
        raise _not_found(job_type, version)
    return item, head


def get_definition(
    services: ApiServices, org: str, job_type: str, version: int | None = None
) -> DefinitionResponse:
    item, head = _version_and_head(services, org, job_type, version)
    return definition_response(item, head)


def get_definition_yaml(services: ApiServices, org: str, job_type: str, version: int | None = None) -> str:
    """The raw text of a version, exactly as uploaded (JSON uploads: as re-expressed in YAML)."""
    item, _ = _version_and_head(services, org, job_type, version)
    return item.raw_yaml


def get_definition_graph(services: ApiServices, org: str, job_type: str, version: int | None = None) -> str:
    """The task graph of a version as a Mermaid flowchart."""
    item, _ = _version_and_head(services, org, job_type, version)
    return to_mermaid(item.definition)


def list_definitions(
    services: ApiServices,
    org: str,
    *,
    limit: int,
    next_token: str | None,
    prefix: str | None = None,
    disabled: bool | None = None,
) -> DefinitionListResponse:
    """The organisation's job types by name; ``prefix`` and ``disabled`` narrow the listing."""
    page = services.definitions.list_for_org(
        org, limit=limit, next_token=next_token, prefix=prefix or None, disabled=disabled
    )
    return DefinitionListResponse(
        records=[_summary(head) for head in page.records], next_token=page.next_token
    )


def list_versions(
    services: ApiServices, org: str, job_type: str, *, limit: int, next_token: str | None
) -> DefinitionVersionListResponse:
    """The job type's stored versions, newest first (404 when the job type is not defined)."""
    head = services.definitions.get_head(org, job_type)
    if head is None:
        raise _not_found(job_type)
    page = services.definitions.list_version_page(org, job_type, limit=limit, next_token=next_token)
    return DefinitionVersionListResponse(
        job_type=job_type,
        latest_version=head.latest_version,
        records=[
            DefinitionVersionRecord(
                version=item.version,
                id=item.definition_id,
                sha256=item.sha256,
                created_at=item.created_at,
                latest=item.version == head.latest_version,
            )
            for item in page.records
        ],
        next_token=page.next_token,
    )


def set_disabled(services: ApiServices, org: str, job_type: str, disabled: bool) -> DefinitionResponse:
    head = services.definitions.set_disabled(org, job_type, disabled)
    sync_schedule(org, job_type, head)
    item = services.definitions.get_version(org, job_type, head.latest_version)
    if item is None:
        raise _not_found(job_type)
    return definition_response(item, head)


def set_max_concurrency(
    services: ApiServices, org: str, job_type: str, max_concurrency: int
) -> DefinitionResponse:
    head = services.definitions.set_max_concurrency(org, job_type, max_concurrency)
    item = services.definitions.get_version(org, job_type, head.latest_version)
    if item is None:
        raise _not_found(job_type)
    # A raised (or removed) limit lets waiting requests in now rather than at the next sweep.
    services.runtime.start_waiting(org, job_type)
    return definition_response(item, head)


def delete_definition(services: ApiServices, org: str, job_type: str) -> DeletedResponse:
    versions = services.definitions.delete(org, job_type)
    sync_schedule(org, job_type, None)
    return DeletedResponse(job_type=job_type, versions=versions)
