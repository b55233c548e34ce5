"""The REST API Lambda: one powertools resolver with validation on, routes only.

Each route reads the caller's principal from ``requestContext.authorizer`` (keys ``org``,
``token_id``, ``token_name`` and ``scopes``, set by functions/authorizer), calls one function of
``formica.api`` and returns its model. Before any route runs, one middleware checks that the token
holds the scope ``formica.api.auth.ROUTE_SCOPES`` names for it (403 naming the scope otherwise); a
route missing from that table is refused. Errors of every kind are answered by
``formica.api.errors.to_api_error``, the one mapping.
"""

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Route
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.api import approvals, audit, dashboard, definitions, grants, requests, tokens, triggers
from formica.api import configs as config_routes
from formica.api import stats as stats_routes
from formica.api import workers as worker_routes
from formica.api.auth import Principal, principal_from_authorizer_context, route_scope
from formica.api.cors import add_cors_headers, cors_headers, parse_origins, request_origin
from formica.api.errors import (
    ApiError,
    ErrorResponse,
    InternalError,
    ResourceNotFoundError,
    ValidationApiError,
    to_api_error,
    validation_details,
)
from formica.api.logs import follow_instance_log, follow_task_log
from formica.api.models import (
    ID_MAX,
    JOB_TYPE_MAX,
    JOB_TYPE_PATTERN,
    KEY_MAX,
    PARAMS_MAX_BYTES,
    ArtifactListResponse,
    ConcurrencyRequest,
    CreatedTokenResponse,
    CreateTokenRequest,
    DefinitionListResponse,
    DefinitionResponse,
    DefinitionVersionListResponse,
    DeletedResponse,
    HealthResponse,
    JobRequestListResponse,
    JobRequestResponse,
    RequestGraphResponse,
    SubmitJobRequest,
    TokenListResponse,
    TokenResponse,
)
from formica.api.openapi import (
    API_DESCRIPTION,
    API_TITLE,
    API_VERSION,
    DEFINITION_UPLOAD_BODY,
    FormicaResolver,
    json_response,
    redirect_response,
    text_response,
)
from formica.api.services import get_services
from formica.api.webhooks import WebhookDeliveryListResponse, WebhookSecretResponse, webhook_secret
from formica.api.webhooks import list_webhook_deliveries as webhook_deliveries
from formica.jobs.limits import DEFINITION_MAX_BYTES, DEFINITION_PARSED_MAX_BYTES
from formica.runtime.metrics import handler_metrics
from formica.settings import SettingsError, get_settings

logger = Logger(service="formica")
metrics = handler_metrics()
# debug=False on purpose: powertools' debug mode prints whole events, Authorization headers included.
# A response that does not match its model is our bug: 500, never a 4xx blamed on the caller.
app = FormicaResolver(
    enable_validation=True,
    debug=False,
    response_validation_error_http_code=500,
    json_body_deserializer=requests.parse_json_body,
)
app.configure_openapi(title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION)
app.enable_swagger(path="/api/docs", title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION)

JobType = Annotated[str, Path(min_length=1, max_length=JOB_TYPE_MAX)]
TriggerOrg = Annotated[str, Path(min_length=1, max_length=JOB_TYPE_MAX, pattern=JOB_TYPE_PATTERN)]
TriggerName = Annotated[str, Path(min_length=1, max_length=JOB_TYPE_MAX, pattern=JOB_TYPE_PATTERN)]
TaskType = Annotated[str, Path(min_length=1, max_length=JOB_TYPE_MAX)]
Identifier = Annotated[str, Path(min_length=1, max_length=ID_MAX)]
Version = Annotated[int | None, Query(ge=1, description="a stored version; default: the latest")]
Limit = Annotated[int, Query(ge=1, le=100)]
NextToken = Annotated[str | None, Query(max_length=2048, description="the next_token of the previous page")]


