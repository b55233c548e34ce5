"""Real-shaped "ECS Task State Change" events -> the attempt's result (pure)."""

from __future__ import annotations

import uuid

import pytest
from formica.runners.ecs_events import (
    ERR_CONTAINER_START,
    ERR_CONTAINER_STOPPED,
    ERR_TASK_CANCELLED,
    ERR_TASK_TIMED_OUT,
    STOP_REASON_TIMED_OUT,
    EcsEventError,
    RunKey,
    completion_from_task,
    parse_task_state_change,
    run_key_of,
)

from tests.event_samples import ecs_event

REQUEST_ID = "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47"
TASK_ARN = "arn:aws:ecs:us-east-1:111122223333:task/formica-containers/c13b4cb40f1f4fe4a2971f76ae5a47ad"


@pytest.mark.parametrize(
    ("sample", "exit_code", "error_code"),
    [
        ("task-stopped-exit-0", "0", None),
        ("task-stopped-exit-3", "3", None),
        ("task-stopped-sidecar-137", "0", None),
        ("task-stopped-image-pull-failure", "", ERR_CONTAINER_START),
        ("task-stopped-essential-container-exited", "", ERR_CONTAINER_START),
        ("task-stopped-user-initiated", "137", ERR_TASK_CANCELLED),
    ],
)
def test_samples(sample: str, exit_code: str, error_code: str | None) -> None:
    completion = parse_task_state_change(ecs_event(sample))

    assert completion is not None
    assert completion.task_arn == TASK_ARN
    assert completion.run_key == RunKey(REQUEST_ID, 12)
    assert completion.exit_code == exit_code
    assert completion.error_code == error_code
    assert completion.output() == {
        "exit_code": exit_code,
        "error_code": error_code,
        "error_message": completion.error_message,
    }


def test_image_pull_failure_carries_ecs_stopped_reason() -> None:
    completion = parse_task_state_change(ecs_event("task-stopped-image-pull-failure"))
    assert completion is not None
    assert completion.error_message is not None
    assert completion.error_message.startswith("CannotPullContainerError: pull image manifest")
    assert completion.stop_code == "TaskFailedToStart"


def test_essential_container_exited_says_why_main_never_ran() -> None:
    completion = parse_task_state_change(ecs_event("task-stopped-essential-container-exited"))
    assert completion is not None
    assert completion.error_message is not None
    assert "Essential container in task exited" in completion.error_message
    assert "DependencyConditionNotMet" in completion.error_message
    assert "downloading dependencies failed (exit 1)" in completion.error_message


def test_only_the_main_container_decides() -> None:
    event = ecs_event("task-stopped-exit-0")
    for container in event["detail"]["containers"]:
        if container["name"] != "main":
            container["exitCode"] = 1
    completion = parse_task_state_change(event)
    assert completion is not None
    assert (completion.exit_code, completion.error_code) == ("0", None)


def test_a_running_task_has_no_completion_yet() -> None:
    assert parse_task_state_change(ecs_event("task-running")) is None


def test_other_events_are_refused() -> None:
    with pytest.raises(EcsEventError):
        parse_task_state_change(
            {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification"}
        )
    event = ecs_event("task-stopped-exit-0")
    del event["detail"]["taskArn"]
    with pytest.raises(EcsEventError):
        parse_task_state_change(event)


def test_a_stop_for_timeout_reads_as_timed_out() -> None:
    event = ecs_event("task-stopped-user-initiated")
    event["detail"]["stoppedReason"] = STOP_REASON_TIMED_OUT
    completion = parse_task_state_change(event)
    assert completion is not None
    assert completion.error_code == ERR_TASK_TIMED_OUT


def test_spot_interruption_keeps_the_code_and_says_it_was_stopped() -> None:
    event = ecs_event("task-stopped-exit-0")
    event["detail"]["stopCode"] = "SpotInterruption"
    event["detail"]["stoppedReason"] = "Your Spot Task was interrupted."
    completion = parse_task_state_change(event)
    assert completion is not None
    assert (completion.exit_code, completion.error_code) == ("0", ERR_CONTAINER_STOPPED)


def test_a_task_without_main_never_started() -> None:
    event = ecs_event("task-stopped-exit-0")
    event["detail"]["containers"] = [c for c in event["detail"]["containers"] if c["name"] != "main"]
    completion = parse_task_state_change(event)
    assert completion is not None
    assert completion.error_code == ERR_CONTAINER_START
    assert "no main container" in str(completion.error_message)


def test_run_key_comes_from_the_environment_override_first() -> None:
    detail = ecs_event("task-stopped-exit-0")["detail"]
    detail["startedBy"] = "formica"
    assert run_key_of(detail) == RunKey(REQUEST_ID, 12)


def test_run_key_falls_back_to_started_by() -> None:
    detail = ecs_event("task-stopped-exit-0")["detail"]
    detail["overrides"] = {"containerOverrides": []}
    assert run_key_of(detail) == RunKey(REQUEST_ID, 12)
    detail["startedBy"] = "someone-else"
    assert run_key_of(detail) is None


def test_describe_tasks_shape_works_too() -> None:
    # DescribeTasks returns the same Task object (datetimes instead of strings).
    detail = ecs_event("task-stopped-exit-3")["detail"]
    assert completion_from_task(detail).exit_code == "3"


@pytest.mark.parametrize("step", [0, 1, 12, 35, 36, 99_999, 10**7])
def test_started_by_round_trips_within_36_chars(step: int) -> None:
    request_id = str(uuid.uuid4())
    value = RunKey(request_id, step).started_by()
    assert len(value) <= 36
    assert set(value) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/")
    assert RunKey.from_started_by(value) == RunKey(request_id, step)


@pytest.mark.parametrize("request_id", ["req-1", REQUEST_ID.upper(), "{" + REQUEST_ID + "}"])
def test_started_by_is_plain_formica_when_the_key_cannot_round_trip(request_id: str) -> None:
    assert RunKey(request_id, 1).started_by() == "formica"


def test_run_key_text_round_trips() -> None:
    key = RunKey("a/b", 7)
    assert RunKey.parse(str(key)) == key
    assert RunKey.parse("no-step") is None
    assert RunKey.parse("x/") is None
