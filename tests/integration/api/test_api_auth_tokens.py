"""Authentication (the REQUEST authorizer in front of every protected route) and the token routes."""

from __future__ import annotations

from typing import Any

import pytest
from formica.api.auth import AUTHORIZER_CACHE_TTL_SECONDS, authorizer_response
from formica.api.errors import UnauthorizedError

from functions.authorizer.app import handler as authorizer_handler
from tests.integration.api.conftest import ApiWorld
from tests.integration.api.gateway import LambdaContext, load_event

PROTECTED = [
    ("GET", "/api/jobs/definitions"),
    ("POST", "/api/jobs/definitions"),
    ("GET", "/api/jobs/definitions/hello-job"),
    ("GET", "/api/jobs/definitions/hello-job/yaml"),
    ("GET", "/api/jobs/definitions/hello-job/graph"),
    ("GET", "/api/jobs/definitions/hello-job/versions"),
    ("DELETE", "/api/jobs/definitions/hello-job"),
    ("POST", "/api/jobs/definitions/hello-job/disable"),
    ("POST", "/api/jobs/definitions/hello-job/enable"),
    ("PUT", "/api/jobs/definitions/hello-job/concurrency"),
    ("POST", "/api/jobs/requests"),
    ("POST", "/jobs/requests"),
    ("GET", "/api/jobs/requests"),
    ("GET", "/api/jobs/requests/r1"),
    ("POST", "/api/jobs/requests/r1/cancel"),
    ("POST", "/api/jobs/requests/r1/restart"),
    ("POST", "/api/jobs/requests/r1/resume"),
    ("POST", "/api/jobs/requests/r1/trigger"),
    ("GET", "/api/jobs/requests/r1/graph"),
    ("GET", "/api/jobs/requests/r1/artifacts"),
    ("GET", "/api/jobs/requests/r1/artifacts/a1/download"),
    ("GET", "/api/jobs/requests/r1/artifacts/a1/link"),
    ("GET", "/api/jobs/requests/r1/tasks/t1/logs"),
    ("POST", "/api/jobs/requests/r1/tasks/t1/approve"),
    ("POST", "/api/jobs/requests/r1/tasks/t1/reject"),
    ("GET", "/api/approvals/pending"),
    ("GET", "/api/jobs/stats"),
    ("GET", "/api/audits"),
    ("POST", "/api/auth/tokens"),
    ("GET", "/api/auth/tokens"),
    ("DELETE", "/api/auth/tokens/tok_1"),
    ("GET", "/api/jobs/requests/r1/webhooks"),
    ("GET", "/api/webhooks/secret"),
    ("GET", "/api/jobs/definitions/hello-job/triggers/dropped"),
    ("GET", "/api/orgs/tok_1/configs"),
    ("POST", "/api/orgs/tok_1/configs"),
    ("GET", "/api/orgs/tok_1/configs/tok_1"),
    ("PUT", "/api/orgs/tok_1/configs/tok_1"),
    ("DELETE", "/api/orgs/tok_1/configs/tok_1"),
    ("GET", "/api/jobs/definitions/hello-job/configs"),
    ("POST", "/api/jobs/definitions/hello-job/configs"),
    ("GET", "/api/jobs/definitions/hello-job/configs/tok_1"),
    ("PUT", "/api/jobs/definitions/hello-job/configs/tok_1"),
    ("DELETE", "/api/jobs/definitions/hello-job/configs/tok_1"),
    ("POST", "/api/workers/poll"),
    ("POST", "/api/workers/heartbeat"),
    ("POST", "/api/workers/report"),
]


def test_the_401_table_lists_every_route_of_the_api() -> None:
    # A route added later must join PROTECTED (or PUBLIC_ROUTES), or this fails.
    import re

    from formica.api.openapi import PUBLIC_ROUTES, load_app

    documented = {
        (method.upper(), path)
        for path, operations in load_app().get_openapi_schema().model_dump(by_alias=True)["paths"].items()
        for method, operation in operations.items()
        if operation is not None and method in ("get", "post", "put", "delete", "patch")
    }
    samples = {"{job_type}": "hello-job", "{request_id}": "r1", "{artifact_id}": "a1", "{task_type}": "t1"}
    concrete = {
        (method, re.sub(r"\{[a-z_]+\}", lambda m: samples.get(m.group(0), "tok_1"), path))
        for method, path in documented
        if (method, path) not in PUBLIC_ROUTES
    }
    assert concrete == set(PROTECTED)


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_protected_route_answers_401_without_a_valid_token(
    world: ApiWorld, method: str, path: str
) -> None:
    answers = [
        world.call(method, path, token=None),
        world.call(method, path, token="fmc_not-a-token-anyone-issued-0000"),
        world.call(method, path, token=None, authorization=f"Basic {world.acme_token}"),
    ]

    assert [answer.status for answer in answers] == [401, 401, 401]
    assert answers[0].json()["error"] == "UNAUTHORIZED"


