"""The API Gateway emulation of `formica dev`: HTTP request -> proxy event -> HTTP response."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from formica.local.gateway import (
    ApiGateway,
    GatewayError,
    HttpRequest,
    build_authorizer_event,
    build_proxy_event,
    method_arn,
    policy_allows,
    proxy_result_to_response,
    resolve_route,
)

TOKEN = "fmc_test-token-0123456789"


def _request(
    method: str = "GET", target: str = "/api/jobs/requests", body: bytes = b"", **headers: str
) -> HttpRequest:
    pairs = [("Host", "127.0.0.1:8080"), ("User-Agent", "curl/8")]
    pairs.extend((key.replace("_", "-"), value) for key, value in headers.items())
    return HttpRequest(method=method, target=target, headers=pairs, body=body, source_ip="127.0.0.9")


class RecordingApi:
    """A trivial proxy handler: echoes what it got, as a JSON body."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"path": event["path"], "function": context.function_name}),
        }


def allow_authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    token = (event["headers"] or {}).get("Authorization", "")
    if token != f"Bearer {TOKEN}":
        raise Exception("Unauthorized")
    return {
        "principalId": "tok_1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:*"}
            ],
        },
        "context": {"org": "acme", "token_id": "tok_1"},
    }


def test_proxy_event_carries_headers_queries_and_context() -> None:
    # Given a request with a repeated header and a repeated query parameter
    request = HttpRequest(
        method="get",
        target="/api/jobs/requests?job_state=FAILED&job_state=COMPLETED&limit=2&empty=",
        headers=[("Host", "h"), ("X-Tag", "a"), ("X-Tag", "b")],
        source_ip="127.0.0.5",
    )
    # When it becomes an event
    event = build_proxy_event(request, request_id="rid-1", authorizer={"org": "acme"})
    # Then single-value maps keep the last value and multi-value maps keep all, as API Gateway does
    assert event["httpMethod"] == "GET"
    assert event["path"] == "/api/jobs/requests"
    assert event["headers"]["X-Tag"] == "b"
    assert event["multiValueHeaders"]["X-Tag"] == ["a", "b"]
    assert event["queryStringParameters"] == {"job_state": "COMPLETED", "limit": "2", "empty": ""}
    assert event["multiValueQueryStringParameters"]["job_state"] == ["FAILED", "COMPLETED"]
    assert event["resource"] == "/api/{proxy+}"
    assert event["pathParameters"] == {"proxy": "jobs/requests"}
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["requestId"] == "rid-1"
    assert context["stage"] == "local"
    assert context["identity"]["sourceIp"] == "127.0.0.5"
    assert context["authorizer"] == {"org": "acme"}


