"""A forked request's lineage through the API: parent_id and children on GET, ?parent_id= listings.

The forks are written straight into the store (the request items with their lineage and the
parent's child records), as FORK_JOB would leave them, so each read is checked against known data.
"""

from __future__ import annotations

import argparse

import httpx
import pytest
from formica.cli import main
from formica.cli import remote as remote_module
from formica.cli.client import ClientConfig, FormicaClient
from formica.engine.walk import JobState
from formica.store.requests import ChildItem, JobRequestItem

from tests.integration.api.conftest import ApiWorld
from tests.integration.api.gateway import wsgi_app

BASE = "/api/jobs/requests"


def _request(
    world: ApiWorld,
    request_id: str,
    *,
    org: str = "acme",
    job_type: str = "fan-out",
    created_at: str = "2026-01-01T00:00:00.000000+00:00",
    state: JobState = JobState.EXECUTING,
    parent: str | None = None,
) -> None:
    world.services.requests.create(
        JobRequestItem(
            request_id=request_id,
            org=org,
            job_type=job_type,
            job_version=1,
            job_state=state,
            created_at=created_at,
            updated_at=created_at,
            parent_id=parent,
            parent_job_type=None if parent is None else "fan-out",
            fork_task=None if parent is None else "fork-it",
            fork_depth=0 if parent is None else 1,
        )
    )


def _fork(
    world: ApiWorld,
    parent: str,
    child_id: str,
    created_at: str,
    *,
    job_type: str = "leaf",
    state: JobState = JobState.EXECUTING,
    recorded: JobState = JobState.PENDING,
    error_code: str | None = None,
    create: bool = True,
) -> None:
    """Given: ``parent`` forked ``child_id`` at ``created_at`` (its record says ``recorded``)."""
    world.services.requests.put_child(
        ChildItem(
            parent_id=parent,
            child_id=child_id,
            job_type=job_type,
            fork_task="fork-it",
            step=3,
            job_state=recorded,
            error_code=error_code,
            created_at=created_at,
        )
    )
    if create:
        _request(world, child_id, job_type=job_type, created_at=created_at, state=state, parent=parent)


def _family(world: ApiWorld) -> None:
    """Given: acme's `parent` forked c-zeta, then c-alpha (failed), then c-mid, whose ids sort the
    other way round, and a child whose request was never created."""
    _request(world, "parent")
    _fork(world, "parent", "c-zeta", "2026-01-01T00:00:01.000000+00:00")
    _fork(
        world,
        "parent",
        "c-alpha",
        "2026-01-01T00:00:02.000000+00:00",
        job_type="other-leaf",
        state=JobState.FAILED,
        recorded=JobState.FAILED,
        error_code="ERR_BOOM",
    )
    _fork(world, "parent", "c-mid", "2026-01-01T00:00:03.000000+00:00", state=JobState.COMPLETED)
    _fork(world, "parent", "c-lost", "2026-01-01T00:00:04.000000+00:00", create=False)


def test_get_shows_the_children_in_creation_order_and_a_child_its_parent(world: ApiWorld) -> None:
    _family(world)

    parent = world.call("GET", f"{BASE}/parent").json()
    child = world.call("GET", f"{BASE}/c-alpha").json()

    assert parent["parent_id"] is None
    assert parent["children"] == [
        {
            "id": "c-zeta",
            "job_type": "leaf",
            "fork_task": "fork-it",
            "job_state": "PENDING",
            "error_code": None,
        },
        {
            "id": "c-alpha",
            "job_type": "other-leaf",
            "fork_task": "fork-it",
            "job_state": "FAILED",
            "error_code": "ERR_BOOM",
        },
        {
            "id": "c-mid",
            "job_type": "leaf",
            "fork_task": "fork-it",
            "job_state": "PENDING",
            "error_code": None,
        },
        {
            "id": "c-lost",
            "job_type": "leaf",
            "fork_task": "fork-it",
            "job_state": "PENDING",
            "error_code": None,
        },
    ]
    assert child["parent_id"] == "parent"
    assert child["children"] == []


def test_listing_rows_name_their_parent_and_leave_children_unread(world: ApiWorld) -> None:
    _family(world)

    rows = {row["id"]: row for row in world.call("GET", BASE).json()["records"]}

    assert rows["c-zeta"]["parent_id"] == "parent"
    assert rows["parent"]["parent_id"] is None
    assert all(row["children"] is None for row in rows.values())


