"""Triggers in the stack: the public webhook route, the EventBridge rule for the listed buckets,
the organisations' trigger queues with DLQs, their consumers (partial batch failures) and roles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.synthesis import DEFAULT_CONTEXT, Synth, definition_file, synthesize

GRANTED_QUEUE = "arn:aws:sqs:us-east-1:123456789012:partner-orders"
TRIGGER_CONTEXT: dict[str, object] = {
    **DEFAULT_CONTEXT,
    "trigger_buckets": json.dumps({"incoming-data": ["acme", "globex"], "acme-drops": ["acme"]}),
    "trigger_queues": json.dumps(
        [{"org": "acme", "topic": "orders"}, {"org": "globex", "topic": "orders", "queue_arn": GRANTED_QUEUE}]
    ),
}
CONSUMER_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "states:StartExecution",
    "events:PutEvents",
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}


@pytest.fixture(scope="module")
def triggered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    root = tmp_path_factory.mktemp("cdk-triggers")
    yield synthesize(root / "cdk.out", definition_file(root), TRIGGER_CONTEXT)


def _resource_path(synth: Synth, resource_id: str) -> str:
    parts: list[str] = []
    resources = synth.resources
    while resource_id in resources and resources[resource_id]["Type"] == "AWS::ApiGateway::Resource":
        properties = resources[resource_id]["Properties"]
        parts.append(properties["PathPart"])
        parent = properties["ParentId"]
        resource_id = parent.get("Ref", "")
    return "/" + "/".join(reversed(parts))


def test_the_webhook_route_is_public_and_goes_to_the_api_function(synth: Synth) -> None:
    methods = [
        method["Properties"]
        for method in synth.of_type("AWS::ApiGateway::Method").values()
        if "Ref" in method["Properties"]["ResourceId"]
        and _resource_path(synth, method["Properties"]["ResourceId"]["Ref"])
        == "/api/triggers/{org}/{job_type}/{name}"
    ]
    assert len(methods) == 1
    (method,) = methods
    assert method["HttpMethod"] == "POST"
    assert method["AuthorizationType"] == "NONE"
    api_function = synth.functions()["api"][0]
    assert api_function in json.dumps(method["Integration"]["Uri"])


def test_without_trigger_context_there_are_no_trigger_consumers(synth: Synth) -> None:
    assert {"trigger_s3", "trigger_queue"}.isdisjoint(synth.functions())
    assert synth.validation_error is None


def test_listed_buckets_send_object_created_to_the_s3_events_queue(triggered: Synth) -> None:
    assert triggered.validation_error is None, triggered.validation_error
    rules = [
        rule["Properties"]
        for rule in triggered.of_type("AWS::Events::Rule").values()
        if rule["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]
    ]
    (rule,) = rules
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert sorted(rule["EventPattern"]["detail"]["bucket"]["name"]) == ["acme-drops", "incoming-data"]
    (target,) = rule["Targets"]
    queue_id = target["Arn"]["Fn::GetAtt"][0]
    assert triggered.resources[queue_id]["Type"] == "AWS::SQS::Queue"
    # EventBridge notifications turned on for each listed bucket (CDK's notifications resource)
    notifications = [
        resource["Properties"]
        for resource in triggered.resources.values()
        if resource["Type"] == "Custom::S3BucketNotifications"
    ]
    assert sorted(n["BucketName"] for n in notifications) == ["acme-drops", "incoming-data"]
    assert all(n["NotificationConfiguration"] == {"EventBridgeConfiguration": {}} for n in notifications)
    variables = triggered.functions()["trigger_s3"][1]["Environment"]["Variables"]
    assert json.loads(variables["FORMICA_TRIGGER_BUCKETS"]) == {
        "acme-drops": ["acme"],
        "incoming-data": ["acme", "globex"],
    }


def _queues(synth: Synth) -> dict[str, dict[str, Any]]:
    return {key: value["Properties"] for key, value in synth.of_type("AWS::SQS::Queue").items()}


def test_trigger_queues_are_tagged_with_a_dead_letter_queue(triggered: Synth) -> None:
    queues = _queues(triggered)
    tagged = [
        properties
        for properties in queues.values()
        if {"Key": "formica:org", "Value": "acme"} in properties.get("Tags", [])
    ]
    (made,) = tagged
    assert {"Key": "formica:topic", "Value": "orders"} in made["Tags"]
    assert made["RedrivePolicy"]["maxReceiveCount"] == 5
    dlq_id = made["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert dlq_id in queues


def test_consumers_report_partial_batch_failures_from_each_queue(triggered: Synth) -> None:
    functions = triggered.functions()
    mappings = triggered.of_type("AWS::Lambda::EventSourceMapping").values()
    by_function: dict[str, list[dict[str, Any]]] = {}
    for mapping in mappings:
        properties = mapping["Properties"]
        by_function.setdefault(json.dumps(properties["FunctionName"]), []).append(properties)
    queue_mappings = by_function[json.dumps({"Ref": functions["trigger_queue"][0]})]
    s3_mappings = by_function[json.dumps({"Ref": functions["trigger_s3"][0]})]
    assert len(queue_mappings) == 2 and len(s3_mappings) == 1
    assert GRANTED_QUEUE in json.dumps(queue_mappings)
    for properties in [*queue_mappings, *s3_mappings]:
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_consumer_roles_hold_only_what_they_call(triggered: Synth) -> None:
    for folder in ("trigger_s3", "trigger_queue"):
        actions = triggered.actions_of_role(triggered.role_of(folder))
        table = {action for action in actions if action.startswith("dynamodb:")}
        assert table, folder
        assert not any(action.startswith(("s3:", "secretsmanager:", "ssm:", "ecs:")) for action in actions)
        extra = {"sqs:ListQueueTags"} if folder == "trigger_queue" else set()
        assert actions - table == CONSUMER_ACTIONS | extra, folder
    (tags,) = triggered.statements_granting(triggered.role_of("trigger_queue"), "sqs:ListQueueTags")
    assert GRANTED_QUEUE in json.dumps(tags["Resource"])
    assert "*" not in json.dumps(tags["Resource"])
