"""Who submitted a request: the name of the API token it came with, stored on the request and seen
by its templates as ``UserID`` (it rendered empty before); ``DateMonth`` is the month's name.

Through API Gateway proxy events under moto (the authorizer runs first, as in AWS).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from formica.api.auth import CONTEXT_ORG, CONTEXT_TOKEN_ID, principal_from_authorizer_context
from formica.jobs import load_definition
from formica.jobs.templates import runtime_context, validation_context

from tests.integration.api.conftest import ApiWorld

WHO = """\
job_type: who
tasks:
- task_type: greet
  method: SHELL
  script:
    - echo submitted by {{ .UserID }} in {{ .DateMonth }}
"""


def submit(world: ApiWorld, token: str) -> str:
    response = world.call("POST", "/api/jobs/requests", json_body={"job_type": "who"}, token=token)
    assert response.status == 201, response.json()
    return str(response.json()["id"])


def test_a_request_records_the_name_of_the_token_that_submitted_it(world: ApiWorld) -> None:
    # Given a definition that prints UserID, and two tokens of the organisation
    assert (
        world.call(
            "POST", "/api/jobs/definitions", body=WHO, headers={"Content-Type": "application/yaml"}
        ).status
        == 201
    )
    _, bot = world.services.tokens.create("acme", "deploy-bot")

    # When each submits
    by_bot = submit(world, bot)
    by_tests = submit(world, world.acme_token)

    # Then each request names its own token, and its templates render it
    stored = world.services.requests.get(by_bot)
    assert stored is not None and stored.user_id == "deploy-bot"
    other = world.services.requests.get(by_tests)
    assert other is not None and other.user_id == "tests"
    raw = world.services.definitions.get_version("acme", "who")
    assert raw is not None
    context = runtime_context(
        job_id=stored.request_id,
        job_type="who",
        org=stored.org,
        user_id=stored.user_id,
        now=datetime(2024, 12, 3, tzinfo=UTC),
    )
    script = load_definition(raw.raw_yaml, context).tasks[0].script
    assert script == ["echo submitted by deploy-bot in December"]


def test_an_authorizer_answer_cached_before_token_names_still_authorizes() -> None:
    principal = principal_from_authorizer_context({CONTEXT_ORG: "acme", CONTEXT_TOKEN_ID: "t-1"})
    assert (principal.org, principal.token_id, principal.token_name) == ("acme", "t-1", "")


@pytest.mark.parametrize(("month", "name"), [(1, "January"), (6, "June"), (12, "December")])
def test_date_month_is_the_months_english_name(month: int, name: str) -> None:
    context = runtime_context(job_id="r", job_type="t", org="o", now=datetime(2024, month, 28, tzinfo=UTC))
    assert context["DateMonth"] == name
    assert (context["DateYear"], context["DateDay"]) == (2024, 28)


def test_date_month_at_upload_validation_is_january() -> None:
    assert validation_context()["DateMonth"] == "January"
