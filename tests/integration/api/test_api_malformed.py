"""Bad input answers 4xx, never 5xx; an unexpected failure answers 500 with a correlation id only;
no token ever reaches a log line."""

from __future__ import annotations

import logging
import os

import pytest

from functions.api.app import handler
from tests.integration.api.conftest import ApiWorld
from tests.integration.api.gateway import LambdaContext, proxy_event
from tests.integration.api.tables import TABLE

GARBAGE = os.urandom(2048) + b"\xff\xfe\x00"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("job_type: [unclosed", "application/yaml", 400),
        ("{{ if }}\ntasks: []", "application/yaml", 400),
        ("- just\n- a list\n", "application/yaml", 400),
        ("job_type: x\ntasks: 5\n", "application/yaml", 400),
        ("", "application/yaml", 400),
        (GARBAGE, "application/yaml", 400),
        (GARBAGE, "application/octet-stream", 400),
        ('{"job_type": ', "application/json", 400),
        ("[1, 2, 3]", "application/json", 400),
        ('{"job_type": 5, "tasks": "none"}', "application/json", 400),
        ("job_type: x\n" + "# padding\n" * 20_000, "application/yaml", 413),
        ("<xml/>", "application/xml", 415),
        ("a: &a [*a]", "application/yaml", 400),
        ("a: " + "[" * 5_000 + "]" * 5_000, "application/yaml", 400),
    ],
    ids=lambda value: repr(value)[:40],
)
def test_bad_definition_uploads_answer_4xx(
    world: ApiWorld, body: str | bytes, content_type: str, status: int
) -> None:
    response = world.call("POST", "/api/jobs/definitions", body=body, headers={"Content-Type": content_type})

    assert response.status == status, response.body
    assert response.json()["error"] in {"VALIDATION_ERROR", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (GARBAGE, "application/json"),
        ("not json", "application/json"),
        ("null", "application/json"),
        ('{"job_type": ["a"]}', "application/json"),
        ('{"job_type": "x", "params": {"k": "' + "v" * 70_000 + '"}}', "application/json"),
        ('{"job_type": "x", "job_priority": 1e309}', "application/json"),
        ('{"job_type": "x", "scheduled_at": "yesterday"}', "application/json"),
        ('{"job_type": "x"}', "text/plain"),
        ("[" * 10_000 + "]" * 10_000, "application/json"),
    ],
    ids=lambda value: repr(value)[:40],
)
def test_bad_submissions_answer_4xx(world: ApiWorld, body: str | bytes, content_type: str) -> None:
    response = world.call("POST", "/api/jobs/requests", body=body, headers={"Content-Type": content_type})

    assert 400 <= response.status < 500, response.body


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/api/jobs/definitions", {"limit": "0"}),
        ("GET", "/api/jobs/definitions", {"limit": "many"}),
        ("GET", "/api/jobs/requests", {"next_token": "x" * 3000}),
        ("GET", "/api/jobs/requests", {"next_token": "eyJnc2kxcGsiOiAiT1JHI290aGVyI1JFUVMifQ"}),
        ("GET", "/api/jobs/definitions/x", {"version": "-1"}),
        ("GET", "/api/jobs/requests/r/tasks/t/logs", {"attempt": "zero"}),
        ("GET", "/api/no/such/route", {}),
        ("PATCH", "/api/jobs/definitions", {}),
    ],
)
def test_bad_queries_and_routes_answer_4xx(
    world: ApiWorld, method: str, path: str, query: dict[str, str]
) -> None:
    response = world.call(method, path, query=query)

    assert 400 <= response.status < 500, response.body
    assert "error" in response.json()


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything every log record carries: message, structured keys, exception text."""
    formatter = logging.Formatter()
    parts = []
    for record in caplog.records:
        parts.append(repr(record.__dict__))
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
    return "\n".join(parts)


def test_an_unexpected_failure_answers_500_with_a_correlation_id_and_no_internals(
    world: ApiWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.ddb.delete_table(TableName=TABLE)  # the store is gone: nothing the caller did wrong
    event = proxy_event(
        "GET",
        "/api/jobs/definitions",
        authorizer={"org": "acme", "token_id": "tok_1", "principalId": "tok_1"},
    )

    result = handler(event, LambdaContext())

    assert result["statusCode"] == 500
    body = result["body"]
    assert event["requestContext"]["requestId"] in body
    for internal in ("ResourceNotFound", "Traceback", TABLE, "dynamodb", "boto"):
        assert internal not in body
    logged = _logged(caplog)
    assert "unexpected error" in logged and event["requestContext"]["requestId"] in logged
    assert "ResourceNotFoundException" in logged  # the operator sees the cause; the caller does not


def test_no_token_reaches_a_log_line(world: ApiWorld, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    created = world.call("POST", "/api/auth/tokens", json_body={"name": "ci"}).json()["token"]
    world.call("GET", "/api/jobs/definitions", token=created)
    world.call("GET", "/api/jobs/definitions", token="fmc_wrong-token-but-still-a-secret")
    world.call("GET", "/api/jobs/definitions", token=None, authorization="Bearer")
    world.ddb.delete_table(TableName=TABLE)
    world.call("GET", "/api/jobs/definitions", token=world.acme_token)  # the authorizer fails too

    logged = _logged(caplog)
    assert "request refused" in logged  # the refusals were logged, without the token
    for secret in (world.acme_token, created, "fmc_wrong-token-but-still-a-secret"):
        assert secret not in logged
