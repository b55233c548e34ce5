"""The EKS runner against a fake Kubernetes API server on 127.0.0.1 (real HTTP, real Job/Pod shapes):
success, a non-zero exit, deletion on cancel, a pod that never schedules, an image that cannot be
pulled; and the container runtime's EKS path (launch, reconcile, cancel) on the same server."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from formica.jobs.models import ContainerDefinition, TaskDefinition, TaskMethod
from formica.runners.base import TaskContext
from formica.runners.ecs_events import ERR_CONTAINER_START, ERR_TASK_CANCELLED, ERR_TASK_TIMED_OUT, RunKey
from formica.runners.eks import (
    ClusterInfo,
    EksJobRunner,
    KubernetesApi,
    KubernetesApiError,
    job_name,
)

from tests.fakes.blobs import InMemoryBlobStore
from tests.integration.eks_world import NAMESPACE, Clock, RecordingReporter, eks_service
from tests.integration.fake_kubernetes import FakeKubernetes

REQUEST_ID = "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47"


def _task(image: str, **changes: Any) -> TaskDefinition:
    values: dict[str, Any] = {
        "task_type": "kubby",
        "method": TaskMethod.KUBERNETES,
        "container": ContainerDefinition(image=image, cpu_limit="1", memory_limit="2Gi"),
        "script": ["echo hello"],
        "pod_labels": {"foor": "bar"},
    }
    values.update(changes)
    return TaskDefinition.model_validate(values)


def _ctx(timeout: float = 10.0, cancelled: Any = lambda: False) -> TaskContext:
    return TaskContext(
        org="acme",
        request_id=REQUEST_ID,
        job_type="kube-example",
        task_type="kubby",
        attempt=4,
        timeout_seconds=timeout,
        is_cancelled=cancelled,
    )


def test_success(cluster: FakeKubernetes, runner: EksJobRunner) -> None:
    outcome = runner.run(_task("busybox:ok"), _ctx(), RunKey(REQUEST_ID, 4))

    assert (outcome.exit_code, outcome.error_code) == ("0", None)
    name = job_name(REQUEST_ID, 4)
    created = cluster.created[0]
    assert created["metadata"]["name"] == name
    assert created["spec"]["backoffLimit"] == 0
    assert created["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["sh", "-c"]
    assert "hello from" in outcome.log
    blobs = runner.blobs
    assert isinstance(blobs, InMemoryBlobStore)
    assert blobs.get_bytes(f"acme/{REQUEST_ID}/kubby/logs/attempt-4.log").decode() == outcome.log
    assert cluster.deletions == []  # a finished Job is left to ttlSecondsAfterFinished


def test_every_request_carries_an_eks_iam_token(cluster: FakeKubernetes, runner: EksJobRunner) -> None:
    runner.run(_task("busybox:ok"), _ctx(), RunKey(REQUEST_ID, 4))

    assert cluster.auth_headers
    token = cluster.auth_headers[0].removeprefix("Bearer ")
    body = token.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    assert url.startswith("https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity")
    assert "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id" in url
    assert len(set(cluster.auth_headers)) == 1  # the token is reused


def test_non_zero_exit(runner: EksJobRunner) -> None:
    outcome = runner.run(_task("busybox:exit3"), _ctx(), RunKey(REQUEST_ID, 5))
    assert (outcome.exit_code, outcome.error_code) == ("3", None)


def test_cancel_deletes_the_job_in_the_foreground(cluster: FakeKubernetes, runner: EksJobRunner) -> None:
    polls = iter([False, False, True])
    outcome = runner.run(
        _task("busybox:slow"), _ctx(cancelled=lambda: next(polls, True)), RunKey(REQUEST_ID, 6)
    )

    assert outcome.error_code == ERR_TASK_CANCELLED
    assert outcome.exit_code == ""
    assert [(d.name, d.propagation_policy) for d in cluster.deletions] == [
        (job_name(REQUEST_ID, 6), "Foreground")
    ]
    assert cluster.jobs == {}


def test_a_pod_that_never_schedules_times_out_as_a_start_failure(
    cluster: FakeKubernetes, runner: EksJobRunner
) -> None:
    outcome = runner.run(_task("busybox:unschedulable"), _ctx(timeout=0.3), RunKey(REQUEST_ID, 7))

    assert outcome.error_code == ERR_CONTAINER_START
    assert "did not start within 0.3s" in str(outcome.error_message)
    assert "Unschedulable: 0/3 nodes are available" in str(outcome.error_message)
    assert [d.propagation_policy for d in cluster.deletions] == ["Foreground"]


def test_a_running_container_past_its_timeout_is_a_timeout(
    cluster: FakeKubernetes, runner: EksJobRunner
) -> None:
    outcome = runner.run(_task("busybox:slow"), _ctx(timeout=0.3), RunKey(REQUEST_ID, 8))

    assert outcome.error_code == ERR_TASK_TIMED_OUT
    assert len(cluster.deletions) == 1


def test_an_image_that_cannot_be_pulled(cluster: FakeKubernetes, runner: EksJobRunner) -> None:
    outcome = runner.run(_task("nope:pullfail"), _ctx(), RunKey(REQUEST_ID, 9))
    assert outcome.error_code == ERR_CONTAINER_START
    assert "ImagePullBackOff" in str(outcome.error_message)
    # It would never finish on its own: deleted now, not at the deadline.
    assert [(d.name, d.propagation_policy) for d in cluster.deletions] == [
        (job_name(REQUEST_ID, 9), "Foreground")
    ]


def test_a_retried_launch_keeps_the_existing_job(cluster: FakeKubernetes, runner: EksJobRunner) -> None:
    task = _task("busybox:slow")
    first = runner.launch(task, _ctx(), RunKey(REQUEST_ID, 10))
    second = runner.launch(task, _ctx(), RunKey(REQUEST_ID, 10))
    assert first == second
    assert len(cluster.jobs) == 1


def test_without_an_iam_token_the_api_refuses(cluster: FakeKubernetes) -> None:
    api = KubernetesApi(ClusterInfo(endpoint=cluster.base_url), lambda: "not-a-token")
    with pytest.raises(KubernetesApiError) as error:
        api.get_job(NAMESPACE, "x")
    assert error.value.status == 401


# -- the container runtime's EKS path: launch, reconcile (EKS sends no events), cancel --


def test_the_runtime_launches_on_eks_and_the_reconciler_reports(
    cluster: FakeKubernetes, runner: EksJobRunner
) -> None:
    reporter, clock = RecordingReporter(), Clock()
    service = eks_service(runner, reporter, clock)

    run = service.launch(REQUEST_ID, 11, _task("busybox:exit3"), _ctx(timeout=600), "token-eks")

    assert (run.runtime, run.k8s_job_name, run.k8s_namespace) == ("eks", job_name(REQUEST_ID, 11), NAMESPACE)
    for _ in range(5):
        service.reconcile()
        if reporter.reports:
            break
    (reported, outcome), *_ = reporter.reports
    assert (reported.step, reported.task_token) == (11, "token-eks")
    assert (outcome.exit_code, outcome.error_code) == ("3", None)
    assert "hello from" in outcome.log
    stored = service.runs.get(REQUEST_ID, 11)
    assert stored is not None and stored.is_finished
    service.reconcile()
    assert len(reporter.reports) == 1


def test_the_reconciler_gives_up_on_a_pod_that_never_schedules(
    cluster: FakeKubernetes, runner: EksJobRunner
) -> None:
    reporter, clock = RecordingReporter(), Clock()
    service = eks_service(runner, reporter, clock)
    service.launch(REQUEST_ID, 12, _task("busybox:unschedulable"), _ctx(timeout=60), "token")

    service.reconcile()
    assert reporter.reports == []
    clock.now += timedelta(seconds=61)
    report = service.reconcile()

    assert (report.settled, report.stopped) == (1, 1)
    outcome = reporter.reports[0][1]
    assert outcome.error_code == ERR_CONTAINER_START
    assert "Unschedulable" in str(outcome.error_message)
    assert [d.propagation_policy for d in cluster.deletions] == ["Foreground"]


def test_the_runtime_cancels_by_deleting_the_job(cluster: FakeKubernetes, runner: EksJobRunner) -> None:
    reporter, clock = RecordingReporter(), Clock()
    service = eks_service(runner, reporter, clock)
    service.launch(REQUEST_ID, 13, _task("busybox:slow"), _ctx(timeout=600), "token")

    assert service.cancel_runs(REQUEST_ID) == 1

    assert [(d.name, d.propagation_policy) for d in cluster.deletions] == [
        (job_name(REQUEST_ID, 13), "Foreground")
    ]
    assert reporter.reports[0][1].error_code == ERR_TASK_CANCELLED


def test_docker_tasks_still_go_to_ecs_when_eks_is_configured(runner: EksJobRunner) -> None:
    launched: list[str] = []

    class FakeEcs:
        def launch(self, task: TaskDefinition, ctx: TaskContext, key: RunKey, grants: Any = None) -> str:
            launched.append(task.task_type)
            return "arn:aws:ecs:us-east-1:1:task/c/abc"

    service = eks_service(runner, RecordingReporter(), Clock())
    service._ecs_factory = FakeEcs  # type: ignore[assignment]
    run = service.launch(REQUEST_ID, 14, _task("alpine", method=TaskMethod.DOCKER), _ctx(), "t")

    assert run.runtime == "ecs"
    assert launched == ["kubby"]
    assert json.dumps(run.model_dump(mode="json"))  # the stored shape serialises
