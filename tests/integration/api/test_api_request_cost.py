"""GET of one request answers its counted usage and its dollars at the region's list prices."""

from __future__ import annotations

import pytest
from formica.engine.usage import LambdaUsage, RequestUsage

from tests.integration.api.conftest import DATA, ApiWorld


@pytest.fixture
def submitted(world: ApiWorld) -> str:
    response = world.call(
        "POST",
        "/api/jobs/definitions",
        body=(DATA / "hello-job.yaml").read_text(),
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status == 201
    created = world.call("POST", "/api/jobs/requests", json_body={"job_type": "hello-job"})
    assert created.status == 201
    return str(created.json()["id"])


def test_get_request_answers_its_cost(world: ApiWorld, submitted: str) -> None:
    # Given the walk counted 8 transitions, 3 shell-task calls of 1.2 s at 256 MB and some requests
    world.services.requests.add_usage(
        submitted,
        RequestUsage(
            transitions=8,
            lambdas={"shell_task": LambdaUsage(invocations=3, mb_ms=256 * 1200)},
            dynamodb_read_units=10,
            dynamodb_write_units=20,
            s3_write_requests=3,
            s3_read_requests=2,
        ),
    )
    # When the request is read
    response = world.call("GET", f"/api/jobs/requests/{submitted}")

    # Then its cost has the quantities and the dollars at us-east-1 list prices
    assert response.status == 200
    cost = response.json()["cost"]
    assert cost["transitions"] == 8
    assert cost["lambdas"] == [{"function": "shell_task", "invocations": 3, "gb_seconds": pytest.approx(0.3)}]
    assert (cost["dynamodb_read_units"], cost["dynamodb_write_units"]) == (10, 20)
    assert cost["dollars"]["transitions"] == pytest.approx(0.0002)
    assert cost["dollars"]["total"] == pytest.approx(0.0002 + 0.00000460002 + 0.00001375 + 0.0000158)
    assert cost["prices_region"] == "us-east-1"
    # and a listing leaves cost out (it would price every row)
    listed = world.call("GET", "/api/jobs/requests").json()["records"]
    assert [row["cost"] for row in listed if row["id"] == submitted] == [None]


def test_a_request_that_has_not_run_costs_nothing(world: ApiWorld, submitted: str) -> None:
    cost = world.call("GET", f"/api/jobs/requests/{submitted}").json()["cost"]
    assert cost["transitions"] == 0
    assert cost["dollars"]["total"] == 0


def test_another_organisations_request_has_no_cost_to_read(world: ApiWorld, submitted: str) -> None:
    response = world.call("GET", f"/api/jobs/requests/{submitted}", token=world.other_token)
    assert response.status == 404
    assert "cost" not in response.json()
