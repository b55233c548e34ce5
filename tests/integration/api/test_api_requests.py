"""Request, artifact and log routes through API Gateway proxy events under moto.

The walk itself is replaced by ``FakeRuntime``, which makes the same state changes on the real
request store (PENDING -> STARTED, -> CANCELLED) and records what the API asked of it.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

from formica.api.models import SubmitJobRequest
from formica.api.requests import submit_request
from formica.store.requests import ArtifactItem, now_iso
from formica.store.schema import artifact_key, log_key

from tests.integration.api.conftest import ApiWorld, finish, submit
from tests.integration.api.tables import BUCKET


def test_submit_via_the_briefs_alias_starts_the_request(defined: ApiWorld) -> None:
    response = defined.call(
        "POST", "/jobs/requests", json_body={"job_type": "hello-job", "params": {"Key": "Value"}}
    )

    assert response.status == 201
    body = response.json()
    assert (body["job_type"], body["job_version"], body["job_state"]) == ("hello-job", 1, "STARTED")
    assert body["params"] == {"Key": "Value"}
    assert defined.runtime.started == [body["id"]]
    fetched = defined.call("GET", f"/api/jobs/requests/{body['id']}").json()
    assert fetched["id"] == body["id"] and fetched["tasks"] == []


def test_submit_refusals_unknown_type_missing_params_unknown_version_and_typos(defined: ApiWorld) -> None:
    unknown = submit(defined, {"job_type": "no-such-job"})
    missing = submit(defined, {"job_type": "params-job", "params": {"Name": "x"}})
    version = submit(defined, {"job_type": "hello-job", "job_version": 7})
    typo = submit(defined, {"job_type": "hello-job", "parms": {}})
    wrong_type = submit(defined, {"job_type": "hello-job", "params": "not an object", "job_priority": "high"})

    assert unknown.status == 404 and unknown.json()["error"] == "NOT_FOUND"
    assert missing.status == 400
    assert [detail["field"] for detail in missing.json()["details"]] == ["params.Count"]
    assert version.status == 404
    assert typo.status == 400 and typo.json()["details"][0]["field"] == "parms"
    assert wrong_type.status == 400
    assert {detail["field"] for detail in wrong_type.json()["details"]} == {"params", "job_priority"}
    assert defined.runtime.started == []


def test_idempotency_key_returns_the_first_request_and_starts_once(defined: ApiWorld) -> None:
    headers = {"Idempotency-Key": "order-42"}

    first = submit(defined, {"job_type": "hello-job"}, headers=headers)
    repeat = submit(defined, {"job_type": "hello-job"}, headers=headers)
    other_org = submit(defined, {"job_type": "hello-job"}, headers=headers, token=defined.other_token)

    assert first.status == 201 and repeat.status == 200
    assert repeat.json()["id"] == first.json()["id"]
    assert other_org.status == 404  # the other org has no hello-job: keys never cross orgs
    assert defined.runtime.started == [first.json()["id"]]


def test_repeated_user_key_returns_the_first_request(defined: ApiWorld) -> None:
    first = submit(defined, {"job_type": "hello-job", "user_key": "nightly-2026-11-28"})
    repeat = submit(defined, {"job_type": "hello-job", "user_key": "nightly-2026-11-28", "params": {"x": 1}})
    fresh = submit(defined, {"job_type": "hello-job", "user_key": "nightly-2026-11-29"})

    assert (first.status, repeat.status, fresh.status) == (201, 200, 201)
    assert repeat.json()["id"] == first.json()["id"] and repeat.json()["params"] == {}
    assert fresh.json()["id"] != first.json()["id"]
    assert len(defined.runtime.started) == 2


def test_racing_submissions_with_one_key_make_one_request(defined: ApiWorld) -> None:
    ids: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def go() -> None:
        # Each thread plays one API Lambda instance. One resolver object serves one event at a
        # time (as in Lambda), so the race runs on the route logic the handler calls.
        result, status = submit_request(
            defined.services, "acme", SubmitJobRequest(job_type="hello-job"), idempotency_key="race"
        )
        with lock:
            ids.append(result.id)
            statuses.append(status)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 1
    assert sorted(statuses) == [200, 200, 200, 201]
    assert len(defined.runtime.started) == 1
    assert (
        submit(defined, {"job_type": "hello-job"}, headers={"Idempotency-Key": "race"}).json()["id"] == ids[0]
    )


def test_scheduled_request_stays_pending_until_triggered(defined: ApiWorld) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()

    response = submit(defined, {"job_type": "hello-job", "scheduled_at": later, "job_priority": 7})
    request_id = response.json()["id"]
    triggered = defined.call("POST", f"/api/jobs/requests/{request_id}/trigger")
    again = defined.call("POST", f"/api/jobs/requests/{request_id}/trigger")

    assert response.status == 201
    assert (response.json()["job_state"], response.json()["job_priority"]) == ("PENDING", 7)
    assert response.json()["scheduled_at"] is not None
    assert triggered.status == 200 and triggered.json()["job_state"] == "STARTED"
    assert again.status == 409
    assert defined.runtime.started == [request_id]


def test_cancel_running_then_cancel_finished_is_409(defined: ApiWorld) -> None:
    running = submit(defined, {"job_type": "hello-job"}).json()["id"]
    done = submit(defined, {"job_type": "hello-job"}).json()["id"]
    finish(defined, done)

    cancelled = defined.call("POST", f"/api/jobs/requests/{running}/cancel")
    twice = defined.call("POST", f"/api/jobs/requests/{running}/cancel")
    finished = defined.call("POST", f"/api/jobs/requests/{done}/cancel")

    assert cancelled.status == 200 and cancelled.json()["job_state"] == "CANCELLED"
    assert twice.status == 409 and twice.json()["error"] == "CONFLICT"
    assert finished.status == 409
    assert defined.runtime.cancelled == [running]


def test_restart_only_a_finished_request(defined: ApiWorld) -> None:
    request_id = submit(defined, {"job_type": "hello-job"}).json()["id"]

    early = defined.call("POST", f"/api/jobs/requests/{request_id}/restart")
    finish(defined, request_id, "FAILED")
    restarted = defined.call("POST", f"/api/jobs/requests/{request_id}/restart")

    assert early.status == 409
    assert restarted.status == 200 and defined.runtime.restarted == [request_id]


def test_list_filters_and_pages_newest_first(defined: ApiWorld) -> None:
    ids = [submit(defined, {"job_type": "hello-job"}).json()["id"] for _ in range(5)]
    params_id = submit(defined, {"job_type": "params-job", "params": {"Name": "a", "Count": 1}}).json()["id"]
    finish(defined, ids[0])

    seen: list[str] = []
    token: str | None = None
    while True:
        page = defined.call("GET", "/api/jobs/requests", query={"limit": 2, "next_token": token})
        assert page.status == 200
        seen.extend(record["id"] for record in page.json()["records"])
        token = page.json()["next_token"]
        if token is None:
            break
    by_type = defined.call("GET", "/api/jobs/requests", query={"job_type": "params-job"}).json()["records"]
    completed = defined.call("GET", "/api/jobs/requests", query={"job_state": "COMPLETED"}).json()["records"]
    bad_state = defined.call("GET", "/api/jobs/requests", query={"job_state": "SLEEPING"})
    # formicary's READY is a valid filter; no request is ever stored READY
    ready = defined.call("GET", "/api/jobs/requests", query={"job_state": "READY"})

    assert seen == [params_id, *reversed(ids)]
    assert [record["id"] for record in by_type] == [params_id]
    assert [record["id"] for record in completed] == [ids[0]]
    assert bad_state.status == 400
    assert (ready.status, ready.json()["records"]) == (200, [])


def test_another_orgs_request_is_404_on_every_route(defined: ApiWorld) -> None:
    request_id = submit(defined, {"job_type": "hello-job", "params": {"secret": "acme-only"}}).json()["id"]
    other = defined.other_token
    base = f"/api/jobs/requests/{request_id}"

    responses = [
        defined.call("GET", base, token=other),
        defined.call("POST", f"{base}/cancel", token=other),
        defined.call("POST", f"{base}/restart", token=other),
        defined.call("POST", f"{base}/trigger", token=other),
        defined.call("GET", f"{base}/artifacts", token=other),
        defined.call("GET", f"{base}/artifacts/anything/download", token=other),
        defined.call("GET", f"{base}/tasks/greet/logs", token=other),
    ]

    assert [response.status for response in responses] == [404] * len(responses)
    assert all("acme-only" not in response.body for response in responses)
    assert defined.call("GET", "/api/jobs/requests", token=other).json()["records"] == []
    assert defined.runtime.cancelled == []


def _record_task(world: ApiWorld, request_id: str, logs: list[str]) -> None:
    """Given: the walk ran task ``greet`` with one log per attempt (as the runners store them)."""
    keys = []
    for attempt, text in enumerate(logs, start=1):
        key = log_key("acme", request_id, "greet", attempt)
        world.s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
        keys.append(key)
        world.services.requests.put_artifact(
            ArtifactItem(
                request_id=request_id,
                artifact_id=f"log-{attempt}",
                org="acme",
                task_type="greet",
                name=f"attempt-{attempt}.log",
                key=key,
                size=len(text),
                sha256="",
                content_type="text/plain",
                kind="log",
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
            "attempts": len(logs),
            "exit_code": "0",
            "started_at": now_iso(),
            "log_key": keys[-1],
        },
    )


def test_task_execution_shows_in_the_request_and_logs_read_as_text(defined: ApiWorld) -> None:
    request_id = submit(defined, {"job_type": "hello-job"}).json()["id"]
    _record_task(defined, request_id, ["try one failed\n", "hello world\n"])

    detail = defined.call("GET", f"/api/jobs/requests/{request_id}").json()
    every = defined.call("GET", f"/api/jobs/requests/{request_id}/tasks/greet/logs")
    second = defined.call("GET", f"/api/jobs/requests/{request_id}/tasks/greet/logs", query={"attempt": 2})
    never_ran = defined.call("GET", f"/api/jobs/requests/{request_id}/tasks/bye/logs")

    assert detail["tasks"] == [
        {
            "task_type": "greet",
            "method": "SHELL",
            "task_state": "COMPLETED",
            "exit_code": "0",
            "exit_codes": [],
            "error_code": None,
            "error_message": None,
            "attempts": 2,
            "task_retry": 0,
            "job_retry": 0,
            "started_at": detail["tasks"][0]["started_at"],
            "ended_at": None,
        }
    ]
    assert every.status == 200 and (every.header("Content-Type") or "").startswith("text/plain")
    assert every.body == "--- attempt 1 ---\ntry one failed\n--- attempt 2 ---\nhello world\n"
    assert second.body == "hello world\n"
    assert never_ran.status == 404


def test_artifacts_list_and_download_redirects_to_a_presigned_url(defined: ApiWorld) -> None:
    request_id = submit(defined, {"job_type": "hello-job"}).json()["id"]
    data = b"Sat Nov 28 12:00:00 UTC 2026\n"
    key = artifact_key("acme", request_id, "greet", "date.txt")
    defined.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    defined.services.requests.put_artifact(
        ArtifactItem(
            request_id=request_id,
            artifact_id="art-1",
            org="acme",
            task_type="greet",
            name="date.txt",
            key=key,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_type="text/plain",
            created_at=now_iso(),
        )
    )
    _record_task(defined, request_id, ["log\n"])  # logs are not artifacts

    listed = defined.call("GET", f"/api/jobs/requests/{request_id}/artifacts")
    download = defined.call("GET", f"/api/jobs/requests/{request_id}/artifacts/art-1/download")
    log_as_artifact = defined.call("GET", f"/api/jobs/requests/{request_id}/artifacts/log-1/download")
    unknown = defined.call("GET", f"/api/jobs/requests/{request_id}/artifacts/nope/download")

    assert listed.status == 200
    assert listed.json()["records"] == [
        {
            "id": "art-1",
            "task_type": "greet",
            "name": "date.txt",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "content_type": "text/plain",
            "download_url": f"/api/jobs/requests/{request_id}/artifacts/art-1/download",
            "instance": None,  # an attempt of the task itself, not a task fan-out instance
        }
    ]
    assert download.status == 302
    location = download.header("Location") or ""
    assert key in location and "Signature" in location and "Expires" in location
    assert log_as_artifact.status == 404 and unknown.status == 404