def registered_routes(resolver: APIGatewayRestResolver) -> list[Route]:
    """Every route declared on the resolver (powertools keeps them in two private lists)."""
    return [*resolver._static_routes, *resolver._dynamic_routes]


def _require_scope(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    route = resolver.context.get("_route")
    # powertools sends an unknown path through the middlewares too, on a route of its own: 404 follows.
    if isinstance(route, Route) and route in registered_routes(resolver):
        scope = route_scope(route.method, route.path)
        if scope is not None:
            _principal().require(scope)
    return next_middleware(resolver)


def _audit(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    response = next_middleware(resolver)
    route = resolver.context.get("_route")
    if (
        isinstance(route, Route)
        and (route.method, route.path) in audit.AUDITED_ROUTES
        and 200 <= response.status_code < 300
    ):
        audit.record_action(
            get_services(),
            _principal(),
            route.method,
            route.path,
            path_params=resolver.context.get("_route_args", {}),
            body=audit.answer_fields(response.body),
        )
    return response


app.use(middlewares=[_require_scope, _audit])


def _principal() -> Principal:
    return principal_from_authorizer_context(app.current_event.request_context.get("authorizer"))


def _org() -> str:
    return _principal().org


def _json(status: int, model: Any) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=model)


def _error(error: ApiError, correlation_id: str | None = None) -> Response[Any]:
    # Exception handlers' responses skip response validation: serialise the model here.
    body = error.body(correlation_id).model_dump(mode="json")
    return Response(status_code=error.status, content_type=content_types.APPLICATION_JSON, body=body)


def _text(body: str, media_type: str = "text/plain; charset=utf-8") -> Response[str]:
    return Response(status_code=200, content_type=media_type, body=body)


def _raw_body() -> bytes:
    return requests.request_body(app.current_event.body, bool(app.current_event.is_base64_encoded))


# -- errors: the one mapping lives in formica.api.errors ------------------------------------------


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
def _invalid_request(exc: RequestValidationError) -> Response[str]:
    error = ValidationApiError("the request is invalid", validation_details(list(exc.errors()), exc.body))
    return _error(error)


@app.exception_handler(UnicodeDecodeError)  # type: ignore[untyped-decorator]
def _undecodable(exc: UnicodeDecodeError) -> Response[Any]:
    # powertools decodes a base64 body as UTF-8 before validating it: binary garbage lands here.
    if not requests.is_utf8_body(app.current_event.body, bool(app.current_event.is_base64_encoded)):
        return _error(ValidationApiError("the request body is not UTF-8 text"))
    return _answer(exc)


@app.not_found
def _no_route(_exc: NotFoundError) -> Response[str]:
    return _error(ResourceNotFoundError("no such route"))


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]
def _any_error(exc: Exception) -> Response[Any]:
    return _answer(exc)


def _answer(exc: Exception) -> Response[Any]:
    error = to_api_error(exc)
    if isinstance(error, InternalError):
        correlation_id = app.current_event.request_context.request_id
        logger.exception("unexpected error", correlation_id=correlation_id, error_type=type(exc).__name__)
        return _error(error, correlation_id)
    return _error(error)


# -- public ---------------------------------------------------------------------------------------


@app.get("/api/health", tags=["health"])
def health() -> HealthResponse:
    return HealthResponse()


@app.post(
    "/api/grants",
    tags=["grants"],
    responses={
        200: json_response("The URLs the capability grants, signed now", grants.AttemptGrant),
        401: json_response("Unknown, malformed or expired capability (UNAUTHORIZED)", ErrorResponse),
        409: json_response(
            "A live chunk the capability may not write: out of order, too large, count spent (CONFLICT)",
            ErrorResponse,
        ),
    },
)
def exchange_grant(body: grants.GrantExchangeRequest) -> Response[Any]:
    # No token: the capability in the body is the credential (an attempt's, minted by Formica).
    if body.format == "curl":
        return _text(grants.exchange_as_curl_config(get_services(), body))
    return _json(200, grants.exchange(get_services(), body))


