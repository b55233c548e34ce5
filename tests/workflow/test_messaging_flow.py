"""MESSAGING tasks through the real walk on moto: Launch sends formicary's task request to the
organisation's SQS queue and the AwaitMessage state waits on its token; the reply carrying the same
correlation id on the task's reply queue, received by `formica dev`'s reply consumer (the
messaging_reply handler), answers it. Replies that never come, fail, repeat, are malformed, or
arrive on another organisation's queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from formica.engine.walk import JobState
from formica.local.messaging import LocalReplyPoller, local_messaging
from formica.runtime import get_runtime
from formica.runtime.messaging import handle_reply, reset_messaging_ports
from formica.store.messages import message_queue_name, org_queue_prefix

from tests.workflow.conftest import ORG, REGION, Walk

MESSAGING_JOB = """
job_type: messaging-job
timeout: 60s
job_variables:
  Colour: blue
tasks:
- task_type: trigger
  method: MESSAGING
  timeout: 30s
  messaging_request_queue: formicary-message-ant-request
  messaging_reply_queue: formicary-message-ant-response
  on_exit_code:
    "3": cleanup
  on_completed: after
- task_type: after
  method: SHELL
  script:
    - echo "answer={{.Answer}}"
- task_type: cleanup
  method: SHELL
  script:
    - echo cleaning
