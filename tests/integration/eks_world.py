"""The EKS path's test world: a runner talking to the fake Kubernetes API on loopback, and the
container service around it with every AWS client refusing to be used (EKS sends no events; the
reconciler asks the cluster)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from formica.runners.base import TaskOutcome
from formica.runners.eks import (
    AwsCredentials,
    ClusterInfo,
    EksJobRunner,
    EksLaunchConfig,
    EksTokenProvider,
    KubernetesApi,
)
from formica.runtime.containers import ContainerService
from formica.settings import FormicaSettings
from formica.store.blobs import S3BlobStore
from formica.store.container_logs import CloudWatchContainerLogs
from formica.store.container_runs import ContainerRunItem
from formica.store.state_machine import StepFunctionsStateMachine

from tests.fakes.blobs import InMemoryBlobStore
from tests.fakes.container_runs import InMemoryContainerRunRepository
from tests.fakes.grants import InMemoryGrantRepository
from tests.integration.fake_kubernetes import FakeKubernetes

NAMESPACE = "formica"


def eks_token() -> EksTokenProvider:
    return EksTokenProvider("formica-eks", "us-east-1", credentials=lambda: AwsCredentials("AKID", "SECRET"))


def eks_runner(cluster: FakeKubernetes, namespace: str = NAMESPACE) -> EksJobRunner:
    """A runner on the fake cluster, its artifacts in memory, polling every 10 ms."""
    api = KubernetesApi(ClusterInfo(endpoint=cluster.base_url), eks_token())
    config = EksLaunchConfig(namespace=namespace, bucket="formica-artifacts")
    return EksJobRunner(api, config, blobs=InMemoryBlobStore(), poll_seconds=0.01)


class RecordingReporter:
    """The container service's reporter: what it was told, in order."""

    def __init__(self) -> None:
        self.reports: list[tuple[ContainerRunItem, TaskOutcome]] = []

    def __call__(self, run: ContainerRunItem, outcome: TaskOutcome) -> bool:
        self.reports.append((run, outcome))
        return True


class Clock:
    """A clock the test moves by setting ``now``."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 18, 40, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def eks_service(
    runner: EksJobRunner, reporter: RecordingReporter, clock: Clock | None = None
) -> ContainerService:
    """The container service on the EKS path only: ECS, CloudWatch Logs and S3 clients that fail the
    test if used (an artifact listing answers empty)."""
    settings = FormicaSettings(
        table_name="t", bucket_name="formica-artifacts", eks_cluster_name="formica-eks"
    )

    def no_aws() -> Any:
        raise AssertionError("the EKS path must not touch ECS, CloudWatch Logs or S3 here")

    class NoArtifacts:
        def get_paginator(self, name: str) -> Any:
            return type("P", (), {"paginate": staticmethod(lambda **_: [{"Contents": []}])})()

    return ContainerService(
        settings=settings,
        runs=InMemoryContainerRunRepository(),
        state_machine=StepFunctionsStateMachine(None, no_aws),
        reporter=reporter,
        ecs=no_aws,
        eks=lambda: runner,
        logs=CloudWatchContainerLogs(no_aws),
        blobs=S3BlobStore(settings.bucket_name, NoArtifacts()),
        grants=InMemoryGrantRepository(),
        clock=clock or Clock(),
    )