@app.post(
    "/api/triggers/<org>/<job_type>/<name>",
    tags=["triggers"],
    responses={
        202: json_response(
            "Started, filtered, a duplicate, or dropped by the rate limit", triggers.TriggerFiredResponse
        ),
        401: json_response("Missing or wrong signature (UNAUTHORIZED)", ErrorResponse),
        404: json_response("No such job type or webhook trigger in the organisation", ErrorResponse),
        413: json_response("Body over the webhook limit", ErrorResponse),
    },
)
def fire_webhook_trigger(org: TriggerOrg, job_type: JobType, name: TriggerName) -> Response[Any]:
    # No token: the signature over the raw body is the credential (runtime.triggers checks it).
    event = app.current_event
    answer = triggers.receive_webhook(
        org,
        job_type,
        name,
        body=_raw_body(),
        headers=dict(event.headers or {}),
        query=dict(event.query_string_parameters or {}),
    )
    return _json(202, answer)


@app.get("/api/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    return _text(app.get_openapi_json_schema(), content_types.APPLICATION_JSON)


# -- the dashboard (public: the page holds no data; it calls the routes below with the token) -------


def _dashboard_file(name: str) -> Response[str]:
    file = dashboard.dashboard_file(name)
    return Response(status_code=200, content_type=file.media_type, body=file.text, headers=file.headers)


@app.get("/", include_in_schema=False)
def dashboard_page() -> Response[str]:
    return _dashboard_file(dashboard.PAGE)


@app.get("/ui/<name>", include_in_schema=False)
def dashboard_static(name: Annotated[str, Path(min_length=1, max_length=64)]) -> Response[str]:
    return _dashboard_file(name)


# -- definitions ----------------------------------------------------------------------------------


@app.post(
    "/api/jobs/definitions",
    tags=["definitions"],
    openapi_extensions={"requestBody": DEFINITION_UPLOAD_BODY},
    responses={
        201: json_response("A new job type", DefinitionResponse),
        200: json_response("A new version, or the unchanged one", DefinitionResponse),
        413: json_response(
            f"Larger than {DEFINITION_MAX_BYTES // 1024} KiB, or than "
            f"{DEFINITION_PARSED_MAX_BYTES // 1024} KiB once parsed (PAYLOAD_TOO_LARGE)",
            ErrorResponse,
        ),
        415: json_response("Neither YAML nor JSON (UNSUPPORTED_MEDIA_TYPE)", ErrorResponse),
    },
)
def upload_definition() -> Response[DefinitionResponse]:
    content_type = app.current_event.headers.get("content-type")
    result, status = definitions.upload_definition(get_services(), _org(), _raw_body(), content_type)
    return _json(status, result)


@app.get("/api/jobs/definitions", tags=["definitions"])
def list_definitions(
    limit: Limit = 50,
    next_token: NextToken = None,
    q: Annotated[
        str | None,
        Query(
            max_length=JOB_TYPE_MAX,
            pattern=JOB_TYPE_PATTERN,
            description="only job types whose name starts with this",
        ),
    ] = None,
    disabled: Annotated[
        bool | None, Query(description="only disabled (true) or only enabled (false) job types")
    ] = None,
) -> DefinitionListResponse:
    return definitions.list_definitions(
        get_services(), _org(), limit=limit, next_token=next_token, prefix=q, disabled=disabled
    )


@app.get("/api/jobs/definitions/<job_type>", tags=["definitions"])
def get_definition(job_type: JobType, version: Version = None) -> DefinitionResponse:
    return definitions.get_definition(get_services(), _org(), job_type, version)


@app.get(
    "/api/jobs/definitions/<job_type>/yaml",
    tags=["definitions"],
    responses={200: text_response("Raw text", "application/yaml")},
)
def get_definition_yaml(job_type: JobType, version: Version = None) -> Response[str]:
    return _text(
        definitions.get_definition_yaml(get_services(), _org(), job_type, version),
        "application/yaml; charset=utf-8",
    )


@app.get(
    "/api/jobs/definitions/<job_type>/graph",
    tags=["definitions"],
    responses={200: text_response("Mermaid flowchart")},
)
def get_definition_graph(job_type: JobType, version: Version = None) -> Response[str]:
    return _text(definitions.get_definition_graph(get_services(), _org(), job_type, version))


@app.get("/api/jobs/definitions/<job_type>/versions", tags=["definitions"])
def list_definition_versions(
    job_type: JobType, limit: Limit = 50, next_token: NextToken = None
) -> DefinitionVersionListResponse:
    return definitions.list_versions(get_services(), _org(), job_type, limit=limit, next_token=next_token)


@app.delete("/api/jobs/definitions/<job_type>", tags=["definitions"])
def delete_definition(job_type: JobType) -> DeletedResponse:
    return definitions.delete_definition(get_services(), _org(), job_type)


@app.get("/api/jobs/definitions/<job_type>/triggers/dropped", tags=["triggers"])
def list_dropped_trigger_events(job_type: JobType) -> triggers.DroppedEventListResponse:
    return triggers.list_dropped(_org(), job_type)


@app.post("/api/jobs/definitions/<job_type>/disable", tags=["definitions"])
def disable_definition(job_type: JobType) -> DefinitionResponse:
    return definitions.set_disabled(get_services(), _org(), job_type, True)


@app.post("/api/jobs/definitions/<job_type>/enable", tags=["definitions"])
def enable_definition(job_type: JobType) -> DefinitionResponse:
    return definitions.set_disabled(get_services(), _org(), job_type, False)


@app.put("/api/jobs/definitions/<job_type>/concurrency", tags=["definitions"])
def set_concurrency(job_type: JobType, body: ConcurrencyRequest) -> DefinitionResponse:
    return definitions.set_max_concurrency(get_services(), _org(), job_type, body.max_concurrency)


# -- requests -------------------------------------------------------------------------------------

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=KEY_MAX)]
SUBMITTED = {
    201: json_response("A new request", JobRequestResponse),
    200: json_response("The first request with this Idempotency-Key or user_key", JobRequestResponse),
    404: json_response("Unknown job_type or job_version (NOT_FOUND)", ErrorResponse),
    409: json_response("The job type is disabled (CONFLICT)", ErrorResponse),
    413: json_response(
        f"params larger than {PARAMS_MAX_BYTES // 1024} KiB as JSON (PAYLOAD_TOO_LARGE)", ErrorResponse
    ),
    415: json_response("Not JSON (UNSUPPORTED_MEDIA_TYPE)", ErrorResponse),
}
IN_STATE = {
    200: json_response("The request", JobRequestResponse),
    409: json_response("Not in a state for this (CONFLICT)", ErrorResponse),
}