@pytest.mark.parametrize(
    ("method", "path", "resource", "parameters", "public"),
    [
        ("GET", "/api/health", "/api/health", None, True),
        ("POST", "/api/health", "/api/{proxy+}", {"proxy": "health"}, False),
        ("GET", "/api", "/api", None, False),
        ("DELETE", "/api/jobs/definitions/x", "/api/{proxy+}", {"proxy": "jobs/definitions/x"}, False),
        ("POST", "/jobs/requests", "/jobs/requests", None, False),
        ("GET", "/", "/", None, True),
        ("GET", "/ui/main.js", "/ui/{name}", {"name": "main.js"}, True),
    ],
)
def test_routes_are_the_cdk_stacks(
    method: str, path: str, resource: str, parameters: dict[str, str] | None, public: bool
) -> None:
    route = resolve_route(method, path)
    assert route is not None
    assert (route.resource, route.path_parameters, route.public) == (resource, parameters, public)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs/requests"),
        ("POST", "/"),
        ("GET", "/ui/"),
        ("GET", "/ui/a/b.js"),
        ("POST", "/ui/main.js"),
        ("GET", "/apix"),
        ("TRACE", "/api/jobs/definitions"),
        ("CONNECT", "/api"),
        ("PROPFIND", "/api/health"),
    ],
)
def test_undeclared_routes_and_methods_answer_the_stacks_404(method: str, path: str) -> None:
    # cdk/constructs/api.py turns API Gateway's MISSING_AUTHENTICATION_TOKEN answer into this 404
    api = RecordingApi()
    response = ApiGateway(api_handler=api, authorizer_handler=allow_authorizer).handle(_request(method, path))
    assert response.status == 404
    assert json.loads(response.body) == {"error": "NOT_FOUND", "message": "no such route", "details": []}
    assert response.header("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    assert api.events == []


def test_no_query_string_gives_null_maps_and_path_is_decoded() -> None:
    event = build_proxy_event(_request(target="/api/jobs/definitions/my%20job"), request_id="r")
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["path"] == "/api/jobs/definitions/my job"


def test_text_body_is_passed_as_text_and_binary_as_base64() -> None:
    text = build_proxy_event(_request("POST", body="job_type: é\n".encode()), request_id="r")
    assert text["body"] == "job_type: é\n"
    assert text["isBase64Encoded"] is False
    garbage = bytes([0xFF, 0xFE, 0x00, 0x81])
    binary = build_proxy_event(_request("POST", body=garbage), request_id="r")
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == garbage


def test_authorizer_event_is_a_request_event_with_method_arn() -> None:
    event = build_authorizer_event(_request("POST", "/jobs/requests", body=b"{}"), request_id="r")
    assert event["type"] == "REQUEST"
    assert event["methodArn"].endswith("/local/POST/jobs/requests")
    assert "body" not in event


@pytest.mark.parametrize(
    ("statements", "allowed"),
    [
        ([{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:*"}], True),
        (
            [
                {
                    "Effect": "Allow",
                    "Action": "execute-api:*",
                    "Resource": ["arn:aws:execute-api:*/local/GET/*"],
                }
            ],
            True,
        ),
        (
            [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:*/POST/*"}],
            False,
        ),
        (
            [
                {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"},
                {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "*"},
            ],
            False,
        ),
        ([], False),
    ],
)
def test_policy_evaluation(statements: list[dict[str, Any]], allowed: bool) -> None:
    arn = method_arn(_request("GET", "/api/jobs/requests"))
    result = {"policyDocument": {"Version": "2012-10-17", "Statement": statements}}
    assert policy_allows(result, arn) is allowed


def test_response_merges_headers_and_decodes_base64() -> None:
    response = proxy_result_to_response(
        {
            "statusCode": 302,
            "headers": {"Location": "http://x/y", "Set-Cookie": "ignored"},
            "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]},
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
        }
    )
    assert response.status == 302
    assert response.header("location") == "http://x/y"
    assert [v for k, v in response.headers if k.lower() == "set-cookie"] == ["a=1", "b=2"]
    assert response.body == b"\x00\x01"


@pytest.mark.parametrize(
    "bad", [None, "text", {"statusCode": "abc"}, {"body": "!!", "isBase64Encoded": True}]
)
def test_invalid_proxy_results_are_gateway_errors(bad: Any) -> None:
    with pytest.raises(GatewayError):
        proxy_result_to_response(bad)


def test_gateway_calls_authorizer_then_api_with_its_context() -> None:
    api = RecordingApi()
    gateway = ApiGateway(api_handler=api, authorizer_handler=allow_authorizer)
    response = gateway.handle(_request(Authorization=f"Bearer {TOKEN}"))
    assert response.status == 200
    assert json.loads(response.body) == {"path": "/api/jobs/requests", "function": "formica-api"}
    authorizer = api.events[0]["requestContext"]["authorizer"]
    assert authorizer["org"] == "acme"
    assert authorizer["token_id"] == "tok_1"
    assert authorizer["principalId"] == "tok_1"


def test_gateway_answers_401_without_calling_the_api() -> None:
    api = RecordingApi()
    gateway = ApiGateway(api_handler=api, authorizer_handler=allow_authorizer)
    response = gateway.handle(_request(Authorization="Bearer wrong"))
    assert response.status == 401
    assert json.loads(response.body)["error"] == "UNAUTHORIZED"
    assert api.events == []


def test_gateway_answers_403_on_a_deny_policy() -> None:
    def deny(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "principalId": "x",
            "policyDocument": {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]},
        }

    response = ApiGateway(api_handler=RecordingApi(), authorizer_handler=deny).handle(_request())
    assert response.status == 403


@pytest.mark.parametrize("path", ["/api/health", "/api/openapi.json", "/api/docs"])
def test_public_routes_skip_the_authorizer(path: str) -> None:
    api = RecordingApi()
    gateway = ApiGateway(api_handler=api, authorizer_handler=allow_authorizer)
    response = gateway.handle(_request("GET", path))
    assert response.status == 200
    assert "authorizer" not in api.events[0]["requestContext"]


def test_a_crashing_api_handler_is_a_502_without_internals() -> None:
    def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    response = ApiGateway(api_handler=crash, authorizer_handler=None).handle(_request())
    assert response.status == 502
    assert b"secret internals" not in response.body
    body = json.loads(response.body)
    # The same key as the API's own 500: one name for the id to quote to the operator.
    assert body["correlation_id"] == response.header("x-amzn-RequestId")


def test_a_slow_api_call_does_not_hold_up_the_others() -> None:
    # Given an API whose first instance is busy (an upload rendering its templates, say)
    import threading

    release = threading.Event()
    busy_started = threading.Event()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        busy_started.set()
        assert release.wait(10)
        return {"statusCode": 200, "body": "slow"}

    gateway = ApiGateway(
        api_handler=slow, authorizer_handler=allow_authorizer, api_instances=[RecordingApi()]
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    first = threading.Thread(target=gateway.handle, args=(_request(**headers),))
    first.start()
    try:
        assert busy_started.wait(5)
        # When a second request arrives meanwhile, then another instance answers it at once
        answered = gateway.handle(_request(**headers))
        assert answered.status == 200
        assert json.loads(answered.body)["function"] == "formica-api"
    finally:
        release.set()
        first.join(10)


def test_the_dev_server_loads_independent_api_instances() -> None:
    from formica.local.lambda_dispatch import load_handler_instances

    handlers = load_handler_instances("api", 3)

    # Each copy is the same file loaded as its own module: its resolver is its own
    modules = {handler.__module__ for handler in handlers}
    assert len(modules) == 3
    import sys

    assert len({id(sys.modules[name].app) for name in modules}) == 3
