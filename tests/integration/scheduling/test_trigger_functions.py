"""The trigger functions' handlers on moto: partial batch failures for the queue consumer, only
"Object Created" for S3, buckets reaching only the organisations they are granted to, and a
malformed message redriven to the dead-letter queue.

moto's event-source mapping ignores batchItemFailures and never redelivers, so the handlers'
answers are tested with crafted SQS events, and the redrive with moto's queue and the local poller.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import boto3
import pytest
from formica.local.lambda_dispatch import LocalLambdaContext
from formica.local.notify import LocalNotifyPoller
from formica.runtime.triggers import forget_org_triggers

from functions.trigger_queue import app as queue_app
from functions.trigger_s3 import app as s3_app
from tests.integration.scheduling.conftest import ORG, REGION, TABLE, World

QUEUE_TRIGGER = (
    "triggers:\n- type: queue\n  name: orders\n  topic: orders\n"
    "  filter: '{{ if gt .Message.total 1000 }}true{{ end }}'\n  params: {order: '{{ .Message.id }}'}\n"
)
S3_TRIGGER = (
    "triggers:\n- type: s3\n  name: drops\n  bucket: incoming-data\n  prefix: incoming/\n  suffix: .parquet\n"
    "  params: {key: '{{ .Object.Key }}', etag: '{{ .Object.ETag }}'}\n"
)


def _requests(world: World, job_type: str) -> list[dict[str, Any]]:
    items = world.ddb.scan(TableName=TABLE)["Items"]
    return [item for item in items if item["sk"]["S"] == "REQ" and item["job_type"]["S"] == job_type]


def _record(message_id: str, body: str, queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
    }


def _s3_event(detail_type: str, bucket: str, key: str) -> str:
    return json.dumps(
        {
            "source": "aws.s3",
            "detail-type": detail_type,
            "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 4, "etag": "e7a9"}},
        }
    )


@pytest.fixture
def uses(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    forget_org_triggers()
    for module in (queue_app, s3_app):
        monkeypatch.setattr(module, "get_runtime", lambda: world.runtime)
    monkeypatch.setattr(queue_app, "queues", queue_app.TriggerQueueDirectory())
    return world


def _tagged_queue(name: str, org: str = ORG, topic: str = "orders", **attributes: str) -> tuple[str, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(
        QueueName=name, Attributes=attributes, tags={"formica:org": org, "formica:topic": topic}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def test_a_malformed_message_is_a_batch_item_failure_and_the_others_are_done(uses: World) -> None:
    # Given the organisation's queue for topic "orders" and a job triggered by big orders
    uses.define("big-order", extra=QUEUE_TRIGGER)
    _, arn = _tagged_queue("formica-acme-orders")
    event = {
        "Records": [
            _record("m-big", json.dumps({"id": "o-1", "total": 1500}), arn),
            _record("m-bad", "{not json", arn),
            _record("m-small", json.dumps({"id": "o-2", "total": 500}), arn),
        ]
    }

    # When the consumer takes the batch
    answer = queue_app.handler(event, LocalLambdaContext(function_name="formica-trigger-queue"))

    # Then only the malformed one is reported for redelivery, and the big order started a request
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    started = _requests(uses, "big-order")
    assert len(started) == 1
    assert json.loads(started[0]["params_json"]["S"]) == {"order": "o-1"}


def test_a_message_of_an_untagged_queue_or_another_organisations_topic_starts_nothing(uses: World) -> None:
    uses.define("big-order", extra=QUEUE_TRIGGER)
    _, untagged = _tagged_queue("not-a-trigger-queue", org="", topic="")
    _, elsewhere = _tagged_queue("formica-other-orders", org="other-org")
    body = json.dumps({"id": "o-3", "total": 5000})

    answer = queue_app.handler(
        {"Records": [_record("m-1", body, untagged), _record("m-2", body, elsewhere)]},
        LocalLambdaContext(function_name="formica-trigger-queue"),
    )

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert _requests(uses, "big-order") == []  # other-org has no such job: acme's is not reached


def test_a_malformed_message_ends_in_the_dead_letter_queue(uses: World) -> None:
    # Given a trigger queue whose redrive policy moves a message after 2 receives
    sqs = boto3.client("sqs", region_name=REGION)
    dlq_url, dlq_arn = _tagged_queue("formica-acme-orders-dlq", org="", topic="")
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    url, _ = _tagged_queue("formica-acme-orders", RedrivePolicy=redrive, VisibilityTimeout="0")
    sqs.send_message(QueueUrl=url, MessageBody="{not json")
    poller = LocalNotifyPoller(url, sqs, wait_seconds=0, function="trigger_queue")

    # When the consumer fails it each time it is received
    for _ in range(3):
        poller.poll_once(0)

    # Then it has left the queue for the dead-letter queue, unchanged
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    moved = sqs.receive_message(QueueUrl=dlq_url).get("Messages", [])
    assert [m["Body"] for m in moved] == ["{not json"]


def test_only_object_created_under_the_prefix_with_the_suffix_starts_the_job(
    uses: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    uses.define("on-upload", extra=S3_TRIGGER)
    granted = replace(
        uses.runtime,
        settings=uses.runtime.settings.model_copy(
            update={"trigger_buckets": json.dumps({"incoming-data": [ORG]})}
        ),
    )
    monkeypatch.setattr(s3_app, "get_runtime", lambda: granted)

    answer = s3_app.handler(
        {
            "Records": [
                _record("e-1", _s3_event("Object Created", "incoming-data", "incoming/x.parquet"), "arn:s3"),
                _record("e-2", _s3_event("Object Created", "incoming-data", "incoming/x.csv"), "arn:s3"),
                _record(
                    "e-3", _s3_event("Object Tags Added", "incoming-data", "incoming/y.parquet"), "arn:s3"
                ),
                _record("e-4", _s3_event("Object Created", "incoming-data", "elsewhere/z.parquet"), "arn:s3"),
                _record("e-5", _s3_event("Object Created", "not-granted", "incoming/x.parquet"), "arn:s3"),
            ]
        },
        LocalLambdaContext(function_name="formica-trigger-s3"),
    )

    assert answer == {"batchItemFailures": []}
    started = _requests(uses, "on-upload")
    assert len(started) == 1
    assert json.loads(started[0]["params_json"]["S"]) == {"key": "incoming/x.parquet", "etag": "e7a9"}


def test_a_bucket_reaches_only_the_organisations_it_is_granted_to(
    uses: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    uses.define("on-upload", extra=S3_TRIGGER)
    other = replace(
        uses.runtime,
        settings=uses.runtime.settings.model_copy(
            update={"trigger_buckets": json.dumps({"incoming-data": ["other-org"]})}
        ),
    )
    monkeypatch.setattr(s3_app, "get_runtime", lambda: other)

    s3_app.handler(
        {
            "Records": [
                _record("e-1", _s3_event("Object Created", "incoming-data", "incoming/x.parquet"), "a")
            ]
        },
        LocalLambdaContext(function_name="formica-trigger-s3"),
    )

    assert _requests(uses, "on-upload") == []