def _submit(body: SubmitJobRequest, idempotency_key: str | None) -> Response[JobRequestResponse]:
    principal = _principal()
    result, status = requests.submit_request(
        get_services(), principal.org, body, idempotency_key=idempotency_key, user_id=principal.token_name
    )
    return _json(status, result)


@app.post("/api/jobs/requests", tags=["requests"], responses=SUBMITTED)
def submit_request(
    body: SubmitJobRequest, idempotency_key: IdempotencyKey = None
) -> Response[JobRequestResponse]:
    return _submit(body, idempotency_key)


@app.post(
    "/jobs/requests", tags=["requests"], responses=SUBMITTED, summary="Alias of POST /api/jobs/requests"
)
def submit_request_alias(
    body: SubmitJobRequest, idempotency_key: IdempotencyKey = None
) -> Response[JobRequestResponse]:
    return _submit(body, idempotency_key)


@app.get(
    "/api/jobs/requests",
    tags=["requests"],
    responses={
        200: json_response(
            "One page of requests (with parent_id: of that request's children)", JobRequestListResponse
        ),
        404: json_response("parent_id is not a request of yours (NOT_FOUND)", ErrorResponse),
    },
)
def list_requests(
    job_type: Annotated[str | None, Query(max_length=JOB_TYPE_MAX)] = None,
    job_state: Annotated[requests.JobStateFilter | None, Query()] = None,
    parent_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=ID_MAX,
            description="only the requests this request's FORK_JOB tasks started, in creation order",
        ),
    ] = None,
    limit: Limit = 50,
    next_token: NextToken = None,
) -> JobRequestListResponse:
    if parent_id is not None:
        return requests.list_children(
            get_services(),
            _org(),
            parent_id,
            job_type=job_type,
            job_state=job_state,
            limit=limit,
            next_token=next_token,
        )
    return requests.list_requests(
        get_services(), _org(), job_type=job_type, job_state=job_state, limit=limit, next_token=next_token
    )


