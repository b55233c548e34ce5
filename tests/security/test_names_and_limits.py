"""Tenant isolation: names that become DynamoDB and S3 keys follow one rule, and every size has a limit.

Job definitions, params and every API input are untrusted: bad input answers a 4xx that names the
problem and changes nothing, never a 500.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from formica.cli import main
from formica.jobs import DefinitionError, parse_definition
from formica.jobs.limits import DEFINITION_MAX_BYTES, NAME_MAX_CHARS
from formica.jobs.models import JobDefinition
from formica.store.definitions import DefinitionRepository, DefinitionTooLargeToStoreError
from formica.store.tokens import TokenRepository

from tests.integration.api import conftest as api_fixtures
from tests.integration.api.conftest import ApiWorld

aws, ddb, world = api_fixtures.aws, api_fixtures.ddb, api_fixtures.world  # the API's moto fixtures

YAML = {"Content-Type": "application/yaml"}
TRAVERSAL = f"../../local/{uuid.uuid4()}/greet"


def definition(job_type: str = "hello-job", task_type: str = "greet", **extra: Any) -> str:
    task = {"task_type": task_type, "method": "SHELL", "script": ["echo hi"], **extra}
    return json.dumps({"job_type": job_type, "tasks": [task]})


def problems_of(text: str) -> list[Any]:
    with pytest.raises(DefinitionError) as info:
        parse_definition(text)
    return info.value.problems


def upload(world: ApiWorld, text: str, token: str | None = None) -> Any:
    return world.call(
        "POST", "/api/jobs/definitions", body=text, headers=YAML, token=token or world.acme_token
    )


def stored_definitions(world: ApiWorld) -> list[str]:
    return [record["job_type"] for record in world.call("GET", "/api/jobs/definitions").json()["records"]]


# -- the name rule, in the language (`formica validate`) -------------------------------------------


BAD_NAMES = [
    pytest.param(TRAVERSAL, id="traversal"),
    pytest.param("..", id="dot-dot"),
    pytest.param("a/b", id="slash"),
    pytest.param("a#b", id="hash"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("caf\u00e9", id="non-ascii"),
    pytest.param("-leading-dash", id="leading-dash"),
    pytest.param(".hidden", id="leading-dot"),
    pytest.param("a b", id="space"),
    pytest.param("x" * (NAME_MAX_CHARS + 1), id="101-chars"),
    pytest.param("x" * 1500, id="1500-chars"),
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_task_type_outside_the_name_rule_is_refused_naming_field_task_rule_and_line(name: str) -> None:
    text = (
        f"job_type: hello-job\ntasks:\n- task_type: {json.dumps(name)}\n  method: SHELL\n  script: [date]\n"
    )

    problems = problems_of(text)

    (problem,) = [p for p in problems if p.field == "task_type"]
    assert problem.line == 3
    assert problem.task_type == name
    assert "[A-Za-z0-9][A-Za-z0-9._-]*" in problem.message
    assert f"at most {NAME_MAX_CHARS} characters" in problem.message


@pytest.mark.parametrize("name", BAD_NAMES)
def test_job_type_outside_the_name_rule_is_refused(name: str) -> None:
    text = f"job_type: {json.dumps(name)}\ntasks:\n- task_type: t\n  method: SHELL\n  script: [date]\n"

    problems = problems_of(text)

    (problem,) = [p for p in problems if p.field == "job_type"]
    assert problem.line == 1
    assert "[A-Za-z0-9][A-Za-z0-9._-]*" in problem.message


def test_fork_job_type_follows_the_rule_which_admits_formicarys_names_up_to_the_limit() -> None:
    text = (
        "job_type: parent\ntasks:\n- task_type: fork\n  method: FORK_JOB\n  fork_job_type: ../other-org/job\n"
    )

    (problem,) = [p for p in problems_of(text) if p.field == "fork_job_type"]
    assert (problem.line, problem.task_type) == (5, "fork")
    assert "[A-Za-z0-9][A-Za-z0-9._-]*" in problem.message

    longest = "j" * NAME_MAX_CHARS
    job = parse_definition(
        f"job_type: {longest}\ntasks:\n"
        "- task_type: io.formicary.a_b-1\n  method: FORK_JOB\n  fork_job_type: io.formicary.stock-plugin\n"
        "  on_completed: T2\n"
        "- task_type: T2\n  method: SHELL\n  script: [date]\n"
    )
    assert job.job_type == longest


def test_formica_validate_says_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"job_type: ok\ntasks:\n- task_type: {TRAVERSAL}\n  method: SHELL\n  script: [date]\n")

    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f'line 3, task "{TRAVERSAL}": task_type' in err
    assert "[A-Za-z0-9][A-Za-z0-9._-]*" in err


# -- the name rule through the API -----------------------------------------------------------------


def test_traversal_task_type_is_refused_at_upload_and_nothing_is_stored(world: ApiWorld) -> None:
    text = (
        "job_type: hello-job\n"
        "tasks:\n"
        "- task_type: greet\n"
        "  method: SHELL\n"
        "  script: [date]\n"
        "  on_completed: sneak\n"
        f"- task_type: {TRAVERSAL}\n"
        "  method: SHELL\n"
        "  script: [date]\n"
    )

    response = upload(world, text)

    assert response.status == 400, response.body[:500]
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    (detail,) = [d for d in body["details"] if d["field"] == "task_type"]
    assert (detail["line"], detail["task_type"]) == (7, TRAVERSAL)
    assert "[A-Za-z0-9][A-Za-z0-9._-]*" in detail["message"]
    assert stored_definitions(world) == []


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_job_types_are_400_at_upload_never_500(world: ApiWorld, name: str) -> None:
    response = upload(world, definition(job_type=name))

    assert response.status == 400, response.body[:500]
    assert any(detail["field"] == "job_type" for detail in response.json()["details"])
    assert stored_definitions(world) == []


def test_submitting_a_job_type_outside_the_rule_is_400_naming_job_type(world: ApiWorld) -> None:
    for name in (TRAVERSAL, "x" * 1500, "a#b"):
        response = world.call("POST", "/api/jobs/requests", json_body={"job_type": name})

        assert response.status == 400, response.body[:500]
        assert any(detail["field"] == "job_type" for detail in response.json()["details"])


def test_organisation_names_follow_the_rule(ddb: Any) -> None:
    tokens = TokenRepository("formica-api-test", client=ddb)
    for org in ("acme#JOBS", "a/b", "x" * 1500, ""):
        with pytest.raises(ValueError, match="organisation"):
            tokens.create(org, "ci")
    with pytest.raises(ValueError, match="token name"):
        tokens.create("acme", "n" * 1500)


# -- limits ---------------------------------------------------------------------------------------


def test_the_definition_size_limit_is_the_same_for_validate_and_the_api(world: ApiWorld) -> None:
    padding = "#" * (DEFINITION_MAX_BYTES + 1 - len(definition()) - 1)
    over = definition() + "\n" + padding

    assert len(over.encode()) == DEFINITION_MAX_BYTES + 1
    with pytest.raises(DefinitionError, match=f"the limit is {DEFINITION_MAX_BYTES}"):
        parse_definition(over)
    response = upload(world, over)
    assert response.status == 413, response.body[:500]
    assert str(DEFINITION_MAX_BYTES) in response.json()["message"]
    assert upload(world, over[:-1]).status == 201


def test_a_definition_whose_aliases_expand_past_the_item_limit_is_413_not_500(world: ApiWorld) -> None:
    # 100 KB of text, named 60 times: small as YAML, 6 MB once parsed (DynamoDB items stop at 400 KB).
    text = (
        "job_type: aliases\n"
        f"job_variables:\n  big: &big {'x' * 100_000}\n"
        "tasks:\n- task_type: t\n  method: SHELL\n  script:\n" + "  - *big\n" * 60
    )

    response = upload(world, text)

    assert response.status == 413, response.body[:500]
    assert "parsed" in response.json()["message"]
    assert stored_definitions(world) == []


def test_the_store_refuses_a_version_item_over_dynamodbs_limit_before_writing(ddb: Any) -> None:
    repository = DefinitionRepository("formica-api-test", client=ddb)
    big = JobDefinition.model_validate(
        {"job_type": "big", "description": "d" * 300_000, "tasks": [{"task_type": "t", "method": "SHELL"}]}
    )

    with pytest.raises(DefinitionTooLargeToStoreError, match="item limit"):
        repository.put_version("acme", "x" * 120_000, big)
    assert repository.get_head("acme", "big") is None


def _hello(world: ApiWorld) -> None:
    assert upload(world, definition()).status == 201


def test_params_over_64_kib_are_413_with_the_reason_and_nothing_is_stored(world: ApiWorld) -> None:
    _hello(world)
    for size in (65 * 1024, 500 * 1024):
        response = world.call(
            "POST", "/api/jobs/requests", json_body={"job_type": "hello-job", "params": {"blob": "v" * size}}
        )

        assert response.status == 413, response.body[:300]
        body = response.json()
        assert body["error"] == "PAYLOAD_TOO_LARGE"
        assert "params" in body["message"] and "65536" in body["message"]
    assert world.call("GET", "/api/jobs/requests").json()["records"] == []
    fits = world.call(
        "POST", "/api/jobs/requests", json_body={"job_type": "hello-job", "params": {"blob": "v" * 60_000}}
    )
    assert fits.status == 201, fits.body[:300]


def test_a_job_type_past_the_limit_in_a_path_or_a_filter_is_400(world: ApiWorld) -> None:
    for name in ("x" * (NAME_MAX_CHARS + 1), "x" * 1500):
        for method, path, query in (
            ("GET", f"/api/jobs/definitions/{name}", None),
            ("DELETE", f"/api/jobs/definitions/{name}", None),
            ("GET", "/api/jobs/requests", {"job_type": name}),
        ):
            response = world.call(method, path, query=query)

            assert response.status == 400, (method, path[:60], response.body[:300])