def test_parent_id_lists_the_children_as_they_are_now_in_creation_order(world: ApiWorld) -> None:
    _family(world)

    listing = world.call("GET", BASE, query={"parent_id": "parent"}).json()
    failed = world.call("GET", BASE, query={"parent_id": "parent", "job_state": "FAILED"}).json()
    leaves = world.call("GET", BASE, query={"parent_id": "parent", "job_type": "leaf"}).json()

    # Each row is the child's own request (c-zeta EXECUTING, though the parent's record says
    # PENDING); c-lost was recorded but never created, so it has no row.
    assert [(row["id"], row["job_state"]) for row in listing["records"]] == [
        ("c-zeta", "EXECUTING"),
        ("c-alpha", "FAILED"),
        ("c-mid", "COMPLETED"),
    ]
    assert {row["parent_id"] for row in listing["records"]} == {"parent"}
    assert listing["next_token"] is None
    assert [row["id"] for row in failed["records"]] == ["c-alpha"]
    assert [row["id"] for row in leaves["records"]] == ["c-zeta", "c-mid"]


def test_parent_id_pages_with_limit_and_next_token(world: ApiWorld) -> None:
    _request(world, "big")
    for n in range(5):
        _fork(world, "big", f"k{9 - n}", f"2026-01-01T00:00:0{n}.000000+00:00")

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        query = {"parent_id": "big", "limit": "2", **({"next_token": token} if token else {})}
        page = world.call("GET", BASE, query=query).json()
        pages += 1
        seen.extend(row["id"] for row in page["records"])
        token = page["next_token"]
        if not token:
            break

    assert seen == ["k9", "k8", "k7", "k6", "k5"]
    assert pages == 3


def test_a_cursor_of_another_listing_is_refused(world: ApiWorld) -> None:
    _request(world, "big")
    _request(world, "other-parent")
    for n in range(3):
        _fork(world, "big", f"k{n}", f"2026-01-01T00:00:0{n}.000000+00:00")
        _fork(world, "other-parent", f"o{n}", f"2026-01-01T00:00:0{n}.000000+00:00")
    plain = world.call("GET", BASE, query={"limit": "1"}).json()["next_token"]
    sibling = world.call("GET", BASE, query={"parent_id": "other-parent", "limit": "1"}).json()["next_token"]

    for token in (plain, sibling, "garbage"):
        response = world.call("GET", BASE, query={"parent_id": "big", "next_token": token})
        assert response.status == 400, token
        assert "next_token" in response.json()["message"]


def test_another_orgs_parent_is_not_found_and_never_shown(world: ApiWorld) -> None:
    _family(world)
    # An "other" request claiming acme's parent, and an acme request claiming other's: neither
    # can be made by a fork (a child lives in its parent's organisation), and neither leaks.
    _request(world, "theirs", org="other")
    _request(world, "stray", parent="theirs")

    as_other = world.call("GET", f"{BASE}/parent", token=world.other_token)
    listing_as_other = world.call("GET", BASE, query={"parent_id": "parent"}, token=world.other_token)
    listing_theirs = world.call("GET", BASE, query={"parent_id": "theirs"})
    unknown = world.call("GET", BASE, query={"parent_id": "no-such-request"})
    stray = world.call("GET", f"{BASE}/stray").json()
    stray_row = next(row for row in world.call("GET", BASE).json()["records"] if row["id"] == "stray")

    assert as_other.status == 404
    assert listing_as_other.status == 404
    assert "c-zeta" not in listing_as_other.body
    assert listing_theirs.status == 404
    assert unknown.status == 404
    assert stray["parent_id"] is None
    assert stray_row["parent_id"] is None


def test_formica_status_draws_the_family_from_the_api(
    world: ApiWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _family(world)
    _fork(world, "c-mid", "g-1", "2026-01-01T00:00:05.000000+00:00", job_type="deep", state=JobState.PENDING)

    def client(_args: argparse.Namespace) -> FormicaClient:
        transport = httpx.WSGITransport(app=wsgi_app(world.gateway, world.acme_token))
        return FormicaClient(ClientConfig(server="http://api.test"), transport=transport)

    monkeypatch.setattr(remote_module, "_client", client)

    assert main(["status", "parent"]) == 0

    tree = capsys.readouterr().out.split("forked:\n", 1)[1]
    assert tree == (
        "  c-zeta  leaf  EXECUTING\n"
        "  c-alpha  other-leaf  FAILED\n"
        "  c-mid  leaf  COMPLETED\n"
        "    g-1  deep  PENDING\n"
        "  c-lost  leaf  PENDING  (job request 'c-lost' not found)\n"
    )