@app.get("/api/jobs/requests/<request_id>", tags=["requests"])
def get_request(request_id: Identifier) -> JobRequestResponse:
    return requests.get_request(get_services(), _org(), request_id)


@app.post("/api/jobs/requests/<request_id>/cancel", tags=["requests"], responses=IN_STATE)
def cancel_request(request_id: Identifier) -> JobRequestResponse:
    return requests.cancel_job(get_services(), _org(), request_id)


@app.post("/api/jobs/requests/<request_id>/restart", tags=["requests"], responses=IN_STATE)
def restart_request(
    request_id: Identifier,
    hard: Annotated[
        bool, Query(description="rerun every task; default: rerun from the task that failed")
    ] = False,
) -> JobRequestResponse:
    return requests.restart_job(get_services(), _org(), request_id, hard=hard)


@app.post("/api/jobs/requests/<request_id>/resume", tags=["requests"], responses=IN_STATE)
def resume_request(request_id: Identifier) -> JobRequestResponse:
    principal = _principal()
    by = principal.token_name or principal.token_id
    return requests.resume_job(get_services(), principal.org, request_id, by=by)


@app.post("/api/jobs/requests/<request_id>/trigger", tags=["requests"], responses=IN_STATE)
def trigger_request(request_id: Identifier) -> JobRequestResponse:
    return requests.trigger_job(get_services(), _org(), request_id)


@app.get("/api/jobs/requests/<request_id>/graph", tags=["requests"])
def request_graph(request_id: Identifier) -> RequestGraphResponse:
    return requests.request_graph(get_services(), _org(), request_id)


@app.get("/api/jobs/requests/<request_id>/webhooks", tags=["requests"])
def list_webhook_deliveries(request_id: Identifier) -> WebhookDeliveryListResponse:
    return webhook_deliveries(get_services(), _org(), request_id)


@app.get("/api/webhooks/secret", tags=["requests"])
def get_webhook_secret() -> WebhookSecretResponse:
    return webhook_secret(get_services(), _org())


@app.get("/api/jobs/requests/<request_id>/artifacts", tags=["artifacts"])
def list_artifacts(request_id: Identifier) -> ArtifactListResponse:
    return requests.list_artifacts(get_services(), _org(), request_id)


@app.get(
    "/api/jobs/requests/<request_id>/artifacts/<artifact_id>/download",
    tags=["artifacts"],
    responses={302: redirect_response("Redirect to a short-lived presigned URL")},
)
def download_artifact(request_id: Identifier, artifact_id: Identifier) -> Response[str]:
    url = requests.artifact_download_url(get_services(), _org(), request_id, artifact_id)
    return Response(status_code=302, headers={"Location": url, "Cache-Control": "no-store"}, body="")


@app.get("/api/jobs/requests/<request_id>/artifacts/<artifact_id>/link", tags=["artifacts"])
def artifact_link(request_id: Identifier, artifact_id: Identifier) -> dashboard.ArtifactLinkResponse:
    # The download route's presigned URL as JSON: a browser cannot read a cross-origin redirect.
    return dashboard.artifact_link(get_services(), _org(), request_id, artifact_id)


