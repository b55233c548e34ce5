"""API Gateway in front of the two handlers, for tests: sample events from events/ in, responses out.

The authorizer runs first (except on the public routes), exactly as API Gateway does: raising
"Unauthorized" answers 401, an Allow puts its context in ``requestContext.authorizer``.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formica.api.openapi import PUBLIC_ROUTES

EVENTS = Path(__file__).resolve().parents[3] / "events"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (a fresh copy each time)."""
    return json.loads((EVENTS / name).read_text())


@dataclass
class LambdaContext:
    function_name: str = "formica-api"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: str
    raw: dict[str, Any]

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


def _headers(result: dict[str, Any]) -> dict[str, str]:
    headers = {key: str(value) for key, value in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key] = str(values[-1])
    return headers


def proxy_event(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: str | bytes | None = None,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sample GET event turned into ``method path`` with these headers, query and body."""
    event = load_event("api/get_health.json")
    all_headers = {**event["headers"], **(headers or {})}
    event["httpMethod"] = method
    event["path"] = path
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["headers"] = all_headers
    event["multiValueHeaders"] = {key: [value] for key, value in all_headers.items()}
    event["queryStringParameters"] = dict(query) if query else None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    event["requestContext"]["httpMethod"] = method
    event["requestContext"]["path"] = "/prod" + path
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    if authorizer is not None:
        event["requestContext"]["authorizer"] = copy.deepcopy(authorizer)
    if isinstance(body, bytes):
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True
    else:
        event["body"] = body
        event["isBase64Encoded"] = False
    return event


def authorizer_event(method: str, path: str, authorization: str | None) -> dict[str, Any]:
    event = load_event("authorizer/request.json")
    event["httpMethod"] = method
    event["path"] = path
    event["methodArn"] = f"arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/{method}{path}"
    headers = {key: value for key, value in event["headers"].items() if key != "Authorization"}
    if authorization is not None:
        headers["Authorization"] = authorization
    event["headers"] = headers
    event["multiValueHeaders"] = {key: [value] for key, value in headers.items()}
    return event


class Gateway:
    """Calls the authorizer and the API handler the way API Gateway does."""

    def __init__(self, api_handler: Any, authorizer_handler: Any) -> None:
        self.api = api_handler
        self.authorizer = authorizer_handler

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        authorization: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        body: str | bytes | None = None,
        json_body: Any = None,
    ) -> ApiResponse:
        all_headers = dict(headers or {})
        if token is not None:
            authorization = f"Bearer {token}"
        if authorization is not None:
            all_headers["Authorization"] = authorization
        if json_body is not None:
            body = json.dumps(json_body)
            all_headers.setdefault("Content-Type", "application/json")
        query_strings = {key: str(value) for key, value in (query or {}).items() if value is not None}
        context: dict[str, Any] | None = None
        # The dashboard's page and files are public too (cdk/constructs/api.py, formica.local.gateway).
        dashboard = method == "GET" and (path == "/" or path.startswith("/ui/"))
        if (method, path) not in PUBLIC_ROUTES and not dashboard:
            try:
                decision = self.authorizer(
                    authorizer_event(method, path, authorization), LambdaContext("formica-authorizer")
                )
            except Exception as exc:
                if str(exc) != "Unauthorized":
                    # A failing authorizer is API Gateway's 500 (AUTHORIZER_FAILURE gateway response).
                    payload = {"error": "INTERNAL_ERROR", "message": "internal server error", "details": []}
                    return ApiResponse(500, {"Content-Type": "application/json"}, json.dumps(payload), {})
                # API Gateway's UNAUTHORIZED gateway response (the stack gives it the API's error shape).
                payload = {"error": "UNAUTHORIZED", "message": "Unauthorized", "details": []}
                return ApiResponse(401, {"Content-Type": "application/json"}, json.dumps(payload), {})
            statements = decision["policyDocument"]["Statement"]
            assert any(statement["Effect"] == "Allow" for statement in statements)
            context = {**decision["context"], "principalId": decision["principalId"]}
        event = proxy_event(
            method, path, headers=all_headers, query=query_strings, body=body, authorizer=context
        )
        result = self.api(event, LambdaContext())
        body_text = result.get("body") or ""
        if result.get("isBase64Encoded"):
            body_text = base64.b64decode(body_text).decode("utf-8", errors="replace")
        return ApiResponse(int(result["statusCode"]), _headers(result), body_text, result)


def wsgi_app(gateway: Gateway, token: str) -> Any:
    """A WSGI app in front of the gateway (for schemathesis' in-process calls), sending ``token``."""
    from urllib.parse import parse_qsl

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            body: str | bytes | None = raw.decode("utf-8") if raw else None
        except UnicodeDecodeError:
            body = raw
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        path = environ.get("PATH_INFO") or "/"
        response = gateway.call(
            environ["REQUEST_METHOD"], path, token=token, headers=headers, query=query, body=body
        )
        start_response(f"{response.status} X", list(response.headers.items()))
        return [response.body.encode("utf-8")]

    return app
