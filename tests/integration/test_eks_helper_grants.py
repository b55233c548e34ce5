"""On EKS the helpers' capabilities are not in the Job: each helper's ``FORMICA_CAPABILITY`` (and the
``logs`` helper's masking script) is in the run's Kubernetes Secret, under a key of its own, and
reaches the container by ``secretKeyRef``. End to end on loopback: the container service launches
the Job on the fake Kubernetes API (which resolves every container's ``secretKeyRef`` when the pod
starts, as the kubelet does), then the real helper programs (sh and curl, no AWS credentials) run
with exactly the variables their containers started with, and exchange them at the grants route for
URLs of moto's S3 server: the dependencies are downloaded, the live log streamed, the artifacts
uploaded. When the reconciler settles the run, its Secret is deleted."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from formica.engine.masking import secret_forms
from formica.jobs.models import TaskDefinition
from formica.runners.base import TaskContext
from formica.runners.container_grants import GrantIssuer
from formica.runners.container_script import (
    ARTIFACTS_PROGRAM_NAME,
    DEPENDENCIES_PROGRAM,
    DEPENDENCIES_PROGRAM_NAME,
    LOG_PROGRAM,
    LOGS_PROGRAM_NAME,
    UPLOAD_PROGRAM,
)
from formica.runners.eks import EksJobRunner, job_name
from formica.runtime.containers import ContainerService
from formica.store.blobs import S3BlobStore
from formica.store.grants import GrantRight
from formica.store.logs import TaskLogs, live_prefix

from tests.integration.conftest import GrantsRoute, bucket_store, serve_grants
from tests.integration.eks_world import NAMESPACE, Clock, RecordingReporter, eks_service
from tests.integration.fake_kubernetes import FakeKubernetes

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("curl", "sed", "tee", "mkfifo", "base64")),
    reason="the helper programs need curl, sed, tee, mkfifo and base64",
)

BUCKET = "formica-eks-helpers-test"
ORG, REQUEST, TASK = "acme", "4b2e9d1c-7a3f-4e8b-b6c5-1d0e9f8a7b6c", "ship"
STEP = 6
SECRET = "kube-Secret/Value+42"
HELPERS = ("dependencies", "artifacts", "logs")


@pytest.fixture
def store(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    blobs = bucket_store(s3_server, BUCKET, monkeypatch)
    blobs.delete_prefix("")
    return blobs


@pytest.fixture
def route(store: S3BlobStore) -> Iterator[GrantsRoute]:
    yield from serve_grants(store)


def _task(workspace: Path) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {
            "task_type": TASK,
            "method": "KUBERNETES",
            "container": {"image": "busybox:ok"},
            "working_dir": str(workspace),
            "dependencies": ["compile"],
            "script": ["cat bin/app > out.txt", 'echo "shipping with $ApiToken"'],
            "artifacts": {"paths": ["out.txt"]},
        }
    )


def _ctx() -> TaskContext:
    return TaskContext(
        org=ORG,
        request_id=REQUEST,
        job_type="j",
        task_type=TASK,
        attempt=STEP,
        task_attempt=1,
        timeout_seconds=600,
        params={"ApiToken": SECRET},
        log_flush_seconds=0.3,
        secrets=(SECRET,),
    )


def _run(container: str, command: list[str], cwd: Path, started: dict[str, str], tmp: Path) -> str:
    """Run a container's program with the variables it started with, and nothing of AWS or Formica
    from this process (no credentials, no proxy)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "FORMICA_")) and "proxy" not in key.lower()
    }
    (tmp / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp / "tmp")
    env.update(started)
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, (container, result.stdout, result.stderr)
    return result.stdout