@app.get(
    "/api/jobs/requests/<request_id>/tasks/<task_type>/logs",
    tags=["requests"],
    responses={
        200: text_response(
            "The task's log, every attempt in order; with since or follow, JSON: logs.TaskLogResponse"
        )
    },
)
def task_logs(
    request_id: Identifier,
    task_type: TaskType,
    *,
    attempt: Annotated[int | None, Query(ge=1, le=10_000, description="one attempt; default: all")] = None,
    since: Annotated[
        int | None, Query(ge=0, le=10**12, description="byte offset: answer JSON from there (next_since)")
    ] = None,
    follow: Annotated[bool, Query(description="wait up to 20 s for more (JSON, from since or 0)")] = False,
    instance: Annotated[
        int | None,
        Query(ge=0, le=999, description="a task fan-out's instance (its item, from 0): that instance's log"),
    ] = None,
) -> Response[str]:
    if instance is not None and attempt is not None:
        raise ValidationApiError("instance reads one instance's log, which has no attempts: without attempt")
    if instance is not None and since is None and not follow:
        return _text(requests.instance_log(get_services(), _org(), request_id, task_type, instance))
    if instance is not None:
        piece = follow_instance_log(
            get_services(), _org(), request_id, task_type, instance, since=since or 0, follow=follow
        )
        return _text(piece.model_dump_json(), content_types.APPLICATION_JSON)
    if since is None and not follow:
        return _text(requests.task_log(get_services(), _org(), request_id, task_type, attempt=attempt))
    followed = follow_task_log(
        get_services(), _org(), request_id, task_type, since=since or 0, follow=follow, attempt=attempt
    )
    return _text(followed.model_dump_json(), content_types.APPLICATION_JSON)


# -- approvals (MANUAL tasks) -----------------------------------------------------------------------

VOTED = {
    200: json_response("The approval after this vote", approvals.ApprovalResponse),
    403: json_response("The policy's allowed_users does not name this token (FORBIDDEN)", ErrorResponse),
    409: json_response("Nothing of this task waits, or this token voted already (CONFLICT)", ErrorResponse),
}


@app.post("/api/jobs/requests/<request_id>/tasks/<task_type>/approve", tags=["approvals"], responses=VOTED)
def approve_task(
    request_id: Identifier, task_type: TaskType, body: approvals.VoteRequest | None = None
) -> approvals.ApprovalResponse:
    return approvals.vote(get_services(), _principal(), request_id, task_type, approve=True, body=body)


@app.post("/api/jobs/requests/<request_id>/tasks/<task_type>/reject", tags=["approvals"], responses=VOTED)
def reject_task(
    request_id: Identifier, task_type: TaskType, body: approvals.VoteRequest | None = None
) -> approvals.ApprovalResponse:
    return approvals.vote(get_services(), _principal(), request_id, task_type, approve=False, body=body)


@app.get("/api/approvals/pending", tags=["approvals"])
def pending_approvals() -> approvals.ApprovalListResponse:
    return approvals.list_pending(get_services(), _org())


# -- workers (WEBSOCKET tasks) -----------------------------------------------------------------------

WorkerTags = Annotated[str | None, Query(max_length=500, description="the worker's tags, comma-separated")]
LEASED = {
    404: json_response("No such lease in this organisation (NOT_FOUND)", ErrorResponse),
    409: json_response("The lease went to another worker, or its attempt is over (CONFLICT)", ErrorResponse),
}


@app.post("/api/workers/poll", tags=["workers"])
def worker_poll(tags: WorkerTags = None) -> worker_routes.WorkerAttemptResponse:
    return worker_routes.poll(_org(), tags or "")


@app.post("/api/workers/heartbeat", tags=["workers"], responses=LEASED)
def worker_heartbeat(body: worker_routes.LeaseRequest) -> worker_routes.HeartbeatResponse:
    return worker_routes.heartbeat(_org(), body)


