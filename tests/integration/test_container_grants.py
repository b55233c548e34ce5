"""The helper containers' grants end to end: capabilities minted by the launch's code, exchanged by the
real helper programs (sh and curl) at the grants route for URLs of an S3 endpoint (moto's server)
signed at that moment, as the containers would, holding no credentials at all (the programs run with
an environment stripped of every AWS variable).

moto 5.2 enforces nothing of a presigned POST's policy (checked), so this
shows the form fields, keys, metadata and curl configs work with S3's protocol; the policy's limits
themselves are asserted by decoding it (tests/integration/test_ecs_launch.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from formica.jobs.models import TaskDefinition
from formica.runners.base import TaskContext
from formica.runners.container_grants import ContainerGrants, GrantIssuer, HelperGrant, issue_grants
from formica.runners.container_script import (
    ARTIFACTS_PROGRAM_NAME,
    DEPENDENCIES_PROGRAM,
    DEPENDENCIES_PROGRAM_NAME,
    UPLOAD_PROGRAM,
    upload_arguments,
)
from formica.store.blobs import S3BlobStore
from formica.store.grants import GrantRight

from tests.integration.conftest import GrantsRoute, bucket_store, serve_grants

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the helper programs need curl")

BUCKET = "formica-grants-test"
ORG, REQUEST = "acme", "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47"


@pytest.fixture
def store(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    return bucket_store(s3_server, BUCKET, monkeypatch)


@pytest.fixture
def route(store: S3BlobStore) -> Iterator[GrantsRoute]:
    yield from serve_grants(store)


@pytest.fixture
def issuer(route: GrantsRoute, store: S3BlobStore) -> GrantIssuer:
    return GrantIssuer(grants=route.grants, blobs=store, api_url=route.url.removesuffix("/api/grants"))


def _ctx(task_type: str) -> TaskContext:
    return TaskContext(
        org=ORG, request_id=REQUEST, job_type="j", task_type=task_type, attempt=3, timeout_seconds=600
    )


def _no_credentials_env(tmp_path: Path, grant: HelperGrant | None) -> dict[str, str]:
    """What a helper container has: no AWS variable, no proxy, its grant URL (if any)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "FORMICA_")) and "proxy" not in key.lower()
    }
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env.update(grant.environment if grant is not None else {})
    return env


def _run(program: str, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", program, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_task_downloads_its_dependencies_and_uploads_its_artifacts_through_grants(
    store: S3BlobStore, issuer: GrantIssuer, route: GrantsRoute, tmp_path: Path
) -> None:
    compile_prefix = f"{ORG}/{REQUEST}/compile/artifacts/"
    store.put_bytes(compile_prefix + "bin/app", b"binary")
    store.put_bytes(compile_prefix + "notes $(x).txt", b"notes")
    task = TaskDefinition.model_validate(
        {
            "task_type": "ship",
            "method": "DOCKER",
            "container": {"image": "alpine"},
            "dependencies": ["compile"],
            "artifacts": {"paths": ["report.json", "out"]},
        }
    )
    grants: ContainerGrants = issue_grants(issuer, task, _ctx("ship"), 9)
    assert route.exchanges == []  # nothing is signed before a helper asks
    workspace = tmp_path / "ws"
    workspace.mkdir()

    downloaded = _run(
        DEPENDENCIES_PROGRAM,
        [DEPENDENCIES_PROGRAM_NAME],
        workspace,
        _no_credentials_env(tmp_path, grants.dependencies),
    )
    assert downloaded.returncode == 0, downloaded.stderr
    assert (workspace / "bin" / "app").read_bytes() == b"binary"
    assert (workspace / "notes $(x).txt").read_bytes() == b"notes"

    (workspace / ".formica").mkdir()
    (workspace / ".formica" / "exit-code").write_text("0\n")
    (workspace / "report.json").write_text('{"ok": true}')
    (workspace / "out" / "deep").mkdir(parents=True)
    (workspace / "out" / "deep" / "log.txt").write_text("done\n")
    args = upload_arguments(
        org=ORG, request_id=REQUEST, task_type="ship", paths=["report.json", "out"], when="onSuccess"
    )
    uploaded = _run(
        UPLOAD_PROGRAM,
        [ARTIFACTS_PROGRAM_NAME, *args],
        workspace,
        _no_credentials_env(tmp_path, grants.artifacts),
    )
    assert uploaded.returncode == 0, uploaded.stderr
    assert "failed" not in uploaded.stdout, uploaded.stdout

    prefix = f"{ORG}/{REQUEST}/ship/artifacts/"
    blobs = {blob.key: blob for blob in store.list_blobs(prefix)}
    assert sorted(blobs) == [prefix + "out/deep/log.txt", prefix + "report.json"]
    report = blobs[prefix + "report.json"]
    # What the reconciler reads back: the uploader's sha256 and content type.
    assert report.sha256 == hashlib.sha256(b'{"ok": true}').hexdigest()
    assert report.content_type == "application/json"
    assert store.get_bytes(prefix + "out/deep/log.txt") == b"done\n"
    assert blobs[prefix + "out/deep/log.txt"].content_type == "text/plain"
    # One exchange per helper, each with its own capability.
    assert [exchange["format"] for exchange in route.exchanges] == ["curl", "curl"]
    assert len({exchange["capability"] for exchange in route.exchanges}) == 2


def test_a_helper_whose_capability_expired_moves_nothing(
    store: S3BlobStore, issuer: GrantIssuer, route: GrantsRoute, tmp_path: Path
) -> None:
    store.put_bytes(f"{ORG}/{REQUEST}/compile/artifacts/app", b"binary")
    task = TaskDefinition.model_validate(
        {
            "task_type": "late",
            "method": "DOCKER",
            "container": {"image": "alpine"},
            "dependencies": ["compile"],
        }
    )
    long_ago = datetime.now(UTC) - timedelta(days=2)
    grants = issue_grants(issuer, task, _ctx("late"), 2, now=long_ago)
    workspace = tmp_path / "ws"
    workspace.mkdir()

    result = _run(
        DEPENDENCIES_PROGRAM,
        [DEPENDENCIES_PROGRAM_NAME],
        workspace,
        _no_credentials_env(tmp_path, grants.dependencies),
    )

    assert result.returncode != 0  # the main container never starts: ERR_CONTAINER_START
    assert "401" in result.stderr
    assert list(workspace.iterdir()) == []


def test_nothing_to_move_means_no_file_grant_only_the_live_logs(
    store: S3BlobStore, issuer: GrantIssuer, route: GrantsRoute
) -> None:
    task = TaskDefinition.model_validate(
        {"task_type": "idle", "method": "DOCKER", "container": {"image": "alpine"}}
    )
    grants = issue_grants(issuer, task, _ctx("idle"), 1)
    assert (grants.dependencies, grants.artifacts) == (None, None)
    assert grants.logs is not None
    assert [blob.key for blob in store.list_blobs(f"{ORG}/{REQUEST}/idle/")] == [grants.logs.env_file_key]
    [scope] = route.grants.scopes.values()
    assert scope.rights == (GrantRight.LIVE_LOG,)
