"""The OpenAPI document: committed copy current, served copy the same, and no 5xx under schemathesis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from formica.api.openapi import load_app, openapi_json
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

from tests.integration.api.conftest import ApiWorld
from tests.integration.api.gateway import wsgi_app

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "docs" / "openapi.json"


def test_committed_openapi_document_is_current() -> None:
    generated = openapi_json(load_app())

    assert COMMITTED.exists(), "run `make openapi` and commit docs/openapi.json"
    assert COMMITTED.read_text() == generated, "docs/openapi.json is stale: run `make openapi`"


def test_served_document_is_the_committed_one(world: ApiWorld) -> None:
    served = world.call("GET", "/api/openapi.json", token=None)

    assert served.json() == json.loads(COMMITTED.read_text())


def test_every_route_is_documented_with_the_error_shape() -> None:
    document = json.loads(openapi_json(load_app()))
    operations = [
        (method.upper(), path, op) for path, item in document["paths"].items() for method, op in item.items()
    ]

    assert len(operations) == 50
    for method, path, operation in operations:
        assert "500" in operation["responses"], (method, path)
        if path != "/api/health":
            # The grants and trigger routes answer 401 too, but their credential is the body's
            # capability or the webhook's signature.
            if path not in ("/api/grants", "/api/triggers/{org}/{job_type}/{name}"):
                assert operation["security"] == [{"bearerAuth": []}], (method, path)
            else:
                assert "security" not in operation
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }
    assert "HTTPValidationError" not in document["components"]["schemas"]


# powertools emits OpenAPI 3.1; schemathesis 3.x reads it behind its experimental switch.
schemathesis.experimental.OPEN_API_3_1.enable()
schema = schemathesis.from_dict(
    json.loads(openapi_json(load_app())),
    data_generation_methods=[
        schemathesis.DataGenerationMethod.positive,
        schemathesis.DataGenerationMethod.negative,
    ],
)


# Ids of records that exist, swapped into every other generated case so that the routes run
# past their 404s (set by the ``seeded`` fixture).
KNOWN: dict[str, str] = {"job_type": "hello-job"}
_calls = {"n": 0}


@schema.hook("map_path_parameters")
def _known_ids(context: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    _calls["n"] += 1
    if path_parameters is None or _calls["n"] % 2:
        return path_parameters
    return {name: KNOWN.get(name, value) for name, value in path_parameters.items()}


@pytest.fixture
def seeded(world: ApiWorld) -> ApiWorld:
    """One definition and one request, whose ids generated cases borrow."""
    world.call(
        "POST",
        "/api/jobs/definitions",
        body=(Path(__file__).parent / "data" / "hello-job.yaml").read_text(),
        headers={"Content-Type": "application/yaml"},
    )
    KNOWN["request_id"] = world.call(
        "POST", "/api/jobs/requests", json_body={"job_type": "hello-job"}
    ).json()["id"]
    return world


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_5xx(case: Any, seeded: ApiWorld) -> None:
    response = case.call_wsgi(app=wsgi_app(seeded.gateway, seeded.acme_token))

    case.validate_response(response, checks=(not_a_server_error,))
