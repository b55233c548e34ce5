"""Jobs that start themselves, against a live `formica dev` over HTTP: signed webhooks (filter,
params, dedup, rate limit, 401, 413), S3 puts and SQS messages on the dev server's moto."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.devserver import DevHandle, upload, wait_for

ORG = "local"  # formica dev's organisation
SECRET = "s3cr3t-webhook-key-for-tests"

PUSH_JOB = """job_type: on-push
methods: [SHELL]
triggers:
  - type: webhook
    name: github
    filter: '{{ if eq .Body.ref "refs/heads/main" }}true{{ end }}'
    params:
      branch: '{{ trimPrefix "refs/heads/" .Body.ref }}'
    dedup_key: '{{ index .Headers "x-github-delivery" }}'
    auth: {method: hmac_sha256, secret_config: GITHUB_SECRET}
required_params: [branch]
tasks:
  - task_type: build
    method: SHELL
    script:
      - echo building {{ .branch }}
"""

LIMITED_JOB = """job_type: limited
triggers:
  - type: webhook
    name: ping
    auth: {method: none}
    rate_limit: {max: 20, window: 1h}
tasks:
  - task_type: only
    method: SHELL
    script:
      - echo pong
"""


S3_JOB = """job_type: on-upload
triggers:
  - type: s3
    name: drops
    bucket: incoming-data
    prefix: incoming/
    suffix: .parquet
    params:
      key: '{{ .Object.Key }}'
      size: '{{ .Object.Size }}'
tasks:
  - task_type: load
    method: SHELL
    script:
      - echo loading {{ .key }}
"""

QUEUE_JOB = """job_type: big-order
triggers:
  - type: queue
    name: orders
    topic: orders
    group: billing
    filter: '{{ if gt .Message.total 1000 }}true{{ end }}'
    params:
      order: '{{ .Message.id }}'
tasks:
  - task_type: bill
    method: SHELL
    script:
      - echo billing {{ .order }}
