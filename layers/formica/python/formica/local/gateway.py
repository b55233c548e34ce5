"""API Gateway (REST, proxy integration) emulated in front of Lambda handlers, for `formica dev`.

A real HTTP request becomes the event API Gateway would send: a REQUEST authorizer event first
(except on public routes), then the proxy event with the authorizer's context in
``requestContext.authorizer``; the handler's proxy response becomes the HTTP response. What API
Gateway itself answers (no token, an explicit deny, a failing Lambda) is mirrored with the same
status codes. Pure: no sockets, no AWS; the server in ``formica.local.server`` does the I/O.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from formica.local.lambda_dispatch import LocalLambdaContext

logger = logging.getLogger(__name__)

LOCAL_STAGE = "local"
LOCAL_API_ID = "local"
LOCAL_ACCOUNT_ID = "123456789012"
PROXY_RESOURCE = "/api/{proxy+}"
# API Gateway's integration timeout: what the API and the authorizer get locally.
API_TIMEOUT_SECONDS = 30.0

# The methods a REST API resource can declare (``ANY`` stands for these seven). Any other method
# (TRACE, CONNECT, PROPFIND, ...) matches no method of any resource.
API_GATEWAY_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})

# Served without the authorizer, as the CDK stack declares them (authorization NONE).
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {("GET", "/api/health"), ("GET", "/api/openapi.json"), ("GET", "/api/docs"), ("POST", "/api/grants")}
)

# The dashboard: its page at the stage's root and its files at /ui/{name}, also without the authorizer.
DASHBOARD_PAGE = "/"
DASHBOARD_FILES_PREFIX = "/ui/"
DASHBOARD_FILES_RESOURCE = "/ui/{name}"

# A trigger's webhook: its signature is its authentication, so no authorizer (cdk/constructs/triggers.py).
TRIGGERS_PREFIX = "/api/triggers/"
TRIGGERS_RESOURCE = "/api/triggers/{org}/{job_type}/{name}"

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class Route:
    """The API Gateway resource a request matched (cdk/constructs/api.py declares the same ones)."""

    resource: str
    path_parameters: dict[str, str] | None
    public: bool


def resolve_route(method: str, path: str) -> Route | None:
    """The resource of the CDK stack's REST API that serves ``method path``, or None (no such route).

    ``ANY /api``, ``ANY /api/{proxy+}``, ``POST /jobs/requests`` (formicary's path), and the public
    ``GET /api/health``, ``/api/openapi.json``, ``/api/docs`` and ``POST /api/grants``, and the
    dashboard's ``GET /`` and ``GET /ui/{name}`` (public too). A method outside
    ``API_GATEWAY_METHODS`` has no route anywhere.
    """
    verb = method.upper()
    if verb not in API_GATEWAY_METHODS:
        return None
    if (verb, path) in PUBLIC_ROUTES:
        return Route(resource=path, path_parameters=None, public=True)
    if verb == "GET" and path == DASHBOARD_PAGE:
        return Route(resource=DASHBOARD_PAGE, path_parameters=None, public=True)
    name = path[len(DASHBOARD_FILES_PREFIX) :] if path.startswith(DASHBOARD_FILES_PREFIX) else ""
    if verb == "GET" and name and "/" not in name:
        return Route(resource=DASHBOARD_FILES_RESOURCE, path_parameters={"name": name}, public=True)
    segments = path[len(TRIGGERS_PREFIX) :].split("/") if path.startswith(TRIGGERS_PREFIX) else []
    if verb == "POST" and len(segments) == 3 and all(segments):
        parameters = dict(zip(("org", "job_type", "name"), segments, strict=True))
        return Route(resource=TRIGGERS_RESOURCE, path_parameters=parameters, public=True)
    if path == "/api":
        return Route(resource="/api", path_parameters=None, public=False)
    if path.startswith("/api/") and len(path) > len("/api/"):
        return Route(resource=PROXY_RESOURCE, path_parameters={"proxy": path[len("/api/") :]}, public=False)
    if path == "/jobs/requests" and verb == "POST":
        return Route(resource="/jobs/requests", path_parameters=None, public=False)
    return None


class GatewayError(RuntimeError):
    """A handler answered something API Gateway would not accept."""


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as it arrived on the socket."""

    method: str
    target: str  # path and query, as in the request line
    headers: Sequence[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"

    @property
    def raw_path(self) -> str:
        return self.target.split("?", 1)[0] or "/"

    @property
    def path(self) -> str:
        # API Gateway hands the Lambda the decoded path.
        return unquote(self.raw_path)

    @property
    def query(self) -> str:
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else ""


@dataclass(frozen=True)
class HttpResponse:
    """What goes back on the socket."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


def _multi(pairs: Sequence[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value  # API Gateway keeps the last value in the single-value map
        multi.setdefault(key, []).append(value)
    return single, multi


def _body_fields(body: bytes) -> tuple[str | None, bool]:
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        # What API Gateway does for a binary media type: base64, flagged.
        return base64.b64encode(body).decode("ascii"), True


def method_arn(request: HttpRequest, *, region: str = "us-east-1", stage: str = LOCAL_STAGE) -> str:
    """The execute-api ARN API Gateway passes to an authorizer for this request."""
    return (
        f"arn:aws:execute-api:{region}:{LOCAL_ACCOUNT_ID}:{LOCAL_API_ID}/{stage}/"
        f"{request.method.upper()}{request.path}"
    )


def build_request_context(
    request: HttpRequest,
    *,
    request_id: str,
    stage: str = LOCAL_STAGE,
    resource: str = PROXY_RESOURCE,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``requestContext`` of a REST API proxy event."""
    moment = now or datetime.now(UTC)
    single, _ = _multi([(key.lower(), value) for key, value in request.headers])
    return {
        "accountId": LOCAL_ACCOUNT_ID,
        "apiId": LOCAL_API_ID,
        "domainName": single.get("host", "127.0.0.1"),
        "httpMethod": request.method.upper(),
        "identity": {
            "sourceIp": request.source_ip,
            "userAgent": single.get("user-agent"),
            "accessKey": None,
            "accountId": None,
            "caller": None,
            "user": None,
            "userArn": None,
        },
        "path": f"/{stage}{request.path}",
        "protocol": "HTTP/1.1",
        "requestId": request_id,
        "requestTime": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(moment.timestamp() * 1000),
        "resourceId": "local",
        "resourcePath": resource,
        "stage": stage,
    }


def build_proxy_event(
    request: HttpRequest,
    *,
    request_id: str,
    stage: str = LOCAL_STAGE,
    authorizer: Mapping[str, Any] | None = None,
    route: Route | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The API Gateway REST proxy event (payload 1.0) for ``request``."""
    matched = route or resolve_route(request.method, request.path) or _fallback_route(request.path)
    headers, multi_headers = _multi(list(request.headers))
    query_pairs = parse_qsl(request.query, keep_blank_values=True)
    query, multi_query = _multi(query_pairs)
    body, is_base64 = _body_fields(request.body)
    context = build_request_context(
        request, request_id=request_id, stage=stage, resource=matched.resource, now=now
    )
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    return {
        "resource": matched.resource,
        "path": request.path,
        "httpMethod": request.method.upper(),
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": matched.path_parameters,
        "stageVariables": None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _fallback_route(path: str) -> Route:
    return Route(resource=path, path_parameters=None, public=False)


def build_authorizer_event(
    request: HttpRequest, *, request_id: str, stage: str = LOCAL_STAGE, region: str = "us-east-1"
) -> dict[str, Any]:
    """The REQUEST authorizer event API Gateway sends before the proxy integration."""
    event = build_proxy_event(request, request_id=request_id, stage=stage)
    for key in ("body", "isBase64Encoded"):
        event.pop(key)
    event["type"] = "REQUEST"
    event["methodArn"] = method_arn(request, region=region, stage=stage)
    return event


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", [])
    if isinstance(statements, Mapping):
        return [statements]
    return [item for item in statements if isinstance(item, Mapping)]


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value]
    return []


def _matches(statement: Mapping[str, Any], arn: str) -> bool:
    actions = _as_list(statement.get("Action"))
    if not any(fnmatch.fnmatchcase("execute-api:Invoke", action) for action in actions):
        return False
    return any(fnmatch.fnmatchcase(arn, resource) for resource in _as_list(statement.get("Resource")))


def policy_allows(authorizer_result: Mapping[str, Any], arn: str) -> bool:
    """Whether an authorizer's IAM policy lets ``arn`` through: an Allow matches and no Deny does."""
    policy = authorizer_result.get("policyDocument")
    if not isinstance(policy, Mapping):
        return False
    statements = _statements(policy)
    if any(s.get("Effect") == "Deny" and _matches(s, arn) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and _matches(s, arn) for s in statements)


def _json_response(status: int, payload: Mapping[str, Any], request_id: str) -> HttpResponse:
    body = json.dumps(payload).encode()
    return HttpResponse(
        status=status,
        headers=[
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", str(payload.get("error", "")) or "GatewayError"),
        ],
        body=body,
    )


# The gateway responses the CDK stack configures (UNAUTHORIZED, ACCESS_DENIED, 5xx), in the API's
# error shape.
def unauthorized_response(request_id: str) -> HttpResponse:
    return _json_response(
        401,
        {"error": "UNAUTHORIZED", "message": "missing, unknown, expired or revoked token", "details": []},
        request_id,
    )


def access_denied_response(request_id: str) -> HttpResponse:
    return _json_response(
        403, {"error": "FORBIDDEN", "message": "not authorized for this resource", "details": []}, request_id
    )


def missing_route_response(request_id: str) -> HttpResponse:
    # What the stack answers for a path or a method no resource declares (TRACE and every other
    # method API Gateway cannot declare included): API Gateway's MISSING_AUTHENTICATION_TOKEN
    # response (403 "Missing Authentication Token" by default), which cdk/constructs/api.py
    # (GATEWAY_ERRORS) turns into 404 NOT_FOUND in the API's error shape.
    return HttpResponse(
        status=404,
        headers=[
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", "MissingAuthenticationTokenException"),
        ],
        body=json.dumps({"error": "NOT_FOUND", "message": "no such route", "details": []}).encode(),
    )


def bad_gateway_response(request_id: str) -> HttpResponse:
    return _json_response(
        502,
        {
            "error": "INTERNAL_ERROR",
            "message": "internal server error",
            "details": [],
            "correlation_id": request_id,
        },
        request_id,
    )


def proxy_result_to_response(result: Any) -> HttpResponse:
    """Turn a proxy integration's return value into the HTTP response API Gateway would send.

    Raises
    ------
    GatewayError
        The result is not a valid proxy response (API Gateway answers 502 then).
    """
    if not isinstance(result, Mapping):
        raise GatewayError("proxy result is not an object")
    try:
        status = int(result.get("statusCode", 200))
    except (TypeError, ValueError) as exc:
        raise GatewayError("proxy result has an invalid statusCode") from exc
    headers: list[tuple[str, str]] = []
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    if not isinstance(multi, Mapping) or not isinstance(single, Mapping):
        raise GatewayError("proxy result headers are not objects")
    multi_names = {str(name).lower() for name in multi}
    for name, values in multi.items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name), str(value)))
    # When a name is in both maps, API Gateway keeps the multi-value list.
    headers.extend(
        (str(name), str(value)) for name, value in single.items() if str(name).lower() not in multi_names
    )
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(str(raw_body), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise GatewayError("proxy result body is not valid base64") from exc
    else:
        body = str(raw_body).encode("utf-8")
    return HttpResponse(status=status, headers=headers, body=body)


class ApiGateway:
    """The REST API in front of the authorizer and API handlers.

    Each handler instance runs as one Lambda instance would: one invocation at a time, because a
    powertools resolver keeps the current event on a module-level object. ``api_instances`` are
    further copies of the API handler (``lambda_dispatch.load_handler_instances``): a request takes
    whichever is free, so a slow request (an upload rendering its templates) does not hold up the
    others, as Lambda scales out concurrent requests.
    """

    def __init__(
        self,
        *,
        api_handler: Handler,
        authorizer_handler: Handler | None,
        region: str = "us-east-1",
        stage: str = LOCAL_STAGE,
        api_function_name: str = "formica-api",
        authorizer_function_name: str = "formica-authorizer",
        api_instances: Sequence[Handler] = (),
    ) -> None:
        self._api_pool: queue.Queue[Handler] = queue.Queue()
        for instance in (api_handler, *api_instances):
            self._api_pool.put(instance)
        self._authorizer = authorizer_handler
        self._region = region
        self._stage = stage
        self._api_name = api_function_name
        self._authorizer_name = authorizer_function_name
        self._authorizer_lock = threading.Lock()

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one HTTP request as API Gateway would."""
        request_id = str(uuid.uuid4())
        route = resolve_route(request.method, request.path)
        if route is None:
            return missing_route_response(request_id)
        authorizer_context: dict[str, Any] | None = None
        if self._authorizer is not None and not route.public:
            decision = self._authorize(request, request_id)
            if isinstance(decision, HttpResponse):
                return decision
            authorizer_context = decision
        event = build_proxy_event(
            request, request_id=request_id, stage=self._stage, authorizer=authorizer_context, route=route
        )
        context = LocalLambdaContext(self._api_name, self._region, timeout_seconds=API_TIMEOUT_SECONDS)
        try:
            instance = self._api_pool.get()
            try:
                result = instance(event, context)
            finally:
                self._api_pool.put(instance)
            return proxy_result_to_response(result)
        except GatewayError:
            logger.exception("api handler returned an invalid proxy result", extra={"request_id": request_id})
            return bad_gateway_response(request_id)
        except Exception:
            # A crashing Lambda is a 502 from API Gateway, whatever it raised.
            logger.exception("api handler raised", extra={"request_id": request_id})
            return bad_gateway_response(request_id)

    def _authorize(self, request: HttpRequest, request_id: str) -> dict[str, Any] | HttpResponse:
        if self._authorizer is None:
            return {}
        event = build_authorizer_event(request, request_id=request_id, stage=self._stage, region=self._region)
        context = LocalLambdaContext(self._authorizer_name, self._region, timeout_seconds=API_TIMEOUT_SECONDS)
        try:
            with self._authorizer_lock:
                result = self._authorizer(event, context)
        except Exception as exc:
            # The documented way to answer 401 from an authorizer is to raise "Unauthorized".
            if str(exc) == "Unauthorized":
                return unauthorized_response(request_id)
            logger.exception("authorizer raised", extra={"request_id": request_id})
            return bad_gateway_response(request_id)
        if not isinstance(result, Mapping):
            return bad_gateway_response(request_id)
        if not policy_allows(result, event["methodArn"]):
            return access_denied_response(request_id)
        authorizer: dict[str, Any] = dict(result.get("context") or {})
        authorizer["principalId"] = result.get("principalId")
        authorizer["integrationLatency"] = 0
        return authorizer
