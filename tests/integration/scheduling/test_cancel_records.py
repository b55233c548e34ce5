"""Cancel completes the current task's record even when the step that created it was committed but
its records were never written (its Lambda died between the two): never a partial item."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import boto3
from formica.engine.routing import TaskState
from formica.engine.walk import JobState
from formica.local.notify import LOCAL_BUS, create_event_plumbing
from formica.runtime import cancel_request, start_request
from formica.store.events import EventBridgePublisher
from formica.store.schema import request_pk, task_sk

from tests.integration.scheduling.conftest import ORG, REGION, TABLE, World


def test_cancel_after_a_lost_flush_leaves_a_whole_cancelled_record(world: World) -> None:
    # Given a started request whose first step (task `only`, READY) is committed on the request...
    world.define("free")
    request_id = world.create("free")
    start_request(request_id, world.runtime)
    # ...but whose task record never reached the table
    world.ddb.delete_item(TableName=TABLE, Key={"pk": {"S": request_pk(request_id)}, "sk": {"S": task_sk(1)}})
    assert world.runtime.requests.list_tasks(request_id) == []

    # When it is cancelled
    cancelled = cancel_request(ORG, request_id, world.runtime)

    # Then the task's record is whole, and CANCELLED
    assert cancelled.job_state == JobState.CANCELLED
    [task] = world.runtime.requests.list_tasks(request_id)
    assert (task.task_type, task.task_state, task.error_code) == (
        "only",
        TaskState.CANCELLED,
        "ERR_TASK_CANCELLED",
    )


def test_a_cancelled_task_record_ends_at_the_runtimes_clock(world: World) -> None:
    # Given a started request, and a runtime whose clock stands at a fixed moment
    world.define("free")
    request_id = world.create("free")
    start_request(request_id, world.runtime)
    world.clock.now = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)

    # When it is cancelled
    cancel_request(ORG, request_id, world.runtime)

    # Then its current task's record ended at that moment, as the table stores timestamps
    [task] = world.runtime.requests.list_tasks(request_id)
    assert (task.task_state, task.ended_at) == (TaskState.CANCELLED, "2026-03-04T05:06:07.890123+00:00")


def test_the_cancelled_requests_lifecycle_event_is_created_at_the_runtimes_clock(world: World) -> None:
    # Given a started request, a runtime publishing on a bus whose rule feeds a queue, and its clock
    # standing at a fixed moment
    events, sqs = boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)
    queue_url = create_event_plumbing(events, sqs)
    runtime = replace(world.runtime, events=EventBridgePublisher(LOCAL_BUS, client=events))
    world.define("free")
    request_id = world.create("free")
    start_request(request_id, runtime)
    world.clock.now = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)

    # When it is cancelled
    cancel_request(ORG, request_id, runtime)

    # Then its CANCELLED event says it was created at that moment
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    details = [json.loads(message["Body"])["detail"] for message in received]
    cancelled = [detail for detail in details if detail.get("job_state") == "CANCELLED"]
    assert [detail["created_at"] for detail in cancelled] == ["2026-03-04T05:06:07.890123+00:00"]