"""


@pytest.fixture(scope="module")
def api(dev: DevHandle) -> Iterator[httpx.Client]:
    with dev.client() as client:
        upload(client, PUSH_JOB)
        upload(client, LIMITED_JOB)
        upload(client, S3_JOB)
        upload(client, QUEUE_JOB)
        created = client.post(
            "/api/jobs/definitions/on-push/configs",
            json={"name": "GITHUB_SECRET", "value": SECRET, "secret": True},
        )
        assert created.status_code == 201, created.text
        yield client


def _push(dev: DevHandle, body: dict[str, Any], *, delivery: str, key: str = SECRET) -> httpx.Response:
    """A GitHub-style push: signed body, X-Hub-Signature-256, X-GitHub-Delivery; no API token."""
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{dev.url}/api/triggers/{ORG}/on-push/github",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature,
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Event": "push",
        },
        timeout=30,
    )


def test_a_signed_push_starts_the_job_with_the_branch_as_param(dev: DevHandle, api: httpx.Client) -> None:
    # Given a job with a signed webhook trigger; when GitHub sends a push to main
    answer = _push(dev, {"ref": "refs/heads/main", "after": "abc123"}, delivery="delivery-1")

    # Then a request starts with the branch as its param and runs to the end
    assert answer.status_code == 202, answer.text
    request_id = answer.json()["request_id"]
    assert request_id and answer.json()["filtered"] is False
    done = wait_for(api, request_id)
    assert done["job_state"] == "COMPLETED", done
    assert done["params"] == {"branch": "main"}
    log = api.get(f"/api/jobs/requests/{request_id}/tasks/build/logs")
    assert "building main" in log.text


def test_the_same_delivery_again_starts_nothing(dev: DevHandle, api: httpx.Client) -> None:
    first = _push(dev, {"ref": "refs/heads/main"}, delivery="delivery-dup")
    again = _push(dev, {"ref": "refs/heads/main"}, delivery="delivery-dup")

    assert first.status_code == again.status_code == 202
    assert again.json()["duplicate"] is True
    assert again.json()["request_id"] == first.json()["request_id"]
    listed = api.get("/api/jobs/requests", params={"job_type": "on-push", "limit": 100}).json()["records"]
    assert [r["id"] for r in listed].count(first.json()["request_id"]) == 1


def test_a_bad_signature_is_401_and_starts_nothing(dev: DevHandle, api: httpx.Client) -> None:
    before = len(
        api.get("/api/jobs/requests", params={"job_type": "on-push", "limit": 100}).json()["records"]
    )

    wrong = _push(dev, {"ref": "refs/heads/main"}, delivery="delivery-bad", key="not-the-secret-at-all")
    unsigned = httpx.post(f"{dev.url}/api/triggers/{ORG}/on-push/github", json={"ref": "refs/heads/main"})

    assert wrong.status_code == 401, wrong.text
    assert wrong.json()["error"] == "UNAUTHORIZED"
    assert unsigned.status_code == 401
    after = len(api.get("/api/jobs/requests", params={"job_type": "on-push", "limit": 100}).json()["records"])
    assert after == before


def test_a_push_to_another_branch_is_filtered(dev: DevHandle) -> None:
    answer = _push(dev, {"ref": "refs/heads/feature"}, delivery="delivery-filtered")

    assert answer.status_code == 202
    assert answer.json()["filtered"] is True
    assert answer.json()["request_id"] == ""


def test_a_body_over_the_limit_is_413(dev: DevHandle) -> None:
    answer = _push(dev, {"ref": "refs/heads/main", "padding": "x" * 300_000}, delivery="delivery-big")

    assert answer.status_code == 413, answer.text


def test_an_unknown_trigger_or_another_organisation_is_404(dev: DevHandle) -> None:
    unknown = httpx.post(f"{dev.url}/api/triggers/{ORG}/on-push/gitlab", json={})
    elsewhere = httpx.post(f"{dev.url}/api/triggers/other-org/limited/ping", json={})

    assert unknown.status_code == 404
    assert elsewhere.status_code == 404


def test_the_rate_limit_drops_the_21st_and_lists_it(dev: DevHandle, api: httpx.Client) -> None:
    # Given a trigger limited to 20 starts per hour; when 21 events arrive within the window
    answers = [
        httpx.post(f"{dev.url}/api/triggers/{ORG}/limited/ping", json={"n": n}, timeout=30) for n in range(21)
    ]

    # Then 20 start a request each and the 21st is dropped, visible in the API
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
    started = [a.json()["request_id"] for a in answers[:20]]
    assert all(started) and len(set(started)) == 20
    assert answers[20].json() == {"request_id": "", "filtered": False, "duplicate": False, "dropped": True}
    dropped = api.get("/api/jobs/definitions/limited/triggers/dropped")
    assert dropped.status_code == 200, dropped.text
    records = dropped.json()["records"]
    assert len(records) == 1
    assert records[0]["trigger"] == "ping"
    assert "rate_limit" in records[0]["reason"]


def _requests_of(api: httpx.Client, job_type: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records: list[dict[str, Any]] = api.get("/api/jobs/requests", params={"job_type": job_type}).json()[
            "records"
        ]
        if len(records) >= count or time.monotonic() >= deadline:
            return records
        time.sleep(0.3)


def test_an_s3_upload_of_a_parquet_file_starts_the_job_and_a_csv_does_not(
    dev: DevHandle, api: httpx.Client
) -> None:
    # Given a bucket with EventBridge notifications on (as the stack sets them on the buckets the
    # operator lists; formica dev also turns them on for every new bucket within two seconds)
    s3 = dev.moto_client("s3")
    s3.create_bucket(Bucket="incoming-data")
    s3.put_bucket_notification_configuration(
        Bucket="incoming-data", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )

    # When a .csv and then a .parquet file are put under incoming/
    s3.put_object(Bucket="incoming-data", Key="incoming/x.csv", Body=b"a,b\n")
    s3.put_object(Bucket="incoming-data", Key="incoming/x.parquet", Body=b"PAR1")

    # Then only the .parquet one starts a request, with the object's key and size
    records = _requests_of(api, "on-upload", 1)
    assert len(records) == 1, records
    done = wait_for(api, records[0]["id"])
    assert done["job_state"] == "COMPLETED", done
    assert done["params"] == {"key": "incoming/x.parquet", "size": "4"}
    time.sleep(2)  # the .csv event had its chance too
    assert len(_requests_of(api, "on-upload", 2, timeout=0)) == 1


def test_an_sqs_message_over_1000_starts_the_job_and_500_does_not(dev: DevHandle, api: httpx.Client) -> None:
    # Given the organisation's queue for the topic (tagged as the stack tags the queues it creates)
    sqs = dev.moto_client("sqs")
    url = sqs.create_queue(
        QueueName="formica-local-orders", tags={"formica:org": ORG, "formica:topic": "orders"}
    )["QueueUrl"]

    # When two orders arrive, of 500 and 1500
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": "o-small", "total": 500}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": "o-big", "total": 1500}))

    # Then one request starts, for the big one
    records = _requests_of(api, "big-order", 1)
    assert len(records) == 1, records
    done = wait_for(api, records[0]["id"])
    assert done["job_state"] == "COMPLETED", done
    assert done["params"] == {"order": "o-big"}
    time.sleep(2)
    assert len(_requests_of(api, "big-order", 2, timeout=0)) == 1
