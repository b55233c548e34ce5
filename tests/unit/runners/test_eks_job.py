"""The Kubernetes Job the EKS runner creates, and how it reads a Job and its Pod back (pure)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from formica.jobs.models import ArtifactsDefinition, ContainerDefinition, TaskDefinition, TaskMethod
from formica.runners.container_grants import ContainerGrants, HelperGrant
from formica.runners.container_script import DEPENDENCIES_PROGRAM, UPLOAD_PROGRAM
from formica.runners.ecs_events import ERR_CONTAINER_START, ERR_TASK_TIMED_OUT, RunKey
from formica.runners.eks import (
    EksLaunchConfig,
    EksRunnerError,
    job_manifest,
    job_name,
    job_secret_manifest,
    job_status,
    label_value,
    memory_quantity,
    tolerations_of,
)

from tests.event_samples import eks_object
from tests.unit.runners.conftest import make_context

REQUEST_ID = "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47"
CONFIG = EksLaunchConfig(namespace="formica", bucket="formica-artifacts")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _task(**changes: Any) -> TaskDefinition:
    values: dict[str, Any] = {
        "task_type": "kubby",
        "method": TaskMethod.KUBERNETES,
        "container": ContainerDefinition(
            image="ubuntu:16.04", cpu_limit="1", cpu_request="500m", memory_limit="2Gi", memory_request="500m"
        ),
        "script": ["echo hello world", "ls -l"],
        "environment": {"STAGE": "test"},
        "pod_labels": {"foor": "bar"},
        "pod_annotations": {"example.com/owner": "team-a"},
        "node_selector": {"kubernetes.io/arch": "amd64"},
        "tolerations": {"dedicated": "builds", "spot": None},
        "service_account": "formica-runner",
        "timeout": "10m",
    }
    values.update(changes)
    return TaskDefinition.model_validate(values)


GRANTS = ContainerGrants(
    dependencies=HelperGrant(
        endpoint="https://api.example/prod/api/grants",
        capability="fgc_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        env_file_key="d.env",
    ),
    artifacts=HelperGrant(
        endpoint="https://api.example/prod/api/grants",
        capability="fgc_ccccccccccccccccccccccccccccccccccccccccccc",
        env_file_key="a.env",
    ),
    expires_at=datetime(2026, 11, 28, 19, 0, tzinfo=UTC),
)


def _manifest(
    task: TaskDefinition, timeout: float = 600.0, grants: ContainerGrants | None = None
) -> dict[str, Any]:
    ctx = make_context(org="acme", request_id=REQUEST_ID, task_type=task.task_type, timeout_seconds=timeout)
    return job_manifest(
        task, ctx, RunKey(REQUEST_ID, 12), name=job_name(REQUEST_ID, 12), config=CONFIG, grants=grants
    )


def test_job_manifest() -> None:
    manifest = _manifest(_task())
    spec = manifest["spec"]
    pod = spec["template"]["spec"]
    main = pod["containers"][0]

    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    assert manifest["metadata"]["name"] == f"formica-{REQUEST_ID}-12"
    assert manifest["metadata"]["namespace"] == "formica"
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "formica-runner"
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "builds", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists"},
    ]
    labels = spec["template"]["metadata"]["labels"]
    assert labels["foor"] == "bar"
    assert labels["formica.io/run"] == manifest["metadata"]["name"]
    assert labels["app.kubernetes.io/managed-by"] == "formica"
    assert spec["template"]["metadata"]["annotations"] == {"example.com/owner": "team-a"}
    assert main["name"] == "main"
    assert main["image"] == "ubuntu:16.04"
    assert main["command"][:2] == ["sh", "-c"]
    assert "echo hello world" in main["command"][2]
    assert main["workingDir"] == "/workspace"
    assert main["resources"] == {
        "requests": {"cpu": "500m", "memory": "500M"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    env = {item["name"]: item["value"] for item in main["env"]}
    assert env["STAGE"] == "test"
    assert env["FORMICA_RUN_KEY"] == f"{REQUEST_ID}/12"
    assert pod["volumes"] == [{"name": "workspace", "emptyDir": {}}]
    assert "initContainers" not in pod
    assert len(pod["containers"]) == 1


def test_the_script_is_the_shell_runners(tmp_path: Path) -> None:
    task = _task(script=["env X=1", "echo $X > x.txt", "exit 7"], working_dir=str(tmp_path))
    command = _manifest(task)["spec"]["template"]["spec"]["containers"][0]["command"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 7
    assert (tmp_path / "x.txt").read_text() == "1\n"


def test_dependencies_and_artifacts_get_helper_containers() -> None:
    task = _task(dependencies=["build"], artifacts=ArtifactsDefinition(paths=["out/*.txt"], when="always"))
    pod = _manifest(task, grants=GRANTS)["spec"]["template"]["spec"]

    init = pod["initContainers"][0]
    assert init["name"] == "dependencies"
    assert init["command"] == ["sh", "-c", DEPENDENCIES_PROGRAM, "formica-dependencies"]
    assert init["workingDir"] == "/workspace"
    name = job_name(REQUEST_ID, 12)
    assert init["env"] == [
        {"name": "FORMICA_GRANTS_URL", "value": "https://api.example/prod/api/grants"},
        {
            "name": "FORMICA_CAPABILITY",
            "valueFrom": {"secretKeyRef": {"name": name, "key": "dependencies.FORMICA_CAPABILITY"}},
        },
    ]
    uploader = pod["containers"][1]
    assert uploader["name"] == "artifacts"
    # The program is fixed text; when, the prefix and the patterns are its arguments.
    assert uploader["command"] == [
        "sh",
        "-c",
        UPLOAD_PROGRAM,
        "formica-artifacts",
        "always",
        f"acme/{REQUEST_ID}/kubby/artifacts/",
        "out/*.txt",
    ]
    assert uploader["env"] == [
        {"name": "FORMICA_GRANTS_URL", "value": "https://api.example/prod/api/grants"},
        {"name": "FORMICA_WAIT_FOR_MAIN", "value": "1"},  # no container ordering in a pod
        {
            "name": "FORMICA_CAPABILITY",
            "valueFrom": {"secretKeyRef": {"name": name, "key": "artifacts.FORMICA_CAPABILITY"}},
        },
    ]
    for container in [init, *pod["containers"]]:
        assert {"name": "workspace", "mountPath": "/workspace"} in container["volumeMounts"]


def test_the_helpers_capabilities_are_in_the_runs_secret_not_in_the_job() -> None:
    task = _task(dependencies=["build"], artifacts=ArtifactsDefinition(paths=["out/*.txt"]))
    ctx = make_context(org="acme", request_id=REQUEST_ID, task_type=task.task_type, timeout_seconds=60)
    key, name = RunKey(REQUEST_ID, 12), job_name(REQUEST_ID, 12)

    job = job_manifest(task, ctx, key, name=name, config=CONFIG, grants=GRANTS)
    secret = job_secret_manifest(task, ctx, key, name=name, config=CONFIG, grants=GRANTS)

    assert "fgc_" not in json.dumps(job)
    assert secret is not None
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "dependencies.FORMICA_CAPABILITY": GRANTS.dependencies.capability,  # type: ignore[union-attr]
        "artifacts.FORMICA_CAPABILITY": GRANTS.artifacts.capability,  # type: ignore[union-attr]
    }
    # Every key a Secret may hold: unique by construction, of [-._a-zA-Z0-9]
    assert all(re.fullmatch(r"[-._a-zA-Z0-9]+", k) for k in secret["data"])


def test_an_uploader_told_never_to_upload_has_no_grant_and_no_secret() -> None:
    task = _task(artifacts=ArtifactsDefinition(paths=["out/*.txt"], when="never"))
    ctx = make_context(org="acme", request_id=REQUEST_ID, task_type=task.task_type, timeout_seconds=60)
    key, name = RunKey(REQUEST_ID, 12), job_name(REQUEST_ID, 12)
    no_uploads = ContainerGrants(dependencies=None, artifacts=None, expires_at=GRANTS.expires_at)

    job = job_manifest(task, ctx, key, name=name, config=CONFIG, grants=no_uploads)

    [_, uploader] = job["spec"]["template"]["spec"]["containers"]
    assert uploader["env"] == [{"name": "FORMICA_WAIT_FOR_MAIN", "value": "1"}]
    assert job_secret_manifest(task, ctx, key, name=name, config=CONFIG, grants=no_uploads) is None


def test_the_main_container_is_given_no_grant() -> None:
    task = _task(dependencies=["build"], artifacts=ArtifactsDefinition(paths=["out/*.txt"]))
    manifest = _manifest(task, grants=GRANTS)
    main = manifest["spec"]["template"]["spec"]["containers"][0]
    assert main["name"] == "main"
    assert {"FORMICA_GRANTS_URL", "FORMICA_CAPABILITY"}.isdisjoint(item["name"] for item in main["env"])
    assert "fgc_" not in json.dumps(main)
    # The helpers need no AWS identity: the pod's service account is only the task's own choice.
    assert manifest["spec"]["template"]["spec"]["serviceAccountName"] == "formica-runner"
    assert (
        "serviceAccountName"
        not in _manifest(_task(service_account=None), grants=GRANTS)["spec"]["template"]["spec"]
    )


def test_no_dependency_files_no_init_container() -> None:
    task = _task(dependencies=["build"], artifacts=ArtifactsDefinition(paths=["out/*.txt"]))
    only_uploads = ContainerGrants(
        dependencies=None, artifacts=GRANTS.artifacts, expires_at=GRANTS.expires_at
    )
    pod = _manifest(task, grants=only_uploads)["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["main", "artifacts"]


def test_no_timeout_no_deadline() -> None:
    assert "activeDeadlineSeconds" not in _manifest(_task(), timeout=0)["spec"]


def test_a_task_without_image_is_refused() -> None:
    with pytest.raises(EksRunnerError):
        _manifest(_task(container=None))


@pytest.mark.parametrize(
    ("request_id", "step"),
    [(REQUEST_ID, 0), (REQUEST_ID, 99_999_999), ("Req_With.Odd/Chars", 3), ("x" * 200, 5), ("---", 1)],
)
def test_job_names_are_dns_labels(request_id: str, step: int) -> None:
    name = job_name(request_id, step)
    assert DNS_LABEL.match(name), name
    assert len(name) <= 63
    assert name.endswith(f"-{step}")


def test_long_request_ids_stay_distinct() -> None:
    assert job_name("a" * 100 + "1", 1) != job_name("a" * 100 + "2", 1)


def test_label_values() -> None:
    assert label_value(REQUEST_ID) == REQUEST_ID
    assert label_value("a/b c") == "a_b_c"
    assert len(label_value("x" * 100)) == 63


@pytest.mark.parametrize(
    ("text", "expected"), [("500m", "500M"), ("2Gi", "2Gi"), (" 1.5m ", "1.5M"), ("1G", "1G")]
)
def test_memory_quantity(text: str, expected: str) -> None:
    assert memory_quantity(text) == expected


def test_toleration_maps() -> None:
    task = _task(tolerations={"gpu": {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}})
    assert tolerations_of(task) == [
        {"key": "gpu", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    ]


# -- reading a Job and its Pod back --


def test_a_complete_job_reports_the_main_exit_code() -> None:
    state = job_status(eks_object("job-complete"), [eks_object("pod-succeeded")])
    assert state.finished
    assert state.started
    assert (state.exit_code, state.error_code) == ("0", None)
    assert state.pod_name == f"formica-{REQUEST_ID}-12-x7k2p"


def test_a_failed_pod_reports_the_main_exit_code() -> None:
    pod = eks_object("pod-succeeded")
    pod["status"]["phase"] = "Failed"
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = 3
    job = eks_object("job-active")
    assert job_status(job, [pod]).exit_code == "3"


def test_a_sidecar_still_running_means_not_finished() -> None:
    pod = eks_object("pod-succeeded")
    pod["status"]["phase"] = "Running"
    state = job_status(eks_object("job-active"), [pod])
    assert not state.finished
    assert state.started


def test_an_unschedulable_pod_is_pending_with_the_scheduler_reason() -> None:
    state = job_status(eks_object("job-active"), [eks_object("pod-unschedulable")])
    assert not state.finished
    assert not state.started
    assert state.pending_reason is not None
    assert state.pending_reason.startswith("Unschedulable: 0/3 nodes are available")


def test_an_image_that_cannot_be_pulled_fails_to_start() -> None:
    state = job_status(eks_object("job-active"), [eks_object("pod-image-pull-backoff")])
    assert state.finished
    assert state.error_code == ERR_CONTAINER_START
    assert "ImagePullBackOff" in str(state.error_message)


def test_a_deadline_kill_after_start_is_a_timeout() -> None:
    pod = eks_object("pod-succeeded")
    pod["status"]["phase"] = "Running"
    pod["status"]["containerStatuses"][0]["state"] = {"running": {"startedAt": "2026-11-28T18:40:04Z"}}
    state = job_status(eks_object("job-failed-deadline"), [pod])
    assert (state.finished, state.error_code) == (True, ERR_TASK_TIMED_OUT)


def test_a_deadline_kill_before_start_is_a_start_failure() -> None:
    state = job_status(eks_object("job-failed-deadline"), [eks_object("pod-unschedulable")])
    assert (state.finished, state.started, state.error_code) == (True, False, ERR_CONTAINER_START)
    assert "DeadlineExceeded" in str(state.error_message)


def test_a_vanished_job_is_finished_without_a_code() -> None:
    state = job_status(None, [])
    assert state.finished
    assert state.error_code == ERR_CONTAINER_START


def test_no_pod_yet() -> None:
    state = job_status(eks_object("job-active"), [])
    assert not state.finished
    assert state.pending_reason == "no pod created yet"
