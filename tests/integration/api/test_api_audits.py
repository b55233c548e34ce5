"""The audit log: who did what through the API, per organisation, newest first, filtered and paged,
expiring by TTL, never holding a secret; GET /api/audits needs admin."""

from __future__ import annotations

import time
from typing import Any

import pytest
from formica.api.audit import AUDITED_ROUTES
from formica.store.audit import AUDIT_RETENTION_DAYS

from functions.api.app import app, registered_routes
from tests.integration.api.conftest import DATA, ApiWorld
from tests.integration.api.tables import TABLE

NOT_ACTIONS = {
    ("POST", "/api/grants"),  # an attempt's capability is the caller, not a token
    # A worker's lease traffic (every few seconds): the walk's own records say what it ran.
    ("POST", "/api/workers/poll"),
    ("POST", "/api/workers/heartbeat"),
    ("POST", "/api/workers/report"),
    # A trigger's caller is a signed webhook, not a token: its starts are the requests it makes.
    ("POST", "/api/triggers/<org>/<job_type>/<name>"),
}


def audits(world: ApiWorld, token: str | None = None, **query: Any) -> dict[str, Any]:
    response = world.call("GET", "/api/audits", query=query or None, token=token or world.acme_token)
    assert response.status == 200, response.body
    body: dict[str, Any] = response.json()
    return body


def upload(world: ApiWorld) -> None:
    response = world.call(
        "POST",
        "/api/jobs/definitions",
        body=(DATA / "hello-job.yaml").read_text(),
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status == 201


@pytest.fixture
def acted(world: ApiWorld) -> dict[str, str]:
    """Given: acme's token uploaded a definition, submitted and cancelled a request, created and
    revoked a token, and disabled the definition."""
    upload(world)
    request_id = world.call("POST", "/api/jobs/requests", json_body={"job_type": "hello-job"}).json()["id"]
    assert world.call("POST", f"/api/jobs/requests/{request_id}/cancel").status == 200
    created = world.call("POST", "/api/auth/tokens", json_body={"name": "ci", "scopes": ["read"]}).json()
    assert world.call("DELETE", f"/api/auth/tokens/{created['id']}").status == 200
    assert world.call("POST", "/api/jobs/definitions/hello-job/disable").status == 200
    return {"request_id": request_id, "token_id": created["id"], "secret": created["token"]}


def test_each_action_is_recorded_with_its_actor_newest_first(world: ApiWorld, acted: dict[str, str]) -> None:
    records = audits(world)["records"]

    assert [(r["action"], r["target"]) for r in records] == [
        ("definition.disabled", "hello-job"),
        ("token.revoked", acted["token_id"]),
        ("token.created", acted["token_id"]),
        ("request.cancelled", acted["request_id"]),
        ("request.submitted", acted["request_id"]),
        ("definition.uploaded", "hello-job"),
    ]
    assert {r["actor_token_name"] for r in records} == {"tests"}
    assert records[4]["details"] == {"job_type": "hello-job"}
    assert records[2]["details"] == {"name": "ci"}
    assert records[5]["details"] == {"version": "1"}


def test_no_audit_item_holds_a_secret(world: ApiWorld, acted: dict[str, str]) -> None:
    items = world.ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "ORG#acme#AUDIT"}},
    )["Items"]
    assert len(items) == 6
    assert acted["secret"] not in str(items)
    assert world.acme_token not in str(items)


def test_every_item_expires_after_the_retention(world: ApiWorld, acted: dict[str, str]) -> None:
    items = world.ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "ORG#acme#AUDIT"}},
    )["Items"]
    expected = time.time() + AUDIT_RETENTION_DAYS * 86_400
    assert all(abs(int(item["expires_at"]["N"]) - expected) < 120 for item in items)


def test_filters_by_action_actor_and_time(world: ApiWorld, acted: dict[str, str]) -> None:
    cancelled = audits(world, action="request.cancelled")["records"]
    assert [r["target"] for r in cancelled] == [acted["request_id"]]
    assert len(audits(world, actor="tests")["records"]) == 6
    token_id = audits(world)["records"][0]["actor_token_id"]
    assert len(audits(world, actor=token_id)["records"]) == 6
    assert audits(world, actor="someone-else")["records"] == []
    newest = audits(world)["records"][0]["at"]
    assert [r["action"] for r in audits(world, since=newest)["records"]] == ["definition.disabled"]
    assert len(audits(world, until=newest)["records"]) == 6
    assert audits(world, until="2000-01-01")["records"] == []
    refused = world.call("GET", "/api/audits", query={"since": "yesterday!"})
    assert (refused.status, refused.json()["details"][0]["field"]) == (400, "since")


def test_pages_through_every_record_with_the_cursor(world: ApiWorld, acted: dict[str, str]) -> None:
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": 4}
        if token:
            query["next_token"] = token
        page = audits(world, **query)
        seen += [record["id"] for record in page["records"]]
        pages += 1
        token = page.get("next_token")
        if not token:
            break
    assert pages == 2
    assert len(seen) == len(set(seen)) == 6


def test_another_organisation_sees_none_of_it_and_its_cursor_is_refused(
    world: ApiWorld, acted: dict[str, str]
) -> None:
    assert audits(world, token=world.other_token)["records"] == []
    cursor = audits(world, limit=2)["next_token"]
    refused = world.call("GET", "/api/audits", query={"next_token": cursor}, token=world.other_token)
    assert refused.status == 400


def test_a_refused_action_is_not_recorded(world: ApiWorld) -> None:
    assert world.call("POST", "/api/jobs/requests/nope/cancel").status == 404
    assert audits(world)["records"] == []


def test_every_route_that_changes_something_is_audited() -> None:
    changing = {(r.method, r.path) for r in registered_routes(app) if r.method != "GET"} - NOT_ACTIONS
    assert changing <= set(AUDITED_ROUTES)