@app.post("/api/workers/report", tags=["workers"], responses=LEASED)
def worker_report(body: worker_routes.WorkerReportRequest) -> worker_routes.WorkerReportResponse:
    return worker_routes.report(_org(), body)


# -- statistics ------------------------------------------------------------------------------------

StatsDay = Annotated[str | None, Query(min_length=10, max_length=10, description="a day, YYYY-MM-DD (UTC)")]


@app.get("/api/jobs/stats", tags=["requests"])
def job_stats(
    job_type: Annotated[str | None, Query(max_length=JOB_TYPE_MAX)] = None,
    since: StatsDay = None,
    until: StatsDay = None,
) -> stats_routes.JobStatsResponse:
    return stats_routes.job_stats(get_services(), _org(), job_type=job_type, since=since, until=until)


# -- the audit log ---------------------------------------------------------------------------------

AuditMoment = Annotated[
    str | None, Query(min_length=10, max_length=40, description="a day (YYYY-MM-DD) or an ISO-8601 time")
]


@app.get("/api/audits", tags=["audits"])
def list_audits(
    *,
    action: Annotated[str | None, Query(max_length=64, description="e.g. request.cancelled")] = None,
    actor: Annotated[str | None, Query(max_length=ID_MAX, description="a token's id or name")] = None,
    since: AuditMoment = None,
    until: AuditMoment = None,
    limit: Limit = 50,
    next_token: NextToken = None,
) -> audit.AuditListResponse:
    return audit.list_audits(
        get_services(),
        _org(),
        action=action,
        actor=actor,
        since=since,
        until=until,
        limit=limit,
        next_token=next_token,
    )


# -- configs (an organisation's and a job type's; a config's id is its name) -----------------------

OrgName = Annotated[str, Path(min_length=1, max_length=JOB_TYPE_MAX)]
ConfigId = Annotated[str, Path(min_length=1, max_length=JOB_TYPE_MAX)]
CONFIG_UNAVAILABLE = {
    503: json_response("This API was built without a config store (SERVICE_UNAVAILABLE)", ErrorResponse)
}
CONFIG_LISTED = {**CONFIG_UNAVAILABLE, 200: json_response("The configs", config_routes.ConfigListResponse)}
CONFIG_ANSWERED = {
    **CONFIG_UNAVAILABLE,
    200: json_response("The config (a secret without its value)", config_routes.ConfigResponse),
}
CONFIG_CREATED = {
    **CONFIG_UNAVAILABLE,
    201: json_response("The config (a secret without its value)", config_routes.ConfigResponse),
    400: json_response("A bad name, a value too long, a short secret (VALIDATION_ERROR)", ErrorResponse),
    404: json_response("Not your organisation, or no such job type (NOT_FOUND)", ErrorResponse),
    409: json_response("A config of this name exists in this scope (CONFLICT)", ErrorResponse),
}


@app.get("/api/orgs/<org>/configs", tags=["configs"], responses=CONFIG_LISTED)
def list_org_configs(org: OrgName) -> config_routes.ConfigListResponse:
    return config_routes.list_configs(get_services(), _org(), path_org=org)


@app.post("/api/orgs/<org>/configs", tags=["configs"], responses=CONFIG_CREATED)
def create_org_config(
    org: OrgName, body: config_routes.CreateConfigRequest
) -> Response[config_routes.ConfigResponse]:
    return _json(201, config_routes.create_config(get_services(), _org(), body, path_org=org))


@app.get("/api/orgs/<org>/configs/<config_id>", tags=["configs"], responses=CONFIG_ANSWERED)
def get_org_config(org: OrgName, config_id: ConfigId) -> config_routes.ConfigResponse:
    return config_routes.get_config(get_services(), _org(), config_id, path_org=org)


@app.put("/api/orgs/<org>/configs/<config_id>", tags=["configs"], responses=CONFIG_ANSWERED)
def update_org_config(
    org: OrgName, config_id: ConfigId, body: config_routes.UpdateConfigRequest
) -> config_routes.ConfigResponse:
    return config_routes.update_config(get_services(), _org(), config_id, body, path_org=org)


