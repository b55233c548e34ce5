"""The HTTP runner against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from formica.jobs.models import TaskDefinition
from formica.runners import http as http_runner
from formica.runners.base import LOG_CAP_BYTES, TaskContext, TaskOutcome
from formica.runners.egress import EgressPolicy
from formica.runners.http import (
    ERR_HTTP_CONNECTION,
    ERR_HTTP_INVALID_URL,
    ERR_HTTP_TOO_MANY_REDIRECTS,
    ERR_TASK_CANCELLED,
    ERR_TASK_TIMED_OUT,
    form_value,
    loggable_url,
    task_urls,
)

from tests.unit.runners.conftest import LocalServer, make_context

# The test server listens on 127.0.0.1: these tests open loopback explicitly (the egress guard's
# own tests are tests/security/test_egress.py).
LOOPBACK = EgressPolicy.allowing("127.0.0.0/8")


def run_http(task: TaskDefinition, ctx: TaskContext, **kwargs: Any) -> TaskOutcome:
    return http_runner.run_http(task, ctx, **{"egress": LOOPBACK, **kwargs})


def http_task(method: str, *urls: str, **fields: Any) -> TaskDefinition:
    return TaskDefinition(task_type="first", method=method, script=list(urls), **fields)


def test_get_success_exit_code_is_status_and_body_is_log(server: LocalServer) -> None:
    outcome = run_http(http_task("HTTP_GET", server.url("/todos/1")), make_context())

    assert outcome.exit_code == "200"
    assert outcome.error_code is None
    first_line, body = outcome.log.split("\n", 1)
    assert first_line.startswith(f"HTTP_GET {server.url('/todos/1')} -> 200 (")
    assert first_line.endswith(" ms)")
    assert json.loads(body)["title"] == "delectus"
    assert outcome.outputs["status"] == "200"
    assert json.loads(outcome.outputs["body"])["id"] == 1
    assert [request.method for request in server.requests] == ["GET"]


def test_404_is_the_exit_code_and_stops_the_remaining_urls(server: LocalServer) -> None:
    task = http_task(
        "HTTP_GET", server.url("/todos/1"), server.url("/blaaaaahtodos/1"), server.url("/todos/1")
    )

    outcome = run_http(task, make_context())

    assert outcome.exit_code == "404"
    assert outcome.error_code is None
    assert [request.path for request in server.requests] == ["/todos/1", "/blaaaaahtodos/1"]
    assert "-> 200" in outcome.log
    assert "-> 404" in outcome.log


def test_every_url_is_called_in_turn_including_folded_lines(server: LocalServer) -> None:
    folded = f"{server.url('/status/201')}\n\n  {server.url('/status/204')}  \n"
    task = http_task("HTTP_GET", folded, server.url("/todos/1"))

    outcome = run_http(task, make_context())

    assert outcome.exit_code == "200"
    assert [request.path for request in server.requests] == ["/status/201", "/status/204", "/todos/1"]


def test_url_field_is_used_when_script_is_empty(server: LocalServer) -> None:
    task = TaskDefinition(task_type="t", method="HTTP_GET", url=server.url("/status/202"))

    assert run_http(task, make_context()).exit_code == "202"


def test_headers_and_query_are_sent_and_merged_with_the_url_query(server: LocalServer) -> None:
    task = http_task(
        "HTTP_GET",
        server.url("/echo?own=1"),
        headers={"X-Token": "abc", "Accept": "application/json"},
        query={"page": "2", "q": "a b"},
    )

    run_http(task, make_context())

    request = server.requests[0]
    assert request.query == {"own": ["1"], "page": ["2"], "q": ["a b"]}
    assert request.headers["x-token"] == "abc"
    assert request.headers["accept"] == "application/json"
    assert request.body == b""


def test_post_form_sends_only_the_task_variables_form_encoded(server: LocalServer) -> None:
    task = http_task(
        "HTTP_POST_FORM",
        server.url("/echo"),
        variables={"name": "ant", "count": 3, "ok": True, "tags": ["a", "b"]},
    )

    outcome = run_http(task, make_context(params={"Secret": "never-sent"}))

    request = server.requests[0]
    assert outcome.exit_code == "200"
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body.decode()) == {
        "name": ["ant"],
        "count": ["3"],
        "ok": ["true"],
        "tags": ['["a","b"]'],
    }
    assert b"never-sent" not in request.body


@pytest.mark.parametrize(("method", "verb"), [("HTTP_POST_JSON", "POST"), ("HTTP_PUT_JSON", "PUT")])
def test_json_methods_send_variables_as_json(server: LocalServer, method: str, verb: str) -> None:
    variables = {"name": "ant", "count": 3, "nested": {"a": [1, 2]}}
    task = http_task(method, server.url("/echo"), variables=variables)

    outcome = run_http(task, make_context())

    request = server.requests[0]
    assert outcome.exit_code == "200"
    assert request.method == verb
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == variables


def test_json_method_keeps_a_content_type_the_task_sets(server: LocalServer) -> None:
    task = http_task(
        "HTTP_POST_JSON",
        server.url("/echo"),
        variables={"a": 1},
        headers={"content-type": "application/vnd.api+json"},
    )

    run_http(task, make_context())

    assert server.requests[0].headers["content-type"] == "application/vnd.api+json"


def test_delete_sends_json_body_only_with_variables(server: LocalServer) -> None:
    run_http(http_task("HTTP_DELETE", server.url("/status/204")), make_context())
    run_http(http_task("HTTP_DELETE", server.url("/echo"), variables={"id": 7}), make_context())

    bare, with_body = server.requests
    assert (bare.method, bare.body) == ("DELETE", b"")
    assert with_body.method == "DELETE"
    assert json.loads(with_body.body) == {"id": 7}


def test_get_sends_no_body_even_with_variables(server: LocalServer) -> None:
    run_http(http_task("HTTP_GET", server.url("/echo"), variables={"a": 1}), make_context())

    assert server.requests[0].body == b""


def test_redirects_are_followed(server: LocalServer) -> None:
    outcome = run_http(http_task("HTTP_GET", server.url("/redirect")), make_context())

    assert outcome.exit_code == "200"
    assert outcome.outputs["url"] == server.url("/todos/1")
    assert [request.path for request in server.requests] == ["/redirect", "/todos/1"]


def test_redirect_loop_is_bounded(server: LocalServer) -> None:
    outcome = run_http(http_task("HTTP_GET", server.url("/loop")), make_context())

    assert outcome.exit_code == ""
    assert outcome.error_code == ERR_HTTP_TOO_MANY_REDIRECTS
    assert 2 <= len(server.requests) <= 12


def test_redirect_to_a_file_url_is_refused(server: LocalServer) -> None:
    outcome = run_http(http_task("HTTP_GET", server.url("/to-file")), make_context())

    assert outcome.error_code == ERR_HTTP_INVALID_URL
    assert "root:" not in outcome.log


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "not a url", "http://"])
def test_non_http_urls_are_refused_before_any_call(server: LocalServer, url: str) -> None:
    task = http_task("HTTP_GET", server.url("/todos/1"), url)

    outcome = run_http(task, make_context())

    assert outcome.exit_code == ""
    assert outcome.error_code == ERR_HTTP_INVALID_URL
    assert server.requests == []


def test_task_without_any_url_is_an_invalid_url_outcome() -> None:
    outcome = run_http(TaskDefinition(task_type="t", method="HTTP_GET"), make_context())

    assert outcome.error_code == ERR_HTTP_INVALID_URL
    assert "names no URL" in (outcome.error_message or "")


def test_connection_refused_is_a_connection_error(closed_port: int) -> None:
    outcome = run_http(http_task("HTTP_GET", f"http://127.0.0.1:{closed_port}/x"), make_context())

    assert outcome.exit_code == ""
    assert outcome.error_code == ERR_HTTP_CONNECTION
    assert f"127.0.0.1:{closed_port}" in (outcome.error_message or "")
    assert "could not connect" in outcome.log


def test_slow_response_times_out_within_the_task_timeout(server: LocalServer) -> None:
    started = time.monotonic()
    outcome = run_http(http_task("HTTP_GET", server.url("/slow?secs=3")), make_context(timeout_seconds=0.5))
    elapsed = time.monotonic() - started

    assert outcome.exit_code == ""
    assert outcome.error_code == ERR_TASK_TIMED_OUT
    assert elapsed < 1.5
    assert "0.5s" in (outcome.error_message or "")


def test_trickling_body_cannot_outlive_the_deadline(server: LocalServer) -> None:
    # Each byte arrives well within a read timeout; the whole body (12 s) does not fit in 1 s.
    started = time.monotonic()
    outcome = run_http(http_task("HTTP_GET", server.url("/drip")), make_context(timeout_seconds=1.0))

    assert outcome.error_code == ERR_TASK_TIMED_OUT
    assert time.monotonic() - started < 2.5


def test_all_urls_share_one_deadline(server: LocalServer) -> None:
    task = http_task("HTTP_GET", server.url("/slow?secs=0.4"), server.url("/slow?secs=0.4"))

    outcome = run_http(task, make_context(timeout_seconds=0.6))

    assert outcome.error_code == ERR_TASK_TIMED_OUT
    assert "-> 200" in outcome.log  # the first call finished and stays in the log


def test_body_log_is_capped_and_says_so(server: LocalServer) -> None:
    outcome = run_http(http_task("HTTP_GET", server.url("/big")), make_context())

    assert outcome.exit_code == "200"
    assert len(outcome.log.encode()) < LOG_CAP_BYTES + 200
    assert outcome.log.rstrip().endswith(f"[log truncated at {LOG_CAP_BYTES} bytes]")
    assert "body" not in outcome.outputs  # not JSON, and too big anyway


def test_cancellation_stops_before_the_next_url(server: LocalServer) -> None:
    calls = iter([False, True])
    ctx = make_context(is_cancelled=lambda: next(calls))
    task = http_task("HTTP_GET", server.url("/todos/1"), server.url("/todos/1"))

    outcome = run_http(task, ctx)

    assert outcome.error_code == ERR_TASK_CANCELLED
    assert outcome.exit_code == ""
    assert len(server.requests) == 1


def test_an_injected_client_is_used_and_left_open(server: LocalServer) -> None:
    with httpx.Client(headers={"X-From-Client": "yes"}) as client:
        run_http(http_task("HTTP_GET", server.url("/echo")), make_context(), client=client)
        assert not client.is_closed

    assert server.requests[0].headers["x-from-client"] == "yes"


def test_non_http_method_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="SHELL"):
        run_http(TaskDefinition(task_type="t", method="SHELL", script=["echo"]), make_context())


def test_task_urls_and_form_values() -> None:
    task = TaskDefinition(task_type="t", method="HTTP_GET", script=["a\nb", " ", "c"], url="ignored")
    assert task_urls(task) == ["a", "b", "c"]
    assert form_value(False) == "false"
    assert form_value(None) == ""
    assert form_value({"k": 1}) == '{"k":1}'
    assert form_value(2.5) == "2.5"


def test_the_operator_log_line_carries_no_credentials_or_query(
    server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = server.url("/todos/1").replace("http://", "http://user:s3cret@") + "?api_key=s3cret"
    with caplog.at_level("INFO", logger="formica.runners.http"):
        outcome = run_http(http_task("HTTP_GET", secret_url), make_context())

    assert outcome.exit_code == "200"
    [record] = [r for r in caplog.records if r.getMessage() == "http request finished"]
    assert "s3cret" not in str(record.__dict__)
    assert record.__dict__["url"] == server.url("/todos/1") + "?..."


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://tok@github.com/bhatti/go-cicd.git", "https://github.com/bhatti/go-cicd.git"),
        ("https://a.example/x?token=t#frag", "https://a.example/x?..."),
        ("http://127.0.0.1:8080/p", "http://127.0.0.1:8080/p"),
        ("http://[::1", "<invalid url>"),
    ],
)
def test_loggable_url(url: str, shown: str) -> None:
    assert loggable_url(url) == shown
