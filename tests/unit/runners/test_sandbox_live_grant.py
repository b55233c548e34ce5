"""What the trusted side hands the SHELL sandbox for its live log: the ``live_log`` right on the
attempt's own log prefix and a bounded chunk count, the flush cadence, and the secrets to mask,
only when the walk streams the attempt's log."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from formica.jobs.models import ArtifactsDefinition, TaskDefinition
from formica.runners.base import TaskContext
from formica.runtime.attempts import sandbox_live_chunks, sandbox_request
from formica.runtime.walker import AttemptScope
from formica.store.grants import GrantRight
from formica.store.logs import instance_live_prefix, live_prefix
from formica.store.schema import artifact_key

from tests.fakes.grants import InMemoryGrantRepository

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _scope(grants: InMemoryGrantRepository, instance: int | None = None) -> AttemptScope:
    runtime = SimpleNamespace(
        grants=grants, settings=SimpleNamespace(api_url="https://api.example/"), now=lambda: NOW
    )
    request = SimpleNamespace(execution_name="r-1-1")
    return cast(AttemptScope, SimpleNamespace(runtime=runtime, request=request, step=9, instance=instance))


def _ctx(**changes: Any) -> TaskContext:
    values: dict[str, Any] = {
        "org": "acme",
        "request_id": "r-1",
        "job_type": "j",
        "task_type": "build",
        "attempt": 9,
        "task_attempt": 3,
        "timeout_seconds": 60,
        "params": {"TOKEN": "s3cr3t-value"},
        "secrets": ("s3cr3t-value",),
        "log_flush_seconds": 3.0,
    }
    values.update(changes)
    return TaskContext(**values)


TASK = TaskDefinition.model_validate({"task_type": "build", "method": "SHELL", "script": ["echo hi"]})


def test_a_streamed_attempt_gets_the_live_log_right_on_its_own_log() -> None:
    grants = InMemoryGrantRepository()

    request = sandbox_request(TASK, _ctx(live_log=lambda data: None), _scope(grants))

    [scope] = grants.scopes.values()
    assert GrantRight.LIVE_LOG in scope.rights
    assert scope.live_prefix == live_prefix("acme", "r-1", "build", 3)  # the task's attempt, not the step
    assert scope.live_chunks == 60 // 3 + 2
    assert request.live_log and request.secrets == ["s3cr3t-value"]
    assert request.context.log_flush_seconds == 3.0


def test_a_fan_out_instance_gets_the_live_log_right_on_its_own_instances_log_with_the_same_bounds() -> None:
    grants = InMemoryGrantRepository()

    sandbox_request(TASK, _ctx(live_log=lambda data: None), _scope(grants, instance=4))

    [scope] = grants.scopes.values()
    assert scope.live_prefix == instance_live_prefix("acme", "r-1", "build", 9, 4)
    assert scope.live_chunks == 60 // 3 + 2  # as many as a single attempt of the same timeout


def test_a_fan_out_instance_uploads_only_under_its_own_instance_directory() -> None:
    grants = InMemoryGrantRepository()
    task = TASK.model_copy(update={"artifacts": ArtifactsDefinition(paths=["out.txt"])})

    request = sandbox_request(task, _ctx(artifact_dir="instance-4/"), _scope(grants, instance=4))

    [scope] = grants.scopes.values()
    assert scope.upload_prefix == artifact_key("acme", "r-1", "build", "instance-4/")
    assert request.context.artifact_dir == "instance-4/"


def test_an_attempt_not_streamed_gets_no_live_right_and_no_secrets_list() -> None:
    grants = InMemoryGrantRepository()

    request = sandbox_request(TASK, _ctx(), _scope(grants))

    [scope] = grants.scopes.values()
    assert GrantRight.LIVE_LOG not in scope.rights and scope.live_prefix is None
    assert not request.live_log and request.secrets == []


def test_the_chunk_count_is_bounded_by_a_lambdas_run_and_a_second_per_flush() -> None:
    assert sandbox_live_chunks(_ctx(timeout_seconds=10_000, log_flush_seconds=3.0)) == 900 // 3 + 2
    assert sandbox_live_chunks(_ctx(timeout_seconds=10_000, log_flush_seconds=0.01)) == 900 + 2
