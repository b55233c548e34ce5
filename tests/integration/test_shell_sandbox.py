"""The SHELL sandbox's side, against moto's S3 server on loopback: a script runs with only the
capability it is handed, exchanged at the grants route (on loopback) for presigned GETs of its
dependencies and its cancel marker at the start and one presigned POST for its artifact prefix when
it uploads; and what the trusted side keeps of its answer. The grants' policy is checked by decoding
it (moto enforces nothing on presigned POST policies)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from formica.jobs.limits import OUTPUT_VALUE_MAX_BYTES
from formica.runners.grants import GRANT_URL_SECONDS, exchange_capability, mint_capability
from formica.runners.sandbox import (
    ERR_SANDBOX,
    SandboxContext,
    SandboxRequest,
    handle,
    kill_pids,
    leftover_pids,
    scrub_environment,
    trusted_outcome,
)
from formica.store.blobs import BlobStoreError, S3BlobStore
from formica.store.grants import GrantRight
from formica.store.presigned_blobs import PresignedBlobStore
from formica.store.schema import artifact_key, cancel_marker_key

from tests.integration.conftest import GrantsRoute, bucket_store, serve_grants

BUCKET = "formica-sandbox-test"
ORG, REQUEST, TASK = "acme", "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47", "build"
PREFIX = artifact_key(ORG, REQUEST, TASK, "")
EXECUTION = f"{REQUEST}-1"
ALL_RIGHTS = (GrantRight.DOWNLOAD, GrantRight.UPLOAD, GrantRight.CANCEL)


@pytest.fixture
def store(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    return bucket_store(s3_server, BUCKET, monkeypatch)


@pytest.fixture
def route(store: S3BlobStore) -> Iterator[GrantsRoute]:
    yield from serve_grants(store)


def _capability(
    route: GrantsRoute,
    *,
    rights: Sequence[GrantRight] = ALL_RIGHTS,
    dependencies: Sequence[str] = (),
    seconds: float = 600,
    max_bytes: int = 1024 * 1024,
    instance: int | None = None,
) -> str:
    now = datetime.now(UTC)
    return mint_capability(
        route.grants,
        org=ORG,
        request_id=REQUEST,
        task_type=TASK,
        step=4,
        rights=rights,
        expires_at=now + timedelta(seconds=seconds),
        now=now,
        execution=EXECUTION,
        dependencies=dependencies,
        max_bytes=max_bytes,
        instance=instance,
    )


def _request(
    route: GrantsRoute,
    script: list[str],
    *,
    paths: list[str] | None = None,
    dependencies: Sequence[str] = (),
    capability: str | None = None,
) -> SandboxRequest:
    task: dict[str, Any] = {"task_type": TASK, "method": "SHELL", "script": script}
    if paths is not None:
        task["artifacts"] = {"paths": paths}
    if dependencies:
        task["dependencies"] = list(dependencies)
    return SandboxRequest(
        task=task,
        context=SandboxContext(
            org=ORG, request_id=REQUEST, job_type="j", task_type=TASK, attempt=3, timeout_seconds=20
        ),
        grants_url=route.url,
        capability=capability or _capability(route, dependencies=dependencies),
    )


def test_a_script_gets_its_dependencies_and_its_artifacts_land_under_its_prefix_only(
    store: S3BlobStore, route: GrantsRoute, tmp_path: Path
) -> None:
    # Given an earlier task's artifact
    dependency = artifact_key(ORG, REQUEST, "fetch", "data/input.txt")
    store.put_bytes(dependency, b"from fetch\n", "text/plain")
    request = _request(
        route,
        [
            "cat data/input.txt",
            "echo built > out.txt",
            "env | grep -c AWS_ || true",
            "env | grep fgc_ || true",
        ],
        paths=["out.txt"],
        dependencies=["fetch"],
    )

    # When the sandbox runs the attempt
    answer = handle(request.model_dump(mode="json"), work_root=tmp_path)

    # Then the script saw the dependency, and its artifact is in S3 under the task's prefix
    assert answer["exit_code"] == "0", answer
    assert "from fetch" in answer["log"]
    assert request.capability is not None and request.capability not in answer["log"]  # not in its env
    [artifact] = answer["artifacts"]
    assert artifact["key"] == PREFIX + "out.txt"
    assert store.get_bytes(PREFIX + "out.txt") == b"built\n"
    assert artifact["sha256"] == hashlib.sha256(b"built\n").hexdigest()
    # And the capability was exchanged twice: at the start (downloads, cancel marker) and at the upload
    assert len(route.exchanges) == 2
    # And its working directory is gone
    assert list(tmp_path.iterdir()) == []


def test_an_exchanged_upload_grant_is_limited_to_the_prefix_a_size_and_a_time(
    store: S3BlobStore, route: GrantsRoute
) -> None:
    # Given a capability of one attempt that ends in 10 minutes
    capability = _capability(route, rights=[GrantRight.UPLOAD], max_bytes=4096)

    # When it is exchanged
    grant = exchange_capability(route.grants, store, capability, now=datetime.now(UTC))

    # Then the POST's policy (what S3 enforces; moto does not) says exactly that
    assert grant.upload is not None and grant.downloads == [] and grant.cancel_url is None
    policy = json.loads(base64.b64decode(grant.upload.fields["policy"]))
    conditions = policy["conditions"]
    assert ["starts-with", "$key", PREFIX] in conditions
    assert PREFIX.endswith("/artifacts/")
    assert ["content-length-range", 0, 4096] in conditions
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert 590 <= (expires - datetime.now(UTC)).total_seconds() <= 610  # never past the capability
    assert {"bucket": BUCKET} in conditions
    assert "key" not in grant.upload.fields, "each upload names its own key under the prefix"


def test_a_fan_out_instances_upload_is_limited_to_its_own_instance_directory(
    store: S3BlobStore, route: GrantsRoute, tmp_path: Path
) -> None:
    # Given the capability of instance 1 of a task fan-out
    capability = _capability(route, rights=[GrantRight.UPLOAD], instance=1)
    own = PREFIX + "instance-1/"

    # When it is exchanged, the POST's policy allows keys under instance 1's directory only
    grant = exchange_capability(route.grants, store, capability, now=datetime.now(UTC))
    assert grant.upload is not None
    conditions = json.loads(base64.b64decode(grant.upload.fields["policy"]))["conditions"]
    key_conditions = [c for c in conditions if isinstance(c, list) and c[1] == "$key"]
    # (not the task's prefix, nor instance-10/)
    assert key_conditions and all(c == ["starts-with", "$key", own] for c in key_conditions)

    # And the sandbox, told its directory, uploads there under an instance-scoped name
    ran = _request(route, ["echo one > out.txt"], paths=["out.txt"], capability=capability)
    ran.context.artifact_dir = "instance-1/"
    answer = handle(ran.model_dump(mode="json"), work_root=tmp_path)
    assert answer["exit_code"] == "0", answer
    [artifact] = answer["artifacts"]
    assert (artifact["name"], artifact["key"]) == ("instance-1/out.txt", own + "out.txt")
    assert store.get_bytes(own + "out.txt") == b"one\n"

    # And a sandbox that claims another instance's directory with it uploads nothing there
    stolen = _request(route, ["echo two > out.txt"], paths=["out.txt"], capability=capability)
    stolen.context.artifact_dir = "instance-0/"
    refused = handle(stolen.model_dump(mode="json"), work_root=tmp_path)
    assert refused["error_code"] == "ERR_ARTIFACTS_UPLOAD", refused
    assert store.list_keys(PREFIX + "instance-0/") == []
    # And the trusted side keeps only keys under the instance's own directory
    kept = trusted_outcome(
        {**answer, "artifacts": [*answer["artifacts"], {**artifact, "key": PREFIX + "x"}]},
        artifact_prefix=own,
    )
    assert [a.key for a in kept.artifacts] == [own + "out.txt"]


def test_a_long_attempts_urls_are_signed_when_exchanged_and_live_an_hour(
    store: S3BlobStore, route: GrantsRoute
) -> None:
    # Given a capability of a day-long attempt, exchanged (in this test) now
    capability = _capability(route, rights=[GrantRight.CANCEL], seconds=24 * 3600)
    grant = exchange_capability(route.grants, store, capability, now=datetime.now(UTC))

    # Then its URL was signed at this moment and lives an hour, not the attempt's day
    assert grant.cancel_url is not None
    query = parse_qs(urlsplit(grant.cancel_url).query)
    signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((signed - datetime.now(UTC)).total_seconds()) < 60
    assert int(query["X-Amz-Expires"][0]) == GRANT_URL_SECONDS
    assert cancel_marker_key(ORG, REQUEST, EXECUTION) in grant.cancel_url


def test_a_capability_grants_its_rights_only(store: S3BlobStore, route: GrantsRoute) -> None:
    store.put_bytes(artifact_key(ORG, REQUEST, "prepare", "a.txt"), b"a")
    store.put_bytes(artifact_key("other-org", REQUEST, "prepare", "b.txt"), b"b")
    download = _capability(route, rights=[GrantRight.DOWNLOAD], dependencies=["prepare"])

    grant = exchange_capability(route.grants, store, download, now=datetime.now(UTC))

    # Its own organisation's dependency only; no upload, no cancel marker
    assert [(item.path, item.key) for item in grant.downloads] == [
        ("a.txt", artifact_key(ORG, REQUEST, "prepare", "a.txt"))
    ]
    assert grant.upload is None and grant.cancel_url is None


def test_an_expired_or_unknown_capability_fails_the_attempt_before_the_script_runs(
    route: GrantsRoute, tmp_path: Path
) -> None:
    expired = _capability(route, seconds=-1)
    for capability in (expired, "fgc_" + "x" * 43):
        request = _request(route, ["touch ran"], capability=capability)
        answer = handle(request.model_dump(mode="json"), work_root=tmp_path)
        assert answer["error_code"] == "ERR_ARTIFACTS_DOWNLOAD"
        assert "HTTP 401" in answer["error_message"]
        assert not list(tmp_path.rglob("ran"))


def test_the_sandbox_refuses_to_write_outside_its_prefix_before_asking_s3(store: S3BlobStore) -> None:
    grant = store.presign_post(PREFIX, max_bytes=16, expires_seconds=600)
    sandbox_store = PresignedBlobStore({}, grant)
    with pytest.raises(BlobStoreError, match="outside"):
        sandbox_store.put_bytes(artifact_key("other-org", REQUEST, TASK, "x"), b"x")
    with pytest.raises(BlobStoreError, match="outside"):
        sandbox_store.put_bytes(PREFIX + "../../../other-org/x", b"x")
    with pytest.raises(BlobStoreError, match="more than"):
        sandbox_store.put_bytes(PREFIX + "big", b"x" * 17)
    with pytest.raises(BlobStoreError):
        sandbox_store.list_blobs("")


def test_a_cancelled_request_stops_the_sandboxed_script(
    store: S3BlobStore, route: GrantsRoute, tmp_path: Path
) -> None:
    # Given a long script and the request's cancel marker written meanwhile
    request = _request(route, ["sleep 30"])
    marker = cancel_marker_key(ORG, REQUEST, EXECUTION)
    started = time.monotonic()
    store.put_bytes(marker, b"cancelled\n", "text/plain")
    try:
        answer = handle(request.model_dump(mode="json"), work_root=tmp_path)
    finally:
        store.delete_prefix(marker)

    # Then the script is killed within a few seconds and the attempt is cancelled
    assert answer["error_code"] == "ERR_TASK_CANCELLED"
    assert time.monotonic() - started < 10


def test_a_bad_request_is_an_error_outcome_not_a_crash() -> None:
    answer = handle({"task": {}, "context": {}})
    assert answer["error_code"] == ERR_SANDBOX


def test_the_trusted_side_drops_artifacts_outside_the_attempts_prefix() -> None:
    # Given an answer forged by a script that reached the runtime API in the sandbox's stead
    forged = {
        "exit_code": "0",
        "artifacts": [
            {"name": "ok.txt", "key": PREFIX + "ok.txt", "size": 1, "sha256": "a"},
            {"name": "x", "key": artifact_key("other-org", REQUEST, TASK, "x"), "size": 1, "sha256": "b"},
            {"name": "y", "key": PREFIX + "../../y", "size": 1, "sha256": "c"},
        ],
        "log": "x" * (600 * 1024),
    }

    outcome = trusted_outcome(forged, artifact_prefix=PREFIX)

    assert [artifact.key for artifact in outcome.artifacts] == [PREFIX + "ok.txt"]
    assert len(outcome.warnings) == 2
    assert len(outcome.log.encode()) < 300 * 1024


def test_leftover_processes_are_found_and_the_sandbox_itself_is_spared() -> None:
    # Given a process an attempt left running (detached into its own session)
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        found = leftover_pids(os.getuid(), me=os.getpid())

        # Then it is among the leftovers, while this process and its ancestors are not
        assert child.pid in found
        assert os.getpid() not in found
        assert os.getppid() not in found
        # And killing it (only it, here: this machine is shared with other work) ends it
        assert kill_pids([child.pid]) == 1
        assert child.wait(timeout=5) == -9
    finally:
        if child.poll() is None:
            child.kill()


def test_the_full_scrub_runs_only_where_the_sandbox_is_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # formica dev and tests run the sandbox in-process: it must not kill the developer's processes.
    monkeypatch.delenv("FORMICA_SANDBOX_SCRUB", raising=False)
    assert scrub_environment(None) == 0


def test_a_forged_answer_cannot_grow_the_request_items() -> None:
    # Given an answer padded to break a DynamoDB item (400 KB) or write thousands of records
    forged = {
        "exit_code": "0",
        "error_message": "e" * 100_000,
        "warnings": ["w" * 10_000] * 5_000,
        "outputs": {"x": "y" * 100_000},
        "artifacts": [
            {"name": f"{n}", "key": f"{PREFIX}{n}", "size": 1, "sha256": "a"} for n in range(5_000)
        ],
    }

    outcome = trusted_outcome(forged, artifact_prefix=PREFIX)

    # Then what the trusted side keeps is bounded
    assert outcome.outputs == {"x": "y" * OUTPUT_VALUE_MAX_BYTES}
    assert outcome.error_message is not None and len(outcome.error_message) <= 2000
    assert len(outcome.warnings) <= 41 and all(len(warning) <= 500 for warning in outcome.warnings)
    assert len(outcome.artifacts) == 1000


def test_a_restarted_request_is_not_stopped_by_its_earlier_cancel() -> None:
    # The marker names the execution it cancelled: a restart walks in a new one.
    assert cancel_marker_key(ORG, REQUEST, f"{REQUEST}-1") != cancel_marker_key(ORG, REQUEST, f"{REQUEST}-2")
