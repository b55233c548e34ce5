"""A stopped ECS task's billed Fargate time, read from the task itself (event or DescribeTasks)."""

from __future__ import annotations

from datetime import UTC, datetime

from formica.runners.ecs_events import completion_from_task, fargate_usage, parse_task_state_change

from tests.event_samples import ecs_event


def test_billed_from_the_image_pull_to_the_stop_rounded_up_to_the_second() -> None:
    # pullStartedAt 18:40:05.103, stoppedAt 18:41:30.551: 85.448 s, billed 86 s at 512 CPU units, 1,024 MiB
    completion = parse_task_state_change(ecs_event("task-stopped-exit-0"))
    assert completion is not None and completion.usage is not None
    assert completion.usage.fargate_cpu_unit_ms == 512 * 86_000
    assert completion.usage.fargate_mib_ms == 1024 * 86_000
    assert completion.usage.fargate_vcpu_seconds == 43.0
    assert completion.usage.fargate_gb_seconds == 86.0


def test_a_short_task_is_billed_one_minute() -> None:
    task = {
        "cpu": "256",
        "memory": "512",
        "launchType": "FARGATE",
        "startedAt": datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC),  # DescribeTasks: datetimes, no pull time
        "stoppedAt": datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC),
    }
    usage = fargate_usage(task)
    assert usage is not None
    assert (usage.fargate_cpu_unit_ms, usage.fargate_mib_ms) == (256 * 60_000, 512 * 60_000)


def test_nothing_is_billed_when_the_task_never_ran_or_is_not_on_fargate() -> None:
    assert fargate_usage({"cpu": "256", "memory": "512", "stoppedAt": "2026-01-01T00:00:00Z"}) is None
    ec2 = {
        "launchType": "EC2",
        "cpu": "256",
        "memory": "512",
        "startedAt": "2026-01-01T00:00:00Z",
        "stoppedAt": "2026-01-01T00:10:00Z",
    }
    assert fargate_usage(ec2) is None
    assert completion_from_task({"taskArn": "arn:aws:ecs:us-east-1:1:task/c/x"}).usage is None
