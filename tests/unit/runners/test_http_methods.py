"""formicary's six HTTP methods parse, validate and go out with their verb and body (127.0.0.1 server)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
from formica.jobs import DefinitionError, parse_definition
from formica.jobs.models import HTTP_METHODS, RunnerKind, TaskDefinition, TaskMethod
from formica.runners import http as http_runner
from formica.runners.egress import EgressPolicy

from tests.unit.runners.conftest import LocalServer, make_context

LOOPBACK = EgressPolicy.allowing("127.0.0.0/8")
FORMICARY_HTTP_METHODS = {
    "HTTP_GET",
    "HTTP_POST_FORM",
    "HTTP_POST_JSON",
    "HTTP_PUT_FORM",
    "HTTP_PUT_JSON",
    "HTTP_DELETE",
}


def definition(method: str) -> str:
    return f"job_type: calls\ntasks:\n- task_type: call\n  method: {method}\n  url: https://example.com/x\n"


def test_formicary_http_methods_are_the_http_set() -> None:
    assert {method.value for method in HTTP_METHODS} == FORMICARY_HTTP_METHODS


@pytest.mark.parametrize("method", sorted(FORMICARY_HTTP_METHODS))
def test_every_formicary_http_method_validates_and_runs_on_the_http_runner(method: str) -> None:
    assert parse_definition(definition(method)).tasks[0].runner is RunnerKind.HTTP


@pytest.mark.parametrize(("written", "suggested"), [("HTTP_PUT", "HTTP_PUT_"), ("HTTP_POST", "HTTP_POST_")])
def test_a_bare_verb_is_refused_with_the_closest_method(written: str, suggested: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(definition(written))
    message = caught.value.problems[0].message
    assert f"unknown method '{written}' (did you mean \"{suggested}" in message


@pytest.mark.parametrize(
    ("method", "verb", "form"),
    [
        ("HTTP_POST_FORM", "POST", True),
        ("HTTP_PUT_FORM", "PUT", True),
        ("HTTP_POST_JSON", "POST", False),
        ("HTTP_PUT_JSON", "PUT", False),
        ("HTTP_DELETE", "DELETE", False),
    ],
)
def test_each_method_sends_its_verb_and_body(server: LocalServer, method: str, verb: str, form: bool) -> None:
    task = TaskDefinition(
        task_type="call",
        method=TaskMethod(method),
        script=[server.url("/echo")],
        variables={"n": 3, "ok": True},
    )

    outcome = http_runner.run_http(task, make_context(), egress=LOOPBACK)

    request = server.requests[0]
    assert (outcome.exit_code, request.method) == ("200", verb)
    if form:
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert parse_qs(request.body.decode()) == {"n": ["3"], "ok": ["true"]}
    else:
        assert request.headers["content-type"] == "application/json"
        assert json.loads(request.body) == {"n": 3, "ok": True}
