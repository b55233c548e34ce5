"""On EKS, what holds a job's secret configs is not in the Job: it is in a Kubernetes Secret named as
the Job, created just before it, referenced with ``secretKeyRef``, owned by the Job and deleted when
the run is settled. Against the fake Kubernetes API server on 127.0.0.1 (real HTTP; the fake
resolves ``secretKeyRef`` when a container starts, as the kubelet does)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from formica.engine.masking import secret_forms
from formica.jobs.models import ContainerDefinition, TaskDefinition, TaskMethod
from formica.runners.base import TaskContext
from formica.runners.container_grants import GrantIssuer
from formica.runners.ecs_events import RunKey
from formica.runners.eks import (
    SECRET_SCRIPT_RUNNER,
    EksJobRunner,
    EksLaunchConfig,
    KubernetesApiError,
    job_manifest,
    job_name,
    job_secret_manifest,
)

from tests.fakes.blobs import InMemoryBlobStore
from tests.fakes.grants import InMemoryGrantRepository
from tests.integration.eks_world import NAMESPACE, RecordingReporter, eks_service
from tests.integration.fake_kubernetes import FakeKubernetes

REQUEST_ID = "5d1b7a2e-93c4-4e6f-a0b1-2c3d4e5f6a7b"
SECRET = "kube-Secret/Value+42"
PEM = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34\r\n-----END KEY-----\n"


def _task(image: str = "busybox:printenv", **changes: Any) -> TaskDefinition:
    values: dict[str, Any] = {
        "task_type": "kubby",
        "method": TaskMethod.KUBERNETES,
        "container": ContainerDefinition(image=image),
        "script": ["env"],
    }
    values.update(changes)
    return TaskDefinition.model_validate(values)


def _ctx(*secrets: str, timeout: float = 10) -> TaskContext:
    # As the walker builds it: the secret configs' values among the exported variables and in secrets.
    basic = base64.b64encode(f"deploy:{SECRET}".encode()).decode()
    return TaskContext(
        org="acme",
        request_id=REQUEST_ID,
        job_type="kube-example",
        task_type="kubby",
        attempt=2,
        timeout_seconds=timeout,
        params={"ApiToken": SECRET, "AuthHeader": f"Basic {basic}", "SigningKey": PEM, "Region": "eu-west-1"},
        secrets=secrets,
    )


def _secret_data(body: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in body["data"].items()}


def test_the_job_holds_no_secret_and_the_container_gets_them_from_the_runs_secret(
    cluster: FakeKubernetes, runner: EksJobRunner
) -> None:
    # When a job with secret configs runs (the pod prints its environment)
    outcome = runner.run(_task(), _ctx(SECRET, PEM), RunKey(REQUEST_ID, 2))

    # Then the Job's spec holds no form of a secret; the main container references the Secret
    assert outcome.exit_code == "0"
    [job] = cluster.created
    name = job["metadata"]["name"]
    text = json.dumps(job)
    for form in secret_forms(SECRET) | secret_forms(PEM):
        assert form not in text
    [main] = [c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "main"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in main["env"] if "valueFrom" in e}
    assert refs == {key: {"name": name, "key": key} for key in ("ApiToken", "AuthHeader", "SigningKey")}
    assert {"name": "Region", "value": "eu-west-1"} in main["env"]
    # And the Secret was created first, immutable, then owned by the Job, and deleted once settled
    assert [(method, target) for method, target, _ in cluster.secret_calls] == [
        ("POST", name),
        ("JOB", name),
        ("PATCH", name),
        ("DELETE", name),
    ]
    created, _, patch, _ = (body for _, _, body in cluster.secret_calls)
    assert created["immutable"] is True and created["type"] == "Opaque"
    assert _secret_data(created).items() >= {"ApiToken": SECRET, "SigningKey": PEM}.items()
    assert patch == {
        "metadata": {
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": f"uid-{name}"}]
        }
    }
    assert cluster.secrets == {}
    # And the container started with the exact values (a multi-line one included)
    [started] = cluster.started_env.values()
    assert started["SigningKey"] == PEM and started["ApiToken"] == SECRET


def test_without_secrets_there_is_no_secret(cluster: FakeKubernetes, runner: EksJobRunner) -> None:
    runner.run(_task(), _ctx(), RunKey(REQUEST_ID, 2))

    # No Secret is made; settling still asks to delete one (it does not know), and finds none.
    assert [method for method, _, _ in cluster.secret_calls] == ["JOB", "DELETE"]
    [job] = cluster.created
    [main] = job["spec"]["template"]["spec"]["containers"]
    assert {"name": "ApiToken", "value": SECRET} in main["env"]


def test_a_job_kubernetes_refuses_leaves_no_secret(cluster: FakeKubernetes, runner: EksJobRunner) -> None:
    with pytest.raises(KubernetesApiError):
        runner.launch(_task("busybox:reject"), _ctx(SECRET), RunKey(REQUEST_ID, 3))

    assert [method for method, _, _ in cluster.secret_calls] == ["POST", "DELETE"]  # no Job made
    assert cluster.secrets == {}


def test_the_secret_goes_with_the_job_that_owns_it(cluster: FakeKubernetes, runner: EksJobRunner) -> None:
    name = runner.launch(_task("busybox:slow"), _ctx(SECRET), RunKey(REQUEST_ID, 4))
    assert (NAMESPACE, name) in cluster.secrets

    runner.delete(name)  # as the Job's TTL after finishing, or a cancel, would

    assert cluster.secrets == {}


def test_a_script_holding_a_secret_comes_from_the_secret_and_runs_as_written(tmp_path: Path) -> None:
    # Given a script a template rendered a secret into
    task = _task(script=[f"printf '%s' '{SECRET}' > token.txt", "env > env.txt"], working_dir=str(tmp_path))
    config = EksLaunchConfig(namespace=NAMESPACE, bucket="formica-artifacts")
    ctx = _ctx(SECRET)

    job = job_manifest(task, ctx, RunKey(REQUEST_ID, 5), name="run", config=config)

    # Then the Job runs the fixed runner, the script in FORMICA_SCRIPT from the Secret
    [main] = job["spec"]["template"]["spec"]["containers"]
    assert main["command"] == ["sh", "-c", SECRET_SCRIPT_RUNNER]
    assert {
        "name": "FORMICA_SCRIPT",
        "valueFrom": {"secretKeyRef": {"name": "run", "key": "FORMICA_SCRIPT"}},
    } in main["env"]
    assert SECRET not in json.dumps(job)
    # And run as the kubelet starts it (the Secret's value set verbatim), it does what it says
    secret = job_secret_manifest(task, ctx, RunKey(REQUEST_ID, 5), name="run", config=config)
    assert secret is not None
    environment = {e["name"]: e["value"] for e in main["env"] if "value" in e}
    environment |= _secret_data(secret)
    result = subprocess.run(
        main["command"],
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "token.txt").read_text() == SECRET
    assert "FORMICA_SCRIPT" not in (tmp_path / "env.txt").read_text()


def test_the_container_service_deletes_the_secret_when_the_reconciler_settles_the_run(
    cluster: FakeKubernetes, runner: EksJobRunner
) -> None:
    # Given a launch through the service, whose logs helper gets the secrets' masking script
    reporter = RecordingReporter()
    service = eks_service(runner, reporter)
    service._issuer = GrantIssuer(
        grants=InMemoryGrantRepository(), blobs=InMemoryBlobStore(), api_url="https://api.example"
    )
    run = service.launch(REQUEST_ID, 11, _task(), _ctx(SECRET, timeout=600), "token")
    name = job_name(REQUEST_ID, 11)
    assert run.k8s_job_name == name
    assert set(_secret_data(cluster.secrets[(NAMESPACE, name)])) == {
        "ApiToken",
        "AuthHeader",
        "logs.FORMICA_CAPABILITY",
        "logs.FORMICA_LOG_MASK",
    }

    # When the reconciler finds the Job finished
    for _ in range(5):
        service.reconcile()
        if reporter.reports:
            break

    # Then the run is reported (the container had the value: the reporter masks it before storing)
    # and its Secret is gone
    (_, outcome), *_ = reporter.reports
    assert outcome.exit_code == "0"
    assert f"ApiToken={SECRET}\n" in outcome.log
    assert (NAMESPACE, name) not in cluster.secrets
    assert ("DELETE", name, {}) in cluster.secret_calls


def test_a_cancelled_runs_secret_is_deleted(cluster: FakeKubernetes, runner: EksJobRunner) -> None:
    service = eks_service(runner, RecordingReporter())
    service.launch(REQUEST_ID, 12, _task("busybox:slow"), _ctx(SECRET, timeout=600), "token")

    assert service.cancel_runs(REQUEST_ID) == 1

    assert cluster.secrets == {}
    assert ("DELETE", job_name(REQUEST_ID, 12), {}) in cluster.secret_calls