def _settle(service: ContainerService, reporter: RecordingReporter) -> None:
    """Sweep until the reconciler has reported the run (a few polls move the fake pod to its end)."""
    for _ in range(10):
        if reporter.reports:
            return
        service.reconcile()
    raise AssertionError("the run was not settled")


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_the_helpers_capabilities_come_from_the_runs_secret_and_still_move_the_files(
    cluster: FakeKubernetes,
    runner: EksJobRunner,
    store: S3BlobStore,
    route: GrantsRoute,
    tmp_path: Path,
) -> None:
    # Given a task with a dependency to download, an artifact to upload and a secret config, launched
    # by the container service, whose grants route is on loopback
    store.put_bytes(f"{ORG}/{REQUEST}/compile/artifacts/bin/app", b"binary")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    reporter, clock = RecordingReporter(), Clock()
    clock.now = datetime.now(UTC)  # the grants route checks expiry on the real clock
    service = eks_service(runner, reporter, clock)
    service._issuer = GrantIssuer(
        grants=route.grants, blobs=store, api_url=route.url.removesuffix("/api/grants")
    )
    service.launch(REQUEST, STEP, _task(workspace), _ctx(), "token")
    name = job_name(REQUEST, STEP)

    # Then the run's Secret holds each helper's capability under a key of its own, and the mask
    secret = _decoded(cluster.secrets[(NAMESPACE, name)])
    capabilities = {helper: secret[f"{helper}.FORMICA_CAPABILITY"] for helper in HELPERS}
    assert len(set(capabilities.values())) == 3
    assert set(secret) == {f"{helper}.FORMICA_CAPABILITY" for helper in HELPERS} | {
        "logs.FORMICA_LOG_MASK",
        "ApiToken",
    }
    # And no form of any capability, nor of the secret or its mask, is anywhere in the Job
    [job] = cluster.created
    text = json.dumps(job)
    for value in [*capabilities.values(), SECRET, secret["logs.FORMICA_LOG_MASK"]]:
        for form in secret_forms(value):
            assert form not in text
    # And each helper references its own key under the name its program expects; its URL is plain
    spec = job["spec"]["template"]["spec"]
    for container in [*spec["initContainers"], *spec["containers"][1:]]:
        env = {item["name"]: item for item in container["env"]}
        assert env["FORMICA_CAPABILITY"]["valueFrom"] == {
            "secretKeyRef": {"name": name, "key": f"{container['name']}.FORMICA_CAPABILITY"}
        }
        assert env["FORMICA_GRANTS_URL"]["value"] == route.url

    # When the pod starts (the reconciler polls the Job)
    for _ in range(5):
        if cluster.started_envs:
            break
        service.reconcile()
    [started] = cluster.started_envs.values()

    # Then every helper started with its own capability, resolved from the Secret
    assert {helper: started[helper]["FORMICA_CAPABILITY"] for helper in HELPERS} == capabilities
    assert "FORMICA_CAPABILITY" not in started["main"]

    # When the containers' programs run with those variables: dependencies, main, logs, artifacts
    [download] = [c for c in spec["initContainers"] if c["name"] == "dependencies"]
    assert download["command"] == ["sh", "-c", DEPENDENCIES_PROGRAM, DEPENDENCIES_PROGRAM_NAME]
    _run("dependencies", download["command"], workspace, started["dependencies"], tmp_path)
    [main] = [c for c in spec["containers"] if c["name"] == "main"]
    _run("main", main["command"], workspace, started["main"], tmp_path)
    [logs] = [c for c in spec["initContainers"] if c["name"] == "logs"]
    assert logs["command"] == ["sh", "-c", LOG_PROGRAM, LOGS_PROGRAM_NAME]
    _run("logs", logs["command"], workspace, started["logs"], tmp_path)
    [uploader] = [c for c in spec["containers"] if c["name"] == "artifacts"]
    assert uploader["command"][:4] == ["sh", "-c", UPLOAD_PROGRAM, ARTIFACTS_PROGRAM_NAME]
    uploaded = _run("artifacts", uploader["command"], workspace, started["artifacts"], tmp_path)

    # Then each exchanged its capability: the dependency came down, the live log went up masked, the
    # artifact went up
    assert (workspace / "bin" / "app").read_bytes() == b"binary"
    chunks = TaskLogs(store).read_live(live_prefix(ORG, REQUEST, TASK, 1), 0).data.decode()
    assert "shipping with ****" in chunks and SECRET not in chunks
    assert "failed" not in uploaded, uploaded
    assert store.get_bytes(f"{ORG}/{REQUEST}/{TASK}/artifacts/out.txt") == b"binary"
    rights = {scope.rights for scope in route.grants.scopes.values()}
    assert rights == {(GrantRight.DOWNLOAD,), (GrantRight.UPLOAD,), (GrantRight.LIVE_LOG,)}
    assert len(route.exchanges) >= 3

    # When the Job finishes and the reconciler settles the run
    _settle(service, reporter)

    # Then the run's Secret is deleted
    assert cluster.secrets == {}
    assert ("DELETE", name, {}) in cluster.secret_calls


def test_an_attempt_without_secret_configs_still_has_a_secret_for_its_helpers(
    cluster: FakeKubernetes, runner: EksJobRunner, store: S3BlobStore, route: GrantsRoute, tmp_path: Path
) -> None:
    # Given an attempt with no secret config, launched with grants (the logs helper always has one)
    reporter = RecordingReporter()
    service = eks_service(runner, reporter)
    service._issuer = GrantIssuer(
        grants=route.grants, blobs=store, api_url=route.url.removesuffix("/api/grants")
    )
    task = TaskDefinition.model_validate(
        {"task_type": TASK, "method": "KUBERNETES", "container": {"image": "busybox:ok"}, "script": ["true"]}
    )
    ctx = TaskContext(
        org=ORG, request_id=REQUEST, job_type="j", task_type=TASK, attempt=8, timeout_seconds=60
    )
    service.launch(REQUEST, 8, task, ctx, "token")
    name = job_name(REQUEST, 8)

    # Then the Secret holds the logs helper's capability only, and the Job none of it
    secret = _decoded(cluster.secrets[(NAMESPACE, name)])
    assert set(secret) == {"logs.FORMICA_CAPABILITY"}
    [job] = cluster.created
    for form in secret_forms(secret["logs.FORMICA_CAPABILITY"]):
        assert form not in json.dumps(job)

    # And settling the run deletes it
    _settle(service, reporter)
    assert [method for method, _, _ in cluster.secret_calls] == ["POST", "JOB", "PATCH", "DELETE"]
    assert cluster.secrets == {}
