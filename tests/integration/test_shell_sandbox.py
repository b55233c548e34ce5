"""The SHELL sandbox's side, against moto's S3 server on loopback: a script runs with only the grants
it is handed (presigned GETs for its dependencies, one presigned POST for its artifact prefix, the
cancel marker), and what the trusted side keeps of its answer. The grants' policy is checked by
decoding it (moto enforces nothing on presigned POST policies)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from formica.jobs.limits import OUTPUT_VALUE_MAX_BYTES
from formica.runners.sandbox import (
    ERR_SANDBOX,
    SandboxContext,
    SandboxRequest,
    SandboxUpload,
    handle,
    kill_pids,
    leftover_pids,
    scrub_environment,
    trusted_outcome,
)
from formica.store.blobs import BlobStoreError, S3BlobStore
from formica.store.presigned_blobs import PresignedBlobStore
from formica.store.schema import artifact_key, cancel_marker_key

from tests.integration.conftest import bucket_store

BUCKET = "formica-sandbox-test"
ORG, REQUEST, TASK = "acme", "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47", "build"
PREFIX = artifact_key(ORG, REQUEST, TASK, "")


@pytest.fixture
def store(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    return bucket_store(s3_server, BUCKET, monkeypatch)


def _request(
    store: S3BlobStore, script: list[str], *, paths: list[str] | None = None, **extra: Any
) -> SandboxRequest:
    task: dict[str, Any] = {"task_type": TASK, "method": "SHELL", "script": script}
    if paths is not None:
        task["artifacts"] = {"paths": paths}
    grant = store.presign_post(PREFIX, max_bytes=1024 * 1024, expires_seconds=600)
    values: dict[str, Any] = {
        "task": task,
        "context": SandboxContext(
            org=ORG, request_id=REQUEST, job_type="j", task_type=TASK, attempt=3, timeout_seconds=20
        ),
        "upload": SandboxUpload.of(grant),
        "cancel_url": store.presign_get(cancel_marker_key(ORG, REQUEST, f"{REQUEST}-1"), 600),
    }
    values.update(extra)
    return SandboxRequest(**values)


def test_a_script_gets_its_dependencies_and_its_artifacts_land_under_its_prefix_only(
    store: S3BlobStore, tmp_path: Path
) -> None:
    # Given an earlier task's artifact, granted by a presigned GET
    dependency = artifact_key(ORG, REQUEST, "fetch", "data/input.txt")
    store.put_bytes(dependency, b"from fetch\n", "text/plain")
    request = _request(
        store,
        ["cat data/input.txt", "echo built > out.txt", "env | grep -c AWS_ || true"],
        paths=["out.txt"],
        dependencies={dependency: store.presign_get(dependency, 600)},
    )

    # When the sandbox runs the attempt
    answer = handle(request.model_dump(mode="json"), work_root=tmp_path)

    # Then the script saw the dependency, and its artifact is in S3 under the task's prefix
    assert answer["exit_code"] == "0", answer
    assert "from fetch" in answer["log"]
    [artifact] = answer["artifacts"]
    assert artifact["key"] == PREFIX + "out.txt"
    assert store.get_bytes(PREFIX + "out.txt") == b"built\n"
    assert artifact["sha256"] == hashlib.sha256(b"built\n").hexdigest()
    # And its working directory is gone
    assert list(tmp_path.iterdir()) == []


def test_the_upload_grant_is_limited_to_the_prefix_a_size_and_a_time(store: S3BlobStore) -> None:
    # Given the grant the trusted side makes for one task's artifacts
    grant = store.presign_post(PREFIX, max_bytes=4096, expires_seconds=600)

    # Then its policy (what S3 enforces; moto does not) says exactly that
    policy = json.loads(base64.b64decode(grant.fields["policy"]))
    conditions = policy["conditions"]
    assert ["starts-with", "$key", PREFIX] in conditions
    assert PREFIX.endswith("/artifacts/")
    assert ["content-length-range", 0, 4096] in conditions
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert 590 <= (expires - datetime.now(UTC)).total_seconds() <= 610
    assert {"bucket": BUCKET} in conditions
    assert "key" not in grant.fields, "each upload names its own key under the prefix"


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


def test_a_cancelled_request_stops_the_sandboxed_script(store: S3BlobStore, tmp_path: Path) -> None:
    # Given a long script and the request's cancel marker written meanwhile
    request = _request(store, ["sleep 30"])
    marker = cancel_marker_key(ORG, REQUEST, f"{REQUEST}-1")
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
