"""The dashboard through the API: its page and files served without a token under a strict
Content Security Policy, nothing outside the allow-list, and an artifact's link for the browser
(the organisation's own artifacts only)."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from formica.dashboard import CONTENT_SECURITY_POLICY, STATIC_FILES
from formica.store.requests import ArtifactItem, now_iso
from formica.store.schema import artifact_key

from tests.integration.api.conftest import ApiWorld
from tests.integration.api.tables import BUCKET

STATIC = resources.files("formica.dashboard").joinpath("static")


def test_the_page_is_served_without_a_token_under_a_strict_policy(world: ApiWorld) -> None:
    page = world.call("GET", "/", token=None)

    assert page.status == 200
    assert (page.header("Content-Type") or "").startswith("text/html")
    policy = page.header("Content-Security-Policy") or ""
    assert policy == CONTENT_SECURITY_POLICY
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert page.header("X-Content-Type-Options") == "nosniff"
    assert page.header("X-Frame-Options") == "DENY"
    assert page.header("Referrer-Policy") == "no-referrer"
    assert '<script type="module" src="ui/main.js">' in page.body


@pytest.mark.parametrize("name", sorted(set(STATIC_FILES) - {"index.html"}))
def test_every_file_of_the_allow_list_is_served_with_its_type(world: ApiWorld, name: str) -> None:
    served = world.call("GET", f"/ui/{name}", token=None)

    assert served.status == 200
    assert served.header("Content-Type") == STATIC_FILES[name]
    assert served.header("Content-Security-Policy") == CONTENT_SECURITY_POLICY
    assert served.body == STATIC.joinpath(name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name", ["__init__.py", "..%2F__init__.py", "../__init__.py", "static", "missing.js", "INDEX.HTML"]
)
def test_nothing_outside_the_allow_list_is_served(world: ApiWorld, name: str) -> None:
    answer = world.call("GET", f"/ui/{name}", token=None)

    assert answer.status == 404
    assert answer.json()["error"] == "NOT_FOUND"


def test_every_file_shipped_is_in_the_allow_list() -> None:
    shipped = {entry.name for entry in STATIC.iterdir() if entry.is_file()}

    assert shipped == set(STATIC_FILES)


def test_the_scripts_never_parse_text_as_html() -> None:
    # What a tenant wrote reaches the page only through textContent and attributes (dom.js).
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|DOMParser"
    )
    for name in STATIC_FILES:
        text = STATIC.joinpath(name).read_text(encoding="utf-8")
        assert not forbidden.search(text), name
    page = STATIC.joinpath("index.html").read_text(encoding="utf-8")
    # No inline script or style: every script has a src, and no element carries style or on* handlers.
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page)


def _artifact(world: ApiWorld, request_id: str) -> str:
    key = artifact_key("acme", request_id, "greet", "report.txt")
    world.s3.put_object(Bucket=BUCKET, Key=key, Body=b"report\n")
    world.services.requests.put_artifact(
        ArtifactItem(
            request_id=request_id,
            artifact_id="art-1",
            org="acme",
            task_type="greet",
            name="report.txt",
            key=key,
            size=7,
            sha256="0" * 64,
            content_type="text/plain",
            created_at=now_iso(),
        )
    )
    return key


def test_an_artifacts_link_is_a_presigned_url_for_its_organisation_only(world: ApiWorld) -> None:
    upload = world.call(
        "POST",
        "/api/jobs/definitions",
        body="job_type: hello-job\ntasks:\n- task_type: greet\n  method: SHELL\n  script:\n    - echo hi\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert upload.status == 201, upload.body
    request_id = world.call("POST", "/api/jobs/requests", json_body={"job_type": "hello-job"}).json()["id"]
    key = _artifact(world, request_id)
    path = f"/api/jobs/requests/{request_id}/artifacts/art-1/link"

    mine = world.call("GET", path)
    theirs = world.call("GET", path, token=world.other_token)
    anonymous = world.call("GET", path, token=None)
    unknown = world.call("GET", f"/api/jobs/requests/{request_id}/artifacts/nope/link")

    assert mine.status == 200
    link = mine.json()
    assert key in link["url"] and "Signature" in link["url"]
    assert link["expires_in_seconds"] == world.services.presign_seconds
    assert (theirs.status, unknown.status, anonymous.status) == (404, 404, 401)
    assert key not in theirs.body
