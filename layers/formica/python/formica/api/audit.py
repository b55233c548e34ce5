"""The audit log: every action a token takes through the API, recorded once it succeeded, and
``GET /api/audits`` (admin scope) to read it.

Which routes are actions, and what each records, is one table (``AUDITED_ROUTES``): the API's one
middleware (functions/api) calls ``record_action`` after a route answered 2xx, with the route's path
parameters and the answer's body. An audit item holds ids and names only (the token that acted, the
job type, request, task, token or config acted on), never a body, a parameter value, a comment or a
token's secret. A failed audit write is logged and the action still answers: the action happened.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import BaseModel, Field

from formica.api.auth import Principal
from formica.api.errors import ErrorDetail, ValidationApiError
from formica.api.services import ApiServices
from formica.store.audit import AuditItem, AuditRepository, AuditStoreError

logger = logging.getLogger(__name__)

__all__ = [
    "AUDITED_ROUTES",
    "AuditListResponse",
    "AuditResponse",
    "AuditedRoute",
    "answer_fields",
    "audit_repository",
    "list_audits",
    "record_action",
]


@dataclass(frozen=True)
class AuditedRoute:
    """What a route's success records: its action, the target (a path parameter, or a field of the
    answer's body), and further ids (path parameters, answer fields) as details."""

    action: str
    target_param: str | None = None
    target_field: str | None = None
    detail_params: tuple[str, ...] = ()
    detail_fields: tuple[str, ...] = ()


AUDITED_ROUTES: dict[tuple[str, str], AuditedRoute] = {
    ("POST", "/api/jobs/definitions"): AuditedRoute(
        "definition.uploaded", target_field="job_type", detail_fields=("version",)
    ),
    ("DELETE", "/api/jobs/definitions/<job_type>"): AuditedRoute("definition.deleted", "job_type"),
    ("POST", "/api/jobs/definitions/<job_type>/disable"): AuditedRoute("definition.disabled", "job_type"),
    ("POST", "/api/jobs/definitions/<job_type>/enable"): AuditedRoute("definition.enabled", "job_type"),
    ("PUT", "/api/jobs/definitions/<job_type>/concurrency"): AuditedRoute(
        "definition.concurrency_changed", "job_type"
    ),
    ("POST", "/api/jobs/requests"): AuditedRoute(
        "request.submitted", target_field="id", detail_fields=("job_type",)
    ),
    ("POST", "/jobs/requests"): AuditedRoute(
        "request.submitted", target_field="id", detail_fields=("job_type",)
    ),
    ("POST", "/api/jobs/requests/<request_id>/cancel"): AuditedRoute("request.cancelled", "request_id"),
    ("POST", "/api/jobs/requests/<request_id>/restart"): AuditedRoute("request.restarted", "request_id"),
    ("POST", "/api/jobs/requests/<request_id>/resume"): AuditedRoute("request.resumed", "request_id"),
    ("POST", "/api/jobs/requests/<request_id>/trigger"): AuditedRoute("request.triggered", "request_id"),
    ("POST", "/api/jobs/requests/<request_id>/tasks/<task_type>/approve"): AuditedRoute(
        "request.approved", "request_id", detail_params=("task_type",)
    ),
    ("POST", "/api/jobs/requests/<request_id>/tasks/<task_type>/reject"): AuditedRoute(
        "request.rejected", "request_id", detail_params=("task_type",)
    ),
    ("POST", "/api/auth/tokens"): AuditedRoute("token.created", target_field="id", detail_fields=("name",)),
    ("DELETE", "/api/auth/tokens/<token_id>"): AuditedRoute("token.revoked", "token_id"),
    ("POST", "/api/orgs/<org>/configs"): AuditedRoute("config.created", target_field="name"),
    ("PUT", "/api/orgs/<org>/configs/<config_id>"): AuditedRoute("config.changed", "config_id"),
    ("DELETE", "/api/orgs/<org>/configs/<config_id>"): AuditedRoute("config.deleted", "config_id"),
    ("POST", "/api/jobs/definitions/<job_type>/configs"): AuditedRoute(
        "config.created", target_field="name", detail_params=("job_type",)
    ),
    ("PUT", "/api/jobs/definitions/<job_type>/configs/<config_id>"): AuditedRoute(
        "config.changed", "config_id", detail_params=("job_type",)
    ),
    ("DELETE", "/api/jobs/definitions/<job_type>/configs/<config_id>"): AuditedRoute(
        "config.deleted", "config_id", detail_params=("job_type",)
    ),
}
"""(method, route) -> what its success records. Every route that changes something is here, except
``POST /api/grants`` (an attempt's capability, not a token, is the caller)."""