def test_public_routes_need_no_token(world: ApiWorld) -> None:
    health = world.call("GET", "/api/health", token=None)
    spec = world.call("GET", "/api/openapi.json", token=None)
    docs = world.call("GET", "/api/docs", token=None)

    assert (health.status, health.json()) == (200, {"status": "ok"})
    assert spec.status == 200 and spec.json()["info"]["title"] == "Formica"
    assert docs.status == 200 and "swagger" in docs.body.lower()


def test_the_api_refuses_a_protected_route_without_authorizer_context(world: ApiWorld) -> None:
    # Defence in depth: a gateway misconfigured without the authorizer must not serve data.
    from functions.api.app import handler
    from tests.integration.api.gateway import proxy_event

    result = handler(proxy_event("GET", "/api/jobs/definitions"), LambdaContext())

    assert result["statusCode"] == 401


def test_authorizer_allows_every_route_of_the_stage_with_the_principal_as_context(world: ApiWorld) -> None:
    event = load_event("authorizer/request.json")
    event["headers"]["Authorization"] = f"Bearer {world.acme_token}"

    decision = authorizer_handler(event, LambdaContext("formica-authorizer"))

    assert decision["context"]["org"] == "acme"
    assert decision["context"]["token_id"].startswith("tok_")
    assert decision["principalId"] == decision["context"]["token_id"]
    statement = decision["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == ["arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/*/*"]
    assert world.acme_token not in repr(decision)
    assert 0 < AUTHORIZER_CACHE_TTL_SECONDS <= 60


def test_authorizer_raises_unauthorized_for_expired_and_revoked_tokens(world: ApiWorld) -> None:
    arn = load_event("authorizer/request.json")["methodArn"]
    item, secret = world.services.tokens.create("acme", "soon revoked")
    world.services.tokens.revoke("acme", item.token_id)

    with pytest.raises(UnauthorizedError):
        authorizer_response(arn, f"Bearer {secret}", world.services.tokens)
    event = load_event("authorizer/request.json")
    event["headers"]["Authorization"] = f"Bearer {secret}"
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer_handler(event, LambdaContext("formica-authorizer"))


def test_token_lifecycle_create_list_use_revoke(world: ApiWorld) -> None:
    created = world.call("POST", "/api/auth/tokens", json_body={"name": "ci", "expires_in_days": 30})
    body = created.json()
    new_token = body["token"]

    listed = world.call("GET", "/api/auth/tokens")
    works = world.call("GET", "/api/jobs/definitions", token=new_token)
    revoked = world.call("DELETE", f"/api/auth/tokens/{body['id']}")
    refused = world.call("GET", "/api/jobs/definitions", token=new_token)

    assert created.status == 201 and new_token.startswith("fmc_") and body["org"] == "acme"
    assert body["expires_at"] is not None
    assert listed.status == 200
    assert body["id"] in [record["id"] for record in listed.json()["records"]]
    assert new_token not in listed.body and "secret_hash" not in listed.body
    assert works.status == 200
    assert revoked.status == 200 and revoked.json()["revoked_at"] is not None
    assert refused.status == 401


def test_tokens_are_scoped_to_the_org(world: ApiWorld) -> None:
    theirs = world.call(
        "POST", "/api/auth/tokens", json_body={"name": "theirs", "scopes": ["admin"]}, token=world.other_token
    ).json()

    mine = world.call("GET", "/api/auth/tokens").json()["records"]
    steal = world.call("DELETE", f"/api/auth/tokens/{theirs['id']}")

    assert theirs["id"] not in [record["id"] for record in mine]
    assert steal.status == 404
    assert world.call("GET", "/api/auth/tokens", token=theirs["token"]).status == 200


def test_token_list_pages(world: ApiWorld) -> None:
    for n in range(4):
        world.call("POST", "/api/auth/tokens", json_body={"name": f"t{n}"})

    ids: list[str] = []
    token: str | None = None
    while True:
        page = world.call("GET", "/api/auth/tokens", query={"limit": 2, "next_token": token}).json()
        ids.extend(record["id"] for record in page["records"])
        token = page["next_token"]
        if token is None:
            break

    assert len(ids) == 5 and len(set(ids)) == 5  # the fixture's token and four new ones


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": "x", "expires_in_days": 0}, {"name": "x", "extra": 1}, {"expires_in_days": 3}],
)
def test_token_creation_validates(world: ApiWorld, body: dict[str, Any]) -> None:
    response = world.call("POST", "/api/auth/tokens", json_body=body)

    assert response.status == 400 and response.json()["error"] == "VALIDATION_ERROR"
