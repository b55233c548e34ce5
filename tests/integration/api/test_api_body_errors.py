"""A malformed body is told by line and column; a misspelt field gets the field it was meant to be."""

from __future__ import annotations

from tests.integration.api.conftest import ApiWorld

JSON = {"Content-Type": "application/json"}


def test_a_malformed_submission_names_line_and_column(world: ApiWorld) -> None:
    # Given a body cut short on its second line
    body = '{"job_type": "x",\n  "params": {'

    # When it is submitted
    answer = world.call("POST", "/api/jobs/requests", body=body, headers=JSON)

    # Then the detail names the body, the line and the column, not a character offset
    assert answer.status == 400
    (detail,) = answer.json()["details"]
    assert detail["field"] == "body"
    assert detail["message"].startswith("the body is not valid JSON: ")
    assert detail["message"].endswith("at line 2, column 14")


def test_a_misspelt_field_suggests_the_right_one(world: ApiWorld) -> None:
    answer = world.call("POST", "/api/jobs/requests", json_body={"job_type": "x", "param": {}})

    assert answer.status == 400
    (detail,) = answer.json()["details"]
    assert detail["field"] == "param"
    assert detail["message"] == 'Extra inputs are not permitted (did you mean "params"?)'


def test_a_malformed_json_definition_names_line_and_column(world: ApiWorld) -> None:
    answer = world.call("POST", "/api/jobs/definitions", body='{\n "job_type": }', headers=JSON)

    assert answer.status == 400
    body = answer.json()
    assert body["message"].startswith("the job definition is not valid JSON: ")
    assert body["message"].endswith("at line 2, column 14")
    assert body["details"][0]["field"] == "body"
