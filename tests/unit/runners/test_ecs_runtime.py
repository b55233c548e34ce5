"""The container runtime's ECS paths with in-memory fakes (no AWS): launch bookkeeping, replays,
launch failures, the reconciler (lost events, ECS forgetting tasks, deadlines) and cancellation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from formica.jobs.models import ContainerDefinition, TaskDefinition, TaskMethod
from formica.runners.base import TaskContext, TaskOutcome
from formica.runners.container_grants import GRANT_MARGIN_SECONDS, ContainerGrants
from formica.runners.ecs import ContainerSizeError, EcsLaunchError
from formica.runners.ecs_events import (
    ERR_CONTAINER_START,
    ERR_TASK_CANCELLED,
    ERR_TASK_TIMED_OUT,
    STOP_REASON_TIMED_OUT,
    RunKey,
)
from formica.runtime.containers import ERR_CONTAINER_LOST, ContainerService, runtime_for
from formica.settings import FormicaSettings
from formica.store.blobs import BlobStoreError, S3BlobStore
from formica.store.container_logs import CloudWatchContainerLogs
from formica.store.container_runs import ContainerRunItem
from formica.store.grants import GrantRight
from formica.store.state_machine import StepFunctionsStateMachine

from tests.event_samples import ecs_event, with_run
from tests.fakes.blobs import InMemoryBlobStore
from tests.fakes.container_runs import InMemoryContainerRunRepository
from tests.fakes.grants import InMemoryGrantRepository

REQUEST_ID = "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47"
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
SETTINGS = FormicaSettings(table_name="t", bucket_name="b", container_log_group="/logs", api_url=API_URL)


class FakeEcs:
    """Starts nothing; hands out task ARNs and answers DescribeTasks from what the test put in."""

    def __init__(self) -> None:
        self.launched: list[RunKey] = []
        self.grants: list[ContainerGrants | None] = []
        self.stopped: list[tuple[str, str]] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.fail_with: Exception | None = None

    def launch(
        self, task: TaskDefinition, ctx: TaskContext, key: RunKey, grants: ContainerGrants | None = None
    ) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.launched.append(key)
        self.grants.append(grants)
        return f"arn:aws:ecs:us-east-1:1:task/formica/{key.step:032x}"

    def stop(self, task_arn: str, reason: str) -> None:
        self.stopped.append((task_arn, reason))

    def describe(self, task_arns: list[str]) -> list[dict[str, Any]]:
        return [self.tasks[arn] for arn in task_arns if arn in self.tasks]


class FakeLogs:
    """GetLogEvents as CloudWatch Logs pages: at the end, no events and the same token again."""

    def get_log_events(self, **arguments: Any) -> dict[str, Any]:
        if arguments.get("nextToken") == "f/2":
            return {"events": [], "nextForwardToken": "f/2"}
        if arguments.get("nextToken") == "f/1":
            return {"events": [{"message": "line two"}], "nextForwardToken": "f/2"}
        return {"events": [{"message": "line one"}], "nextForwardToken": "f/1"}


class FakeS3:
    def __init__(self) -> None:
        self.puts: list[str] = []

    def get_paginator(self, _: str) -> Any:
        return type("Paginator", (), {"paginate": staticmethod(lambda **__: [{"Contents": []}])})()

    def put_object(self, **kwargs: Any) -> None:
        self.puts.append(str(kwargs["Key"]))


class FakeSfn:
    def __init__(self) -> None:
        self.successes: list[tuple[str, str]] = []

    def send_task_success(self, taskToken: str, output: str) -> None:
        self.successes.append((taskToken, output))


class Reporter:
    def __init__(self) -> None:
        self.reports: list[tuple[ContainerRunItem, TaskOutcome]] = []

    def __call__(self, run: ContainerRunItem, outcome: TaskOutcome) -> bool:
        self.reports.append((run, outcome))
        return True


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 18, 40, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def parts() -> dict[str, Any]:
    return {"ecs": FakeEcs(), "reporter": Reporter(), "clock": Clock(), "sfn": FakeSfn()}


@pytest.fixture
def service(parts: dict[str, Any]) -> ContainerService:
    def no_eks() -> Any:
        raise AssertionError("no EKS here")

    return ContainerService(
        settings=SETTINGS,
        runs=InMemoryContainerRunRepository(),
        state_machine=StepFunctionsStateMachine(None, parts["sfn"]),
        reporter=parts["reporter"],
        ecs=lambda: parts["ecs"],
        eks=no_eks,
        logs=CloudWatchContainerLogs(FakeLogs()),
        blobs=S3BlobStore("b", FakeS3()),
        grants=InMemoryGrantRepository(),
        clock=parts["clock"],
    )


def _task(**changes: Any) -> TaskDefinition:
    values: dict[str, Any] = {
        "task_type": "build",
        "method": TaskMethod.DOCKER,
        "container": ContainerDefinition(image="alpine"),
        "script": ["true"],
    }
    values.update(changes)
    return TaskDefinition.model_validate(values)


def _ctx(timeout: float = 600) -> TaskContext:
    return TaskContext(
        org="acme", request_id=REQUEST_ID, job_type="j", task_type="build", attempt=7, timeout_seconds=timeout
    )


def test_launch_records_the_run(service: ContainerService, parts: dict[str, Any]) -> None:
    run = service.launch(REQUEST_ID, 7, _task(), _ctx(timeout=90), "token-1")

    stored = service.runs.get(REQUEST_ID, 7)
    assert stored == run
    assert (run.runtime, run.task_token, run.attempt) == ("ecs", "token-1", 7)
    assert run.ecs_task_arn == f"arn:aws:ecs:us-east-1:1:task/formica/{7:032x}"
    assert run.deadline_at == (parts["clock"].now + timedelta(seconds=90)).isoformat(timespec="microseconds")
    assert parts["ecs"].launched == [RunKey(REQUEST_ID, 7)]


def test_a_replayed_launch_only_takes_the_new_token(service: ContainerService, parts: dict[str, Any]) -> None:
    service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")
    again = service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-2")

    assert len(parts["ecs"].launched) == 1
    assert again.task_token == "token-2"
    stored = service.runs.get(REQUEST_ID, 7)
    assert stored is not None and stored.task_token == "token-2"


def test_a_replayed_launch_after_the_end_answers_with_the_stored_result(
    service: ContainerService, parts: dict[str, Any]
) -> None:
    run = service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")
    service.complete(
        with_run(
            ecs_event("task-stopped-exit-3"), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=7
        )
    )

    service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-2")

    assert parts["sfn"].successes == [
        ("token-2", '{"exit_code": "3", "error_code": null, "error_message": null}')
    ]
    assert len(parts["ecs"].launched) == 1


@pytest.mark.parametrize(
    "error",
    [EcsLaunchError("ECS did not start 'build': RESOURCE:MEMORY"), ContainerSizeError("no Fargate size")],
)
def test_a_failed_launch_settles_as_a_start_failure(
    service: ContainerService, parts: dict[str, Any], error: Exception
) -> None:
    parts["ecs"].fail_with = error

    run = service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")

    assert run.is_finished
    (_, outcome), *_ = parts["reporter"].reports
    assert (outcome.exit_code, outcome.error_code, outcome.error_message) == (
        "",
        ERR_CONTAINER_START,
        str(error),
    )


def test_completion_reports_exit_code_log_and_the_finished_run(
    service: ContainerService, parts: dict[str, Any]
) -> None:
    run = service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")
    event = with_run(
        ecs_event("task-stopped-sidecar-137"), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=7
    )

    assert service.complete(event) is True
    assert service.complete(event) is False

    (reported, outcome), *_ = parts["reporter"].reports
    assert reported.is_finished and reported.ecs_task_arn == run.ecs_task_arn
    assert (outcome.exit_code, outcome.error_code) == ("0", None)
    assert outcome.log == "line one\nline two\n"


def test_reconcile_leaves_young_runs_to_their_events(
    service: ContainerService, parts: dict[str, Any]
) -> None:
    run = service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")
    parts["ecs"].tasks[str(run.ecs_task_arn)] = with_run(
        ecs_event("task-stopped-exit-3"), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=7
    )["detail"]
    parts["clock"].now += timedelta(minutes=2)

    assert service.reconcile().checked == 0
    assert parts["reporter"].reports == []


def test_reconcile_settles_a_stopped_task_whose_event_was_lost(
    service: ContainerService, parts: dict[str, Any]
) -> None:
    run = service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")
    parts["ecs"].tasks[str(run.ecs_task_arn)] = with_run(
        ecs_event("task-stopped-exit-3"), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=7
    )["detail"]
    parts["clock"].now += timedelta(minutes=6)

    report = service.reconcile()

    assert (report.checked, report.settled, report.stopped) == (1, 1, 0)
    assert parts["reporter"].reports[0][1].exit_code == "3"
    assert service.reconcile().checked == 0


def test_reconcile_stops_an_overdue_task(service: ContainerService, parts: dict[str, Any]) -> None:
    run = service.launch(REQUEST_ID, 7, _task(), _ctx(timeout=60), "token-1")
    running = with_run(
        ecs_event("task-running"), task_arn=str(run.ecs_task_arn), request_id=REQUEST_ID, step=7
    )
    parts["ecs"].tasks[str(run.ecs_task_arn)] = running["detail"]
    parts["clock"].now += timedelta(seconds=61)

    report = service.reconcile()

    assert (report.settled, report.stopped) == (1, 1)
    assert parts["ecs"].stopped == [(run.ecs_task_arn, STOP_REASON_TIMED_OUT)]
    assert parts["reporter"].reports[0][1].error_code == ERR_TASK_TIMED_OUT


def test_reconcile_when_ecs_forgot_the_task(service: ContainerService, parts: dict[str, Any]) -> None:
    service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")
    parts["clock"].now += timedelta(hours=2)

    service.reconcile()

    assert parts["reporter"].reports[0][1].error_code == ERR_CONTAINER_LOST


def test_reconcile_when_the_launch_never_recorded_a_task(
    service: ContainerService, parts: dict[str, Any]
) -> None:
    # A Launch that died between recording the run and RunTask.
    service.runs.create(
        ContainerRunItem(
            request_id=REQUEST_ID,
            step=3,
            runtime="ecs",
            task_token="t",
            org="acme",
            task_type="build",
            created_at=parts["clock"].now.isoformat(),
        )
    )
    parts["clock"].now += timedelta(minutes=6)

    service.reconcile()

    assert parts["reporter"].reports[0][1].error_code == ERR_CONTAINER_START


def test_cancel_without_answer_only_stops(service: ContainerService, parts: dict[str, Any]) -> None:
    run = service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")

    assert service.cancel_runs(REQUEST_ID, answer=False) == 1

    assert parts["ecs"].stopped == [(run.ecs_task_arn, "formica: job cancelled")]
    assert parts["reporter"].reports == []
    stored = service.runs.get(REQUEST_ID, 7)
    assert stored is not None and stored.error_code == ERR_TASK_CANCELLED
    assert service.cancel_runs(REQUEST_ID) == 0


def test_runtime_choice() -> None:
    with_eks = FormicaSettings(table_name="t", bucket_name="b", eks_cluster_name="c")
    kube = _task(method=TaskMethod.KUBERNETES)
    assert runtime_for(kube, with_eks) == "eks"
    assert runtime_for(kube, SETTINGS) == "ecs"  # formicary's KUBERNETES tasks still run without EKS
    assert runtime_for(_task(), with_eks) == "ecs"
    assert runtime_for(_task(method=None), with_eks) == "ecs"


def test_a_failed_stop_still_answers_and_is_reported(
    service: ContainerService, parts: dict[str, Any]
) -> None:
    from formica.runners.ecs import EcsRunnerError
    from formica.runtime.containers import ContainerRuntimeError

    service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")

    def refuse(task_arn: str, reason: str) -> None:
        raise EcsRunnerError("AccessDeniedException")

    parts["ecs"].stop = refuse
    with pytest.raises(ContainerRuntimeError, match="AccessDeniedException"):
        service.cancel_runs(REQUEST_ID)
    assert parts["reporter"].reports[0][1].error_code == ERR_TASK_CANCELLED


# -- the helpers' grants --


def _service_with(
    parts: dict[str, Any],
    blobs: Any,
    grants: InMemoryGrantRepository | None = None,
    settings: FormicaSettings = SETTINGS,
) -> ContainerService:
    return ContainerService(
        settings=settings,
        runs=InMemoryContainerRunRepository(),
        state_machine=StepFunctionsStateMachine(None, parts["sfn"]),
        reporter=parts["reporter"],
        ecs=lambda: parts["ecs"],
        eks=lambda: None,
        logs=CloudWatchContainerLogs(FakeLogs()),
        blobs=blobs,
        grants=grants or InMemoryGrantRepository(),
        clock=parts["clock"],
    )


def test_the_launch_mints_one_capability_per_helper_until_the_deadline(parts: dict[str, Any]) -> None:
    blobs, grants_store = InMemoryBlobStore(), InMemoryGrantRepository()
    service = _service_with(parts, blobs, grants_store)
    task = _task(dependencies=["init"], artifacts={"paths": ["out.txt"]})

    service.launch(REQUEST_ID, 7, task, _ctx(timeout=600), "token-1")

    (grants,) = parts["ecs"].grants
    assert grants is not None and grants.dependencies is not None and grants.artifacts is not None
    deadline = parts["clock"].now + timedelta(seconds=600 + GRANT_MARGIN_SECONDS)
    assert grants.expires_at == deadline
    at = f"acme/{REQUEST_ID}/build/grants/attempt-7/"
    assert grants.dependencies.env_file_key == at + "dependencies.env"
    assert blobs.get_bytes(at + "dependencies.env").decode() == (
        f"FORMICA_GRANTS_URL={API_URL}/api/grants\nFORMICA_CAPABILITY={grants.dependencies.capability}\n"
    )
    # Each helper's capability holds its own right only, for this attempt, until the deadline.
    download = grants_store.find_active(grants.dependencies.capability, now=parts["clock"].now)
    upload = grants_store.find_active(grants.artifacts.capability, now=parts["clock"].now)
    assert download is not None and upload is not None
    assert (download.rights, download.dependencies, download.upload_prefix) == (
        (GrantRight.DOWNLOAD,),
        ("init",),
        None,
    )
    assert (upload.rights, upload.upload_prefix, upload.metadata) == (
        (GrantRight.UPLOAD,),
        f"acme/{REQUEST_ID}/build/artifacts/",
        ("sha256",),
    )
    assert {download.expires_at, upload.expires_at} == {deadline}
    assert (upload.org, upload.request_id, upload.task_type, upload.step) == ("acme", REQUEST_ID, "build", 7)
    # Only hashes are stored.
    assert grants.artifacts.capability not in repr(grants_store.scopes)


def test_a_task_with_nothing_to_move_gets_only_its_live_log_grant(parts: dict[str, Any]) -> None:
    blobs, grants_store = InMemoryBlobStore(), InMemoryGrantRepository()
    service = _service_with(parts, blobs, grants_store)
    service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")
    (grants,) = parts["ecs"].grants
    assert grants is not None and (grants.dependencies, grants.artifacts) == (None, None)
    assert grants.logs is not None
    assert list(blobs.blobs) == [grants.logs.env_file_key]
    [scope] = grants_store.scopes.values()
    assert scope.rights == (GrantRight.LIVE_LOG,) and scope.live_prefix is not None


def test_without_an_api_url_a_task_with_nothing_to_move_still_starts(parts: dict[str, Any]) -> None:
    service = _service_with(
        parts, InMemoryBlobStore(), settings=SETTINGS.model_copy(update={"api_url": None})
    )
    run = service.launch(REQUEST_ID, 7, _task(), _ctx(), "token-1")
    assert not run.is_finished and len(parts["ecs"].launched) == 1
    (grants,) = parts["ecs"].grants
    assert grants is not None and grants.logs is None


def test_without_an_api_url_the_helpers_cannot_be_granted_and_the_start_fails(parts: dict[str, Any]) -> None:
    service = _service_with(
        parts, InMemoryBlobStore(), settings=SETTINGS.model_copy(update={"api_url": None})
    )
    run = service.launch(REQUEST_ID, 7, _task(artifacts={"paths": ["x"]}), _ctx(), "token-1")
    assert run.is_finished and parts["ecs"].launched == []
    (_, outcome), *_ = parts["reporter"].reports
    assert outcome.error_code == ERR_CONTAINER_START
    assert "FORMICA_API_URL" in str(outcome.error_message)


def test_grants_that_cannot_be_issued_fail_the_start(parts: dict[str, Any]) -> None:
    class Refusing(InMemoryBlobStore):
        def put_bytes(self, key: str, data: bytes, content_type: str = "") -> None:
            raise BlobStoreError("AccessDenied")

    service = _service_with(parts, Refusing())
    run = service.launch(REQUEST_ID, 7, _task(artifacts={"paths": ["x"]}), _ctx(), "token-1")

    assert run.is_finished and parts["ecs"].launched == []
    (_, outcome), *_ = parts["reporter"].reports
    assert outcome.error_code == ERR_CONTAINER_START
    assert "AccessDenied" in str(outcome.error_message)
