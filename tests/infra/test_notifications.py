"""The lifecycle events' bus, its rule to the delivery queue (with a DLQ), the notify function on the
queue, who may publish, the signing secrets' grant scoped to this stage's prefix, and SES sending
scoped to the notify_sender identity."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.synthesis import Synth, actions_of

PUBLISHERS_NOT = {"shell_sandbox", "authorizer", "notify"}


def one(
    synth: Synth, resource_type: str, contains: str = "", *, but: str = "@"
) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (key, value)
        for key, value in synth.of_type(resource_type).items()
        if contains in key and but not in key
    ]
    return found


def test_the_bus_routes_every_lifecycle_event_to_the_delivery_queue(synth: Synth) -> None:
    _, bus = one(synth, "AWS::Events::EventBus")
    assert bus["Properties"]["Name"] == "formica-test"
    _, rule = one(synth, "AWS::Events::Rule", "LifecycleToDeliveries")
    pattern = rule["Properties"]["EventPattern"]
    assert pattern == {"source": ["formica"], "detail-type": ["Job State Change", "Task State Change"]}
    (target,) = rule["Properties"]["Targets"]
    queue_id, queue = one(synth, "AWS::SQS::Queue", "Deliveries", but="Dlq")
    assert target["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    dlq_id, _ = one(synth, "AWS::SQS::Queue", "DeliveriesDlq")
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 5}
    assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_the_notify_function_consumes_the_queue_reporting_failed_items(synth: Synth) -> None:
    notify_id, notify = synth.functions()["notify"]
    (mapping,) = [
        m["Properties"]
        for m in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": notify_id}
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    environment = notify["Environment"]["Variables"]
    assert "FORMICA_NOTIFY_QUEUE_URL" in environment
    assert environment["FORMICA_WEBHOOK_SECRET_PREFIX"] == "formica/test/webhooks/"


def test_every_function_that_changes_requests_publishes_and_no_other(synth: Synth) -> None:
    for folder, (_, properties) in synth.functions().items():
        environment = properties.get("Environment", {}).get("Variables", {})
        granted = "events:PutEvents" in synth.actions_of_role(synth.role_of(folder))
        publishes = folder not in PUBLISHERS_NOT
        assert granted == publishes, folder
        assert ("FORMICA_EVENT_BUS_NAME" in environment) == publishes, folder


def test_signing_secrets_are_granted_by_this_stages_prefix_to_notify_and_the_api_only(synth: Synth) -> None:
    holders = set()
    for folder in synth.functions():
        for statement in synth.statements_granting(synth.role_of(folder), "secretsmanager:CreateSecret"):
            holders.add(folder)
            assert json.dumps(statement["Resource"]).count("secret:formica/test/webhooks/*") == 1
            assert set(statement["Action"]) == {
                "secretsmanager:GetSecretValue",
                "secretsmanager:CreateSecret",
            }
    assert holders == {"notify", "api"}


def ses_statements(synth: Synth, folder: str) -> list[dict[str, Any]]:
    return [
        statement
        for statement in synth.statements_of_role(synth.role_of(folder))
        if any(str(action).startswith("ses:") for action in actions_of(statement))
    ]


def test_without_a_sender_no_function_may_send_email_and_email_is_off(synth: Synth) -> None:
    for folder, (_, properties) in synth.functions().items():
        assert ses_statements(synth, folder) == [], folder
        assert "FORMICA_NOTIFY_SENDER" not in properties.get("Environment", {}).get("Variables", {})


def test_with_a_sender_notify_may_send_from_that_identity_only(variant: Synth) -> None:
    (statement,) = ses_statements(variant, "notify")
    assert actions_of(statement) == {"ses:SendEmail"}
    resources = json.dumps(statement["Resource"])
    assert resources.count(":identity/builds@example.com") == 1
    assert resources.count(":identity/example.com") == 1
    assert "*" not in resources
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": "builds@example.com"}}
    _, notify = variant.functions()["notify"]
    environment = notify["Environment"]["Variables"]
    assert environment["FORMICA_NOTIFY_SENDER"] == "builds@example.com"
    assert "FORMICA_API_URL" in environment  # the dashboard link
    holders = {folder for folder in variant.functions() if ses_statements(variant, folder)}
    assert holders == {"notify"}
