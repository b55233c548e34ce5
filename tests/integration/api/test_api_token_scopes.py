"""Who is who: every route checks its token's scope, tokens mint no wider tokens, names are unique."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from formica.api.auth import ROUTE_SCOPES, Principal, principal_from_authorizer_context
from formica.api.errors import ForbiddenError
from formica.api.models import CreateTokenRequest
from formica.api.tokens import check_grantable
from formica.cli import main
from formica.cli.remote import TOKEN_SCOPES
from formica.store.tokens import TokenNameTakenError, TokenRepository, TokenScope, hash_secret

from functions.api.app import app, registered_routes
from tests.integration.api.conftest import ApiWorld
from tests.integration.api.gateway import proxy_event
from tests.integration.api.tables import TABLE

SAMPLES = {
    "<job_type>": "hello-job",
    "<request_id>": "r1",
    "<artifact_id>": "a1",
    "<task_type>": "t1",
    "<token_id>": "tok_1",
    "<org>": "acme",
    "<config_id>": "SomeConfig",
}
# A body that passes validation, so the answer is the scope check's and nothing before it.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/jobs/requests"): {"job_type": "hello-job"},
    ("POST", "/jobs/requests"): {"job_type": "hello-job"},
    ("PUT", "/api/jobs/definitions/<job_type>/concurrency"): {"max_concurrency": 1},
    ("POST", "/api/auth/tokens"): {"name": "made-by-the-table"},
    ("POST", "/api/orgs/<org>/configs"): {"name": "SomeConfig", "value": "v"},
    ("PUT", "/api/orgs/<org>/configs/<config_id>"): {"value": "v"},
    ("POST", "/api/jobs/definitions/<job_type>/configs"): {"name": "SomeConfig", "value": "v"},
    ("PUT", "/api/jobs/definitions/<job_type>/configs/<config_id>"): {"value": "v"},
    ("POST", "/api/workers/heartbeat"): {"lease": "fgl_unknown"},
    ("POST", "/api/workers/report"): {"lease": "fgl_unknown", "outcome": {"exit_code": "0"}},
}
SCOPED = sorted((route, scope) for route, scope in ROUTE_SCOPES.items() if scope is not None)


def _concrete(path: str) -> str:
    return re.sub(r"<[a-z_]+>", lambda match: SAMPLES[match.group(0)], path)


def _token(world: ApiWorld, name: str, scopes: list[TokenScope]) -> str:
    _, secret = world.services.tokens.create("acme", name, scopes=scopes)
    return secret


def _call(world: ApiWorld, route: tuple[str, str], token: str) -> Any:
    method, path = route
    body = BODIES.get(route)
    if body is None:
        return world.call(method, _concrete(path), token=token)
    return world.call(method, _concrete(path), token=token, json_body=body)


def test_every_route_of_the_app_has_a_line_in_the_scope_table() -> None:
    # A route added without naming its scope fails here (and answers 500 until it does).
    declared = {(route.method, route.path) for route in registered_routes(app)}

    assert declared == set(ROUTE_SCOPES)


@pytest.mark.parametrize(("route", "scope"), SCOPED, ids=[f"{m} {p}" for (m, p), _ in SCOPED])
def test_a_token_without_the_routes_scope_gets_403_naming_it(
    world: ApiWorld, route: tuple[str, str], scope: TokenScope
) -> None:
    # Given a token holding every scope but this one (admin holds all, so never admin)
    others = [held for held in TokenScope if held not in (scope, TokenScope.ADMIN)]
    lacking = _token(world, "lacking", others)
    holding = _token(world, "holding", [scope])

    # When each calls the route
    refused = _call(world, route, lacking)
    allowed = _call(world, route, holding)

    # Then only the one without the scope is refused, and told which scope it lacks
    assert refused.status == 403, refused.body
    assert refused.json()["error"] == "FORBIDDEN"
    assert f"lacks the {scope} scope" in refused.json()["message"]
    assert allowed.status not in (401, 403), allowed.body


def test_public_routes_need_no_scope(world: ApiWorld) -> None:
    assert {route for route, scope in ROUTE_SCOPES.items() if scope is None} == {
        ("GET", "/api/health"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/docs"),
        ("POST", "/api/grants"),
        ("POST", "/api/triggers/<org>/<job_type>/<name>"),
        ("POST", "/api/triggers/<org>/<job_type>/<name>"),
        ("GET", "/"),
        ("GET", "/ui/<name>"),
    }
    assert world.call("GET", "/api/health", token=None).status == 200


def test_a_token_cannot_mint_a_wider_token(world: ApiWorld) -> None:
    everyday = _token(world, "everyday", [TokenScope.READ, TokenScope.SUBMIT])

    wider = world.call(
        "POST", "/api/auth/tokens", token=everyday, json_body={"name": "w", "scopes": ["admin"]}
    )
    same = world.call("POST", "/api/auth/tokens", token=everyday, json_body={"name": "s", "scopes": ["read"]})

    assert (wider.status, same.status) == (403, 403)  # only admin makes tokens at all
    assert "admin" in wider.json()["message"]
    names = [item.name for item in world.services.tokens.list_for_org("acme").records]
    assert "w" not in names and "s" not in names


def test_granting_checks_every_requested_scope_against_the_callers() -> None:
    reader = Principal(org="acme", token_id="tok_r", scopes=(TokenScope.READ,))
    admin = Principal(org="acme", token_id="tok_a", scopes=(TokenScope.ADMIN,))

    with pytest.raises(ForbiddenError, match="lacks the submit scope"):
        check_grantable(reader, [TokenScope.READ, TokenScope.SUBMIT])
    check_grantable(reader, [TokenScope.READ])
    check_grantable(admin, list(TokenScope))


def test_an_admin_token_mints_narrower_tokens_that_work_as_told(world: ApiWorld) -> None:
    made = world.call(
        "POST", "/api/auth/tokens", json_body={"name": "reader", "scopes": ["read", "read"]}
    ).json()
    default = world.call("POST", "/api/auth/tokens", json_body={"name": "everyday"}).json()

    assert made["scopes"] == ["read"]
    assert default["scopes"] == ["read", "submit"]
    assert world.call("GET", "/api/jobs/requests", token=made["token"]).status == 200
    refused = world.call("POST", "/api/jobs/requests", token=made["token"], json_body={"job_type": "x"})
    assert refused.status == 403 and "submit" in refused.json()["message"]
    listed = {r["name"]: r["scopes"] for r in world.call("GET", "/api/auth/tokens").json()["records"]}
    assert listed["reader"] == ["read"]


def test_an_unknown_scope_is_a_400_naming_the_field(world: ApiWorld) -> None:
    answer = world.call("POST", "/api/auth/tokens", json_body={"name": "x", "scopes": ["root"]})
    empty = world.call("POST", "/api/auth/tokens", json_body={"name": "y", "scopes": []})

    assert (answer.status, empty.status) == (400, 400)
    assert answer.json()["details"][0]["field"].startswith("scopes")


def test_a_token_item_without_scopes_works_as_admin(world: ApiWorld) -> None:
    # Given a token stored before scopes existed (its item has no scopes attribute)
    item, secret = world.services.tokens.create("acme", "old-timer")
    world.ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"TOKEN#{hash_secret(secret)}"}, "sk": {"S": "TOKEN"}},
        UpdateExpression="REMOVE scopes",
    )
    raw = world.ddb.get_item(
        TableName=TABLE, Key={"pk": {"S": f"TOKEN#{hash_secret(secret)}"}, "sk": {"S": "TOKEN"}}
    )["Item"]
    assert "scopes" not in raw

    # Then it reads, submits and administers as before
    listed = world.call("GET", "/api/auth/tokens", token=secret)
    assert listed.status == 200
    assert {r["id"]: r["scopes"] for r in listed.json()["records"]}[item.token_id] == ["admin"]
    minted = world.call(
        "POST", "/api/auth/tokens", token=secret, json_body={"name": "n", "scopes": ["worker"]}
    )
    assert minted.status == 201
    assert world.call("GET", "/api/jobs/definitions", token=secret).status == 200


def test_an_authorizer_answer_without_scopes_is_admin_and_an_empty_one_grants_nothing() -> None:
    # An answer API Gateway cached (30 s) from the authorizer before scopes existed has no key.
    cached = principal_from_authorizer_context({"org": "acme", "token_id": "tok_1", "token_name": "t"})
    empty = principal_from_authorizer_context({"org": "acme", "token_id": "tok_1", "scopes": ""})
    listed = principal_from_authorizer_context({"org": "acme", "token_id": "tok_1", "scopes": "read,future"})

    assert cached.held == frozenset(TokenScope)
    assert empty.held == frozenset()
    assert listed.held == {TokenScope.READ}


def test_the_authorizer_passes_the_scopes_on(world: ApiWorld) -> None:
    secret = _token(world, "reader", [TokenScope.READ])
    context = {"org": "acme", "token_id": "tok_x", "token_name": "reader", "scopes": "read"}

    direct = world.gateway.api(
        proxy_event("DELETE", "/api/jobs/definitions/hello-job", authorizer=context), _Context()
    )

    assert world.call("DELETE", "/api/jobs/definitions/hello-job", token=secret).status == 403
    assert direct["statusCode"] == 403
    assert "admin" in json.loads(direct["body"])["message"]


class _Context:
    function_name = "formica-api"
    memory_limit_in_mb = 512
    aws_request_id = "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:formica-api"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


# -- names ---------------------------------------------------------------------------------------


def test_a_duplicate_name_in_the_organisation_is_409(world: ApiWorld) -> None:
    first = world.call("POST", "/api/auth/tokens", json_body={"name": "ci", "scopes": ["submit"]})
    second = world.call("POST", "/api/auth/tokens", json_body={"name": "ci", "scopes": ["read"]})
    elsewhere = world.call(
        "POST", "/api/auth/tokens", token=world.other_token, json_body={"name": "ci", "scopes": ["read"]}
    )

    assert (first.status, second.status, elsewhere.status) == (201, 409, 201)
    assert second.json()["error"] == "CONFLICT"
    assert second.json()["details"][0]["field"] == "name"
    names = [r["name"] for r in world.call("GET", "/api/auth/tokens").json()["records"]]
    assert names.count("ci") == 1


def test_concurrent_creations_of_one_name_leave_one_token(world: ApiWorld) -> None:
    tokens = world.services.tokens

    def create(index: int) -> str:
        try:
            tokens.create("acme", "racer", scopes=[TokenScope.READ], secret=f"fmc_racer-secret-{index:04d}")
        except TokenNameTakenError:
            return "taken"
        return "created"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(create, range(16)))

    assert outcomes.count("created") == 1
    assert [item.name for item in tokens.list_for_org("acme").records].count("racer") == 1


def test_a_revoked_tokens_name_stays_taken_until_the_token_is_swept(ddb: Any) -> None:
    tokens = TokenRepository(TABLE, client=ddb)
    now = datetime.now(UTC)
    item, _ = tokens.create("acme", "deploy", expires_in_days=2, now=now)
    tokens.revoke("acme", item.token_id, now=now)

    with pytest.raises(TokenNameTakenError):
        tokens.create("acme", "deploy", now=now + timedelta(hours=1))
    # Past the revoked token's sweep time the name is free, even before DynamoDB's TTL deletes it.
    again, _ = tokens.create("acme", "deploy", now=now + timedelta(days=3))
    assert again.name == "deploy" and again.token_id != item.token_id


def test_a_token_that_expired_frees_its_name(ddb: Any) -> None:
    tokens = TokenRepository(TABLE, client=ddb)
    now = datetime.now(UTC)
    tokens.create("acme", "nightly", expires_in_days=1, now=now)

    with pytest.raises(TokenNameTakenError):
        tokens.create("acme", "nightly", now=now)
    assert tokens.create("acme", "nightly", now=now + timedelta(days=2))[0].name == "nightly"


def test_the_token_and_its_name_are_written_together(ddb: Any) -> None:
    tokens = TokenRepository(TABLE, client=ddb)
    tokens.create("acme", "once", secret="fmc_fixed-secret-0001")

    # A second token with the same text fails on the token item: the name is not taken either.
    with pytest.raises(ValueError, match="already in use"):
        tokens.create("acme", "twice", secret="fmc_fixed-secret-0001")
    assert tokens.create("acme", "twice")[0].name == "twice"


# -- the first token -------------------------------------------------------------------------------


def test_the_cli_refuses_an_unknown_scope(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--name", "x", "--scope", "root"]) != 0
    assert "unknown scope 'root'" in capsys.readouterr().err


def test_the_clis_scope_names_are_the_stores() -> None:
    assert tuple(TokenScope) == TOKEN_SCOPES
    assert CreateTokenRequest(name="x").scopes == [TokenScope.READ, TokenScope.SUBMIT]
