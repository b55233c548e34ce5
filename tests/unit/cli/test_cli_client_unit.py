"""The API client and the CLI's pure parts: error mapping, params, progress lines."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from formica.cli.client import ClientConfig, FormicaApiError, FormicaClient, FormicaClientError
from formica.cli.remote import CliUsageError, ProgressPrinter, format_request, parse_params, task_line

NOW = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)


class FakeApi:
    """A fake Formica API behind httpx's transport hook: records requests, answers from a table."""

    def __init__(self, answers: dict[tuple[str, str], httpx.Response]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.get(
            (request.method, request.url.path),
            httpx.Response(404, json={"error": "NOT_FOUND", "message": "no such route"}),
        )


def _client(api: FakeApi) -> FormicaClient:
    return FormicaClient(
        ClientConfig(server="http://api.test", token="fmc_x"), transport=httpx.MockTransport(api)
    )


def test_api_errors_carry_the_api_message_and_details() -> None:
    api = FakeApi(
        {
            ("POST", "/api/jobs/definitions"): httpx.Response(
                400,
                json={
                    "error": "VALIDATION_ERROR",
                    "message": "invalid job definition",
                    "details": [{"loc": "tasks", "msg": "x"}],
                },
            )
        }
    )
    with _client(api) as client, pytest.raises(FormicaApiError) as caught:
        client.upload_definition("job_type: x\n")
    assert caught.value.status == 400
    assert caught.value.error == "VALIDATION_ERROR"
    assert caught.value.message == "invalid job definition"
    assert caught.value.details == [{"loc": "tasks", "msg": "x"}]
    sent = api.requests[0]
    assert sent.headers["authorization"] == "Bearer fmc_x"
    assert sent.headers["content-type"] == "application/yaml"
    assert sent.content == b"job_type: x\n"


def test_submit_sends_the_contract_body_and_idempotency_key() -> None:
    api = FakeApi(
        {("POST", "/api/jobs/requests"): httpx.Response(201, json={"id": "r1", "job_state": "PENDING"})}
    )
    with _client(api) as client:
        result = client.submit("sensor-job", {"Key": "Value"}, idempotency_key="k1")
    assert result == {"id": "r1", "job_state": "PENDING"}
    assert json.loads(api.requests[0].content) == {"job_type": "sensor-job", "params": {"Key": "Value"}}
    assert api.requests[0].headers["idempotency-key"] == "k1"


def test_path_segments_are_escaped() -> None:
    api = FakeApi({})
    with _client(api) as client, pytest.raises(FormicaApiError):
        client.logs("r/1", "a b")
    assert api.requests[0].url.raw_path == b"/api/jobs/requests/r%2F1/tasks/a%20b/logs"


def test_pagination_follows_next_token() -> None:
    pages = iter(
        [
            httpx.Response(200, json={"records": [{"job_type": "a"}], "next_token": "t2"}),
            httpx.Response(200, json={"records": [{"job_type": "b"}], "next_token": None}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return next(pages)

    client = FormicaClient(ClientConfig(server="http://api.test"), transport=httpx.MockTransport(handler))
    assert [d["job_type"] for d in client.iter_definitions()] == ["a", "b"]


def test_unreachable_server_is_a_client_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    client = FormicaClient(ClientConfig(server="http://127.0.0.1:9"), transport=httpx.MockTransport(refuse))
    with pytest.raises(FormicaClientError, match="cannot reach"):
        client.health()


def test_config_needs_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORMICA_SERVER", raising=False)
    with pytest.raises(FormicaClientError, match="FORMICA_SERVER"):
        ClientConfig.from_environment()
    monkeypatch.setenv("FORMICA_SERVER", "http://127.0.0.1:8080/")
    monkeypatch.setenv("FORMICA_TOKEN", "fmc_env")
    config = ClientConfig.from_environment(token="fmc_flag")
    assert (config.server, config.token) == ("http://127.0.0.1:8080", "fmc_flag")


def test_parse_params() -> None:
    assert parse_params(["Key=Value", "url=http://x/?a=b"]) == {"Key": "Value", "url": "http://x/?a=b"}
    with pytest.raises(CliUsageError):
        parse_params(["novalue"])


def _task(**fields: Any) -> dict[str, Any]:
    base = {"task_type": "first", "task_state": "EXECUTING", "attempts": 1, "exit_code": "404"}
    base.update(fields)
    return base


def test_progress_prints_only_changes_and_the_final_state() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, clock=lambda: NOW)
    running = {"id": "r1", "job_state": "STARTED", "tasks": [_task(started_at="2026-01-01T12:00:00+00:00")]}
    assert len(printer.update(running)) == 1
    assert printer.update(running) == []
    done = {
        "id": "r1",
        "job_state": "COMPLETED",
        "started_at": "2026-01-01T12:00:00+00:00",
        "ended_at": "2026-01-01T12:00:07.5+00:00",
        "tasks": [
            _task(
                task_state="COMPLETED",
                attempts=2,
                exit_code="0",
                started_at="2026-01-01T12:00:00+00:00",
                ended_at="2026-01-01T12:00:05+00:00",
            )
        ],
    }
    lines = printer.update(done)
    assert "COMPLETED" in lines[0] and "attempt 2" in lines[0] and "exit 0" in lines[0] and "5.0s" in lines[0]
    assert lines[-1] == "request r1 COMPLETED after 7.5s"
    assert out.getvalue().count("\n") == 3


def test_task_line_shows_errors_and_missing_exit_code() -> None:
    line = task_line(
        _task(task_state="FAILED", exit_code="", error_code="ERR_TASK_TIMED_OUT", error_message="15s"), NOW
    )
    assert "exit -" in line
    assert "ERR_TASK_TIMED_OUT: 15s" in line


def test_format_request_lists_tasks() -> None:
    text = format_request(
        {
            "id": "r1",
            "job_type": "sensor-job",
            "job_version": 1,
            "job_state": "FAILED",
            "params": {"Key": "Value"},
            "tasks": [_task()],
        },
        now=NOW,
    )
    assert "sensor-job v1  FAILED" in text
    assert "first" in text and "404" in text