"""
REQUEST_QUEUE = message_queue_name(ORG, "formicary-message-ant-request", {})
REPLY_QUEUE = message_queue_name(ORG, "formicary-message-ant-response", {})


@pytest.fixture
def replies(walk: Walk) -> Iterator[LocalReplyPoller]:
    reset_messaging_ports()
    with local_messaging() as poller:
        yield poller
    reset_messaging_ports()


def sqs() -> Any:
    return boto3.client("sqs", region_name=REGION)


def take_request(timeout: float = 20.0) -> dict[str, Any]:
    """The replier's side: the next task request on the organisation's request queue."""
    deadline = time.monotonic() + timeout
    client = sqs()
    while time.monotonic() < deadline:
        try:
            url = client.get_queue_url(QueueName=REQUEST_QUEUE)["QueueUrl"]
        except client.exceptions.QueueDoesNotExist:
            time.sleep(0.1)
            continue
        for message in client.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", []):
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return dict(json.loads(message["Body"]))
        time.sleep(0.1)
    raise AssertionError("no task request arrived")


def send_reply(body: dict[str, Any] | str, queue: str = REPLY_QUEUE) -> None:
    client = sqs()
    url = client.get_queue_url(QueueName=queue)["QueueUrl"]
    client.send_message(QueueUrl=url, MessageBody=body if isinstance(body, str) else json.dumps(body))


def test_a_request_and_its_reply_complete_the_task(walk: Walk, replies: LocalReplyPoller) -> None:
    # Given a job whose first task is a MESSAGING task
    walk.upload(MESSAGING_JOB)
    request_id = walk.submit("messaging-job", {"Who": "ant"})

    # When the replier takes formicary's task request and answers with its correlation id
    request = take_request()
    assert request["job_request_id"] == request_id
    assert request["task_type"] == "trigger"
    assert request["action"] == "EXECUTE"
    assert request["organization_id"] == ORG
    assert request["variables"]["Who"] == "ant"
    assert request["variables"]["Colour"] == "blue"
    assert request["response_topic"] == REPLY_QUEUE
    assert request["correlation_id"] == f"{request_id}:{walk.request(request_id).step}"
    assert "task_token" not in json.dumps(request).lower()
    send_reply(
        {
            "correlation_id": request["correlation_id"],
            "status": "COMPLETED",
            "exit_code": "0",
            "task_context": {"Answer": "forty-two", "Count": 3},
        }
    )

    # Then the walk went on with the reply's context as the task's outputs
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done
    tasks = {task.task_type: task for task in walk.tasks(request_id)}
    assert tasks["trigger"].outputs == {"Answer": "forty-two", "Count": "3"}
    assert "answer=forty-two" in walk.log(request_id, "after")
    assert "forty-two" in walk.log(request_id, "trigger")
    # And the task waited in the AwaitMessage state
    history = walk.history(done.execution_name or "")
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert "AwaitMessage" in entered


def test_a_reply_that_never_comes_times_out(walk: Walk, replies: LocalReplyPoller) -> None:
    # Given a MESSAGING task of 1 s
    walk.upload(MESSAGING_JOB.replace("timeout: 30s", "timeout: 1s", 1))
    request_id = walk.submit("messaging-job")
    request = take_request()

    # When nobody replies in time
    done = walk.wait(request_id, timeout=30)

    # Then the task failed with its timeout, and a late reply changes nothing
    assert done.job_state == JobState.FAILED
    assert done.error_code == "ERR_TASK_TIMED_OUT"
    late = json.dumps({"correlation_id": request["correlation_id"], "exit_code": "0"})
    assert handle_reply(get_runtime(), REPLY_QUEUE, late) == "late"
    assert walk.request(request_id).job_state == JobState.FAILED


def test_a_failing_exit_code_is_routed_by_on_exit_code(walk: Walk, replies: LocalReplyPoller) -> None:
    # Given a MESSAGING task routing exit code 3 to cleanup
    walk.upload(MESSAGING_JOB)
    request_id = walk.submit("messaging-job")

    # When the reply says exit code 3
    request = take_request()
    send_reply({"correlation_id": request["correlation_id"], "exit_code": 3, "exit_message": "no ants"})

    # Then cleanup ran instead of after
    done = walk.wait(request_id)
    tasks = {task.task_type: task for task in walk.tasks(request_id)}
    assert tasks["trigger"].exit_code == "3"
    assert "cleanup" in tasks
    assert "after" not in tasks
    assert "cleaning" in walk.log(request_id, "cleanup")
    assert done.job_state == JobState.COMPLETED, done


def test_a_failed_status_without_exit_code_fails_the_task(walk: Walk, replies: LocalReplyPoller) -> None:
    walk.upload(MESSAGING_JOB)
    request_id = walk.submit("messaging-job")
    request = take_request()
    send_reply(
        {"correlation_id": request["correlation_id"], "status": "FAILED", "error_message": "queue ant broke"}
    )
    done = walk.wait(request_id)
    assert done.job_state == JobState.FAILED
    assert done.error_code == "ERR_MESSAGING_FAILED"
    assert "queue ant broke" in (done.error_message or "")


def test_one_reply_counts_and_bad_replies_are_dropped(walk: Walk, replies: LocalReplyPoller) -> None:
    # Given a task waiting for its reply
    walk.upload(MESSAGING_JOB.replace('"3": cleanup', '"5": cleanup'))
    request_id = walk.submit("messaging-job")
    request = take_request()
    correlation = request["correlation_id"]
    runtime = get_runtime()

    # When malformed replies, a reply with an unknown correlation id and the right reply on another
    # organisation's queue arrive first
    other_queue = message_queue_name("globex", "formicary-message-ant-response", {})
    sqs().create_queue(QueueName=other_queue)
    assert handle_reply(runtime, REPLY_QUEUE, "not json") == "dropped"
    assert handle_reply(runtime, REPLY_QUEUE, json.dumps(["a", "list"])) == "dropped"
    assert handle_reply(runtime, REPLY_QUEUE, json.dumps({"exit_code": "0"})) == "dropped"
    assert handle_reply(runtime, REPLY_QUEUE, json.dumps({"correlation_id": "x:y"})) == "dropped"
    assert handle_reply(runtime, other_queue, json.dumps({"correlation_id": correlation})) == "dropped"
    send_reply("{broken", REPLY_QUEUE)  # through the consumer: dropped, the consumer goes on
    time.sleep(0.5)

    # Then the task still waits
    assert not walk.request(request_id).is_final

    # When two replies come, the first with exit code 5
    send_reply({"correlation_id": correlation, "exit_code": "5"})
    send_reply({"correlation_id": correlation, "exit_code": "0"})

    # Then only the first counted
    walk.wait(request_id)
    tasks = {task.task_type: task for task in walk.tasks(request_id)}
    assert tasks["trigger"].exit_code == "5"
    assert tasks["trigger"].attempts == 1
    assert "cleanup" in tasks


def test_queue_names_are_the_organisations_own() -> None:
    assert REQUEST_QUEUE.startswith(org_queue_prefix(ORG))
    assert message_queue_name("globex", "q", {}) != message_queue_name(ORG, "q", {})
    assert message_queue_name(ORG, "shared-q", {ORG: frozenset({"shared-q"})}) == "shared-q"
    assert message_queue_name("globex", "shared-q", {ORG: frozenset({"shared-q"})}).startswith("formica-msg-")
    assert len(message_queue_name(ORG, "x" * 51, {})) <= 80


def test_a_retried_messaging_attempt_waits_its_delay_between_retries_first(
    walk: Walk, replies: LocalReplyPoller
) -> None:
    # Given a MESSAGING task retried once, 2 s apart
    retried = "  timeout: 30s\n  retry: 1\n  delay_between_retries: 2s\n"
    walk.upload(MESSAGING_JOB.replace("  timeout: 30s\n", retried, 1))
    request_id = walk.submit("messaging-job")

    # When the first request's reply fails (exit code 1) and the retried request's reply succeeds
    first = take_request()
    send_reply({"correlation_id": first["correlation_id"], "exit_code": "1"})
    second = take_request()
    assert second["retry"] == 1 and second["correlation_id"] != first["correlation_id"]
    send_reply({"correlation_id": second["correlation_id"], "exit_code": "0"})

    # Then the job completed, and the execution waited 2 s in a Wait state before the second request
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done
    history = walk.history(done.execution_name or "")
    entered = [
        event["stateEnteredEventDetails"]["name"]
        for event in history
        if event["type"] in ("WaitStateEntered", "TaskStateEntered")
    ]
    assert entered[:3] == ["AwaitMessage", "WaitThenAwaitMessage", "AwaitMessage"], entered
    waits = [
        json.loads(event["stateEnteredEventDetails"]["input"])["wait_seconds"]
        for event in history
        if event["type"] == "WaitStateEntered"
    ]
    assert waits == [2]