_DETAIL_MAX = 200


def audit_repository(services: ApiServices) -> AuditRepository:
    """The audit log in the services' table (the process's DynamoDB client)."""
    return AuditRepository(services.requests.table_name)


def _text(value: Any) -> str:
    return str(value)[:_DETAIL_MAX]


def record_action(
    services: ApiServices,
    principal: Principal,
    method: str,
    route: str,
    *,
    path_params: Mapping[str, Any],
    body: Mapping[str, Any] | None,
) -> AuditItem | None:
    """Record the success of ``method route`` by ``principal`` when the route is an action (None
    when it is not, or the write failed: logged, the action's answer stands).

    Parameters
    ----------
    path_params:
        The route's path parameters (ids and names).
    body:
        The route's JSON answer; only the fields ``AUDITED_ROUTES`` names are read.
    """
    audited = AUDITED_ROUTES.get((method.upper(), route))
    if audited is None:
        return None
    answer = body or {}
    target = ""
    if audited.target_param is not None:
        target = _text(path_params.get(audited.target_param, ""))
    elif audited.target_field is not None:
        target = _text(answer.get(audited.target_field, ""))
    details = {name: _text(path_params[name]) for name in audited.detail_params if name in path_params}
    details.update(
        {name: _text(answer[name]) for name in audited.detail_fields if answer.get(name) is not None}
    )
    item = AuditItem(
        org=principal.org,
        action=audited.action,
        actor_token_id=principal.token_id,
        actor_token_name=principal.token_name,
        target=target,
        details=details,
    )
    try:
        return audit_repository(services).record(item)
    except AuditStoreError as exc:
        logger.error(
            "action not audited", extra={"org": principal.org, "action": audited.action, "error": str(exc)}
        )
        return None


def answer_fields(body: Any) -> Mapping[str, Any] | None:
    """The fields of a route's answer as the middleware sees it (a model, a dict or JSON text)."""
    if isinstance(body, BaseModel):
        dumped: dict[str, Any] = body.model_dump(mode="json")
        return dumped
    if isinstance(body, Mapping):
        return body
    if isinstance(body, str | bytes):
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


class AuditResponse(BaseModel):
    """One action taken through the API."""

    id: str
    at: str
    action: str = Field(description="e.g. definition.uploaded, request.cancelled, token.revoked")
    actor_token_id: str
    actor_token_name: str
    target: str = Field(description="the job type, request, token or config acted on")
    details: dict[str, str] = Field(default_factory=dict)


class AuditListResponse(BaseModel):
    records: list[AuditResponse]
    next_token: str | None = None


def _moment(text: str | None, name: str, *, end_of_day: bool) -> str | None:
    """``since`` / ``until`` as the stored timestamps read: a day, or an ISO-8601 moment (UTC if
    no offset)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end_of_day else time.min, UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise ValidationApiError(
            f"{name} must be a day (YYYY-MM-DD) or an ISO-8601 time",
            [ErrorDetail(message="not a day or an ISO-8601 time", field=name)],
        ) from None
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def list_audits(
    services: ApiServices,
    org: str,
    *,
    action: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 50,
    next_token: str | None = None,
) -> AuditListResponse:
    """The organisation's audit log, newest first, one page at a time.

    ``action`` (exact), ``actor`` (a token's id or name), ``since`` / ``until`` (inclusive; a day or
    an ISO-8601 time) filter it; ``next_token`` is the previous page's cursor.
    """
    page = audit_repository(services).list_for_org(
        org,
        action=action,
        actor=actor,
        since=_moment(since, "since", end_of_day=False),
        until=_moment(until, "until", end_of_day=True),
        limit=limit,
        next_token=next_token,
    )
    return AuditListResponse(
        records=[
            AuditResponse(
                id=item.audit_id,
                at=item.at,
                action=item.action,
                actor_token_id=item.actor_token_id,
                actor_token_name=item.actor_token_name,
                target=item.target,
                details=item.details,
            )
            for item in page.records
        ],
        next_token=page.next_token,
    )