@app.delete("/api/orgs/<org>/configs/<config_id>", tags=["configs"], responses=CONFIG_ANSWERED)
def delete_org_config(org: OrgName, config_id: ConfigId) -> config_routes.ConfigResponse:
    return config_routes.delete_config(get_services(), _org(), config_id, path_org=org)


@app.get("/api/jobs/definitions/<job_type>/configs", tags=["configs"], responses=CONFIG_LISTED)
def list_job_configs(job_type: JobType) -> config_routes.ConfigListResponse:
    return config_routes.list_configs(get_services(), _org(), job_type=job_type)


@app.post("/api/jobs/definitions/<job_type>/configs", tags=["configs"], responses=CONFIG_CREATED)
def create_job_config(
    job_type: JobType, body: config_routes.CreateConfigRequest
) -> Response[config_routes.ConfigResponse]:
    return _json(201, config_routes.create_config(get_services(), _org(), body, job_type=job_type))


@app.get("/api/jobs/definitions/<job_type>/configs/<config_id>", tags=["configs"], responses=CONFIG_ANSWERED)
def get_job_config(job_type: JobType, config_id: ConfigId) -> config_routes.ConfigResponse:
    return config_routes.get_config(get_services(), _org(), config_id, job_type=job_type)


@app.put("/api/jobs/definitions/<job_type>/configs/<config_id>", tags=["configs"], responses=CONFIG_ANSWERED)
def update_job_config(
    job_type: JobType, config_id: ConfigId, body: config_routes.UpdateConfigRequest
) -> config_routes.ConfigResponse:
    return config_routes.update_config(get_services(), _org(), config_id, body, job_type=job_type)


@app.delete(
    "/api/jobs/definitions/<job_type>/configs/<config_id>", tags=["configs"], responses=CONFIG_ANSWERED
)
def delete_job_config(job_type: JobType, config_id: ConfigId) -> config_routes.ConfigResponse:
    return config_routes.delete_config(get_services(), _org(), config_id, job_type=job_type)


# -- tokens ---------------------------------------------------------------------------------------


@app.post(
    "/api/auth/tokens",
    tags=["tokens"],
    responses={
        201: json_response("The token, shown once", CreatedTokenResponse),
        403: json_response("A scope the calling token does not hold (FORBIDDEN)", ErrorResponse),
        409: json_response("The organisation has a token of this name (CONFLICT)", ErrorResponse),
    },
)
def create_token(body: CreateTokenRequest) -> Response[CreatedTokenResponse]:
    return _json(201, tokens.create_token(get_services(), _principal(), body))


@app.get("/api/auth/tokens", tags=["tokens"])
def list_tokens(limit: Limit = 50, next_token: NextToken = None) -> TokenListResponse:
    return tokens.list_tokens(get_services(), _org(), limit=limit, next_token=next_token)


@app.delete("/api/auth/tokens/<token_id>", tags=["tokens"])
def revoke_token(token_id: Identifier) -> TokenResponse:
    return tokens.revoke_token(get_services(), _org(), token_id)


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # This request's id, as the one 500 body names it; thread-safe keys: formica dev runs many at once.
    logger.thread_safe_append_keys(correlation_id=_gateway_request_id(event) or context.aws_request_id)
    result = app.resolve(event, context)
    add_cors_headers(result, cors_headers(request_origin(event), _cors_origins()))
    return result


def _gateway_request_id(event: dict[str, Any]) -> str | None:
    context = event.get("requestContext")
    request_id = context.get("requestId") if isinstance(context, dict) else None
    return request_id if isinstance(request_id, str) and request_id else None


def _cors_origins() -> tuple[str, ...]:
    try:
        return parse_origins(get_settings().cors_origins)
    except SettingsError:
        return ()  # the health check answers even when the function is misconfigured
