"""Tenancy with real data behind every route: another organisation's token never reaches it.

test_api_requests checks the 404s on a request with nothing recorded; here the request has an
artifact and task logs in S3, so a missing org check would answer 302 / 200 instead of 404.
"""

from __future__ import annotations

import hashlib

from formica.store.requests import ArtifactItem, now_iso
from formica.store.schema import artifact_key, log_key

from tests.integration.api.conftest import ApiWorld, submit
from tests.integration.api.tables import BUCKET

SECRET = b"acme's own data\n"


def _recorded(world: ApiWorld) -> str:
    """Given: an acme request whose task `greet` left an artifact and a log in S3."""
    request_id = submit(world, {"job_type": "hello-job"}).json()["id"]
    for kind, artifact_id, key in (
        ("artifact", "art-1", artifact_key("acme", request_id, "greet", "date.txt")),
        ("log", "log-000001", log_key("acme", request_id, "greet", 1)),
    ):
        world.s3.put_object(Bucket=BUCKET, Key=key, Body=SECRET)
        world.services.requests.put_artifact(
            ArtifactItem(
                request_id=request_id,
                artifact_id=artifact_id,
                org="acme",
                task_type="greet",
                name=key.rsplit("/", 1)[-1],
                key=key,
                size=len(SECRET),
                sha256=hashlib.sha256(SECRET).hexdigest(),
                content_type="text/plain",
                kind=kind,
                created_at=now_iso(),
            )
        )
    world.services.requests.update_task(
        request_id,
        1,
        {
            "request_id": request_id,
            "seq": 1,
            "task_type": "greet",
            "task_state": "COMPLETED",
            "attempts": 1,
            "exit_code": "0",
            "started_at": now_iso(),
            "log_key": log_key("acme", request_id, "greet", 1),
        },
    )
    return request_id


def test_the_owner_reads_its_artifact_and_logs(defined: ApiWorld) -> None:
    request_id = _recorded(defined)
    base = f"/api/jobs/requests/{request_id}"

    assert defined.call("GET", f"{base}/artifacts").json()["records"][0]["id"] == "art-1"
    assert defined.call("GET", f"{base}/artifacts/art-1/download").status == 302
    assert defined.call("GET", f"{base}/tasks/greet/logs").body == SECRET.decode()


def test_another_org_gets_404_and_none_of_the_data_on_every_route(defined: ApiWorld) -> None:
    request_id = _recorded(defined)
    base = f"/api/jobs/requests/{request_id}"
    other = defined.other_token

    responses = {
        "request": defined.call("GET", base, token=other),
        "artifacts": defined.call("GET", f"{base}/artifacts", token=other),
        "download": defined.call("GET", f"{base}/artifacts/art-1/download", token=other),
        "logs": defined.call("GET", f"{base}/tasks/greet/logs", token=other),
        "one log": defined.call("GET", f"{base}/tasks/greet/logs", token=other, query={"attempt": 1}),
        "cancel": defined.call("POST", f"{base}/cancel", token=other),
    }

    assert {name: r.status for name, r in responses.items()} == dict.fromkeys(responses, 404)
    for response in responses.values():
        assert SECRET.decode().strip() not in response.body
        assert response.header("Location") is None
        assert request_id not in response.body or "not found" in response.body
    assert defined.runtime.cancelled == []


def test_a_request_of_another_org_is_not_found_even_by_the_store_lookup(defined: ApiWorld) -> None:
    request_id = _recorded(defined)

    assert defined.services.requests.get_for_org("other", request_id) is None
    assert defined.services.requests.get_for_org("acme", request_id) is not None
