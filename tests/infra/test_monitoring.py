"""Monitoring in the template: alarms with their thresholds, the SNS topic they notify, the
dead-letter queue of the asynchronously invoked functions, and the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from formica.runtime.metrics import NAMESPACE, OLDEST_STARTED_AGE, SERVICE

from cdk.constructs.monitoring import (
    API_5XX_THRESHOLD,
    DYNAMODB_THROTTLES_THRESHOLD,
    FAILED_EXECUTIONS_THRESHOLD,
    OLDEST_STARTED_THRESHOLD,
)
from tests.infra.synthesis import DEFAULT_CONTEXT, Synth, definition_file, synthesize

GIVEN_TOPIC = "arn:aws:sns:eu-west-1:123456789012:ops-pager"
ASYNC_FOLDERS = {"scheduler", "container_events", "reconciler"}


def alarms(of: Synth) -> dict[str, dict[str, Any]]:
    return {
        logical: resource["Properties"] for logical, resource in of.of_type("AWS::CloudWatch::Alarm").items()
    }


def alarm(of: Synth, fragment: str) -> dict[str, Any]:
    (found,) = [props for logical, props in alarms(of).items() if fragment in logical]
    return found


def test_the_state_machine_api_and_table_are_alarmed_at_their_thresholds(synth: Synth) -> None:
    failed = alarm(synth, "ExecutionsFailed")
    assert (failed["MetricName"], failed["Namespace"], failed["Threshold"]) == (
        "ExecutionsFailed",
        "AWS/States",
        FAILED_EXECUTIONS_THRESHOLD,
    )
    assert failed["Period"] == 300 and failed["Statistic"] == "Sum"
    for name in ("ExecutionsTimedOut", "ExecutionsAborted", "ExecutionThrottled"):
        assert alarm(synth, name)["Threshold"] == 1
    api = alarm(synth, "Api5xx")
    assert (api["MetricName"], api["Namespace"], api["Threshold"]) == (
        "5XXError",
        "AWS/ApiGateway",
        API_5XX_THRESHOLD,
    )
    throttles = alarm(synth, "TableThrottles")
    assert throttles["Threshold"] == DYNAMODB_THROTTLES_THRESHOLD
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in throttles["Metrics"] if "MetricStat" in m}
    assert names == {"ReadThrottleEvents", "WriteThrottleEvents"}


def test_every_function_has_an_errors_and_a_throttles_alarm(synth: Synth) -> None:
    by_function: dict[str, set[str]] = {}
    for props in alarms(synth).values():
        if props.get("Namespace") != "AWS/Lambda" or props["MetricName"] not in ("Errors", "Throttles"):
            continue
        (dimension,) = props["Dimensions"]
        by_function.setdefault(dimension["Value"]["Ref"], set()).add(props["MetricName"])
        assert props["Threshold"] == 1 and props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    functions = {logical for logical, _ in synth.functions().values()}
    assert set(by_function) == functions
    assert all(metrics == {"Errors", "Throttles"} for metrics in by_function.values())


def test_the_sweep_and_the_reconciler_are_alarmed_when_they_stop_or_fall_behind(synth: Synth) -> None:
    functions = synth.functions()
    for folder in ("scheduler", "reconciler"):
        logical, properties = functions[folder]
        mine = [
            props
            for props in alarms(synth).values()
            if props.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": logical}}]
        ]
        by_metric = {props["MetricName"]: props for props in mine}
        stopped = by_metric["Invocations"]
        assert (
            stopped["ComparisonOperator"] == "LessThanThreshold"
            and stopped["TreatMissingData"] == "breaching"
        )
        behind = by_metric["Duration"]
        assert behind["Threshold"] == pytest.approx(properties["Timeout"] * 1000 * 0.8)


def test_async_functions_fail_into_a_dead_letter_queue_and_every_dlq_is_alarmed(synth: Synth) -> None:
    functions = {logical: folder for folder, (logical, _) in synth.functions().items()}
    configs = synth.of_type("AWS::Lambda::EventInvokeConfig").values()
    targets = {}
    for config in configs:
        props = config["Properties"]
        folder = functions[props["FunctionName"]["Ref"]]
        targets[folder] = props["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        assert props["MaximumRetryAttempts"] == 2
    assert set(targets) == ASYNC_FOLDERS
    # Every dead-letter queue (an on-failure destination, or a queue's redrive target) has a depth alarm.
    dead_letters = set(targets.values())
    for queue in synth.of_type("AWS::SQS::Queue").values():
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            dead_letters.add(redrive["deadLetterTargetArn"]["Fn::GetAtt"][0])
    depth = {
        props["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for props in alarms(synth).values()
        if props.get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert dead_letters and dead_letters <= depth
    for queue in dead_letters:
        assert synth.resources[queue]["Properties"]["SqsManagedSseEnabled"] is True


def test_a_request_left_started_is_alarmed_at_the_context_threshold(synth: Synth, variant: Synth) -> None:
    # Given the metric the sweep publishes (formica.runtime.metrics.oldest_started)
    expected = {
        "Namespace": NAMESPACE,
        "MetricName": OLDEST_STARTED_AGE,
        "Dimensions": [{"Name": "service", "Value": SERVICE}],
        "Statistic": "Maximum",
        "Period": 300,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
        "EvaluationPeriods": 1,
    }
    # Then the default stack alarms on it at the default threshold (15 minutes) ...
    default = alarm(synth, "OldestStarted")
    assert {key: default[key] for key in expected} == expected
    assert default["Threshold"] == OLDEST_STARTED_THRESHOLD.to_seconds() == 900
    # ... and a deployment's oldest_started_alarm_seconds moves it (the variant says 1800)
    configured = alarm(variant, "OldestStarted")
    assert {key: configured[key] for key in expected} == expected
    assert configured["Threshold"] == 1800


def test_every_alarm_notifies_the_stacks_topic(synth: Synth) -> None:
    (topic,) = synth.of_type("AWS::SNS::Topic")
    for props in alarms(synth).values():
        assert props["AlarmActions"] == [{"Ref": topic}]
    assert synth.template["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": topic}


def test_a_given_topic_is_used_and_none_is_created(tmp_path: Path) -> None:
    given = synthesize(
        tmp_path / "cdk.out", definition_file(tmp_path), {**DEFAULT_CONTEXT, "alarm_topic_arn": GIVEN_TOPIC}
    )
    assert given.of_type("AWS::SNS::Topic") == {}
    assert "AlarmTopicArn" not in given.template["Outputs"]
    assert all(props["AlarmActions"] == [GIVEN_TOPIC] for props in alarms(given).values())


def test_the_dashboard_shows_the_walks_metrics(synth: Synth) -> None:
    (dashboard,) = synth.of_type("AWS::CloudWatch::Dashboard").values()
    body = str(dashboard["Properties"]["DashboardBody"])
    for metric in ("JobsCompleted", "JobsFailed", "QueueWait", "TaskAttempts", "TaskAttemptDuration"):
        assert metric in body
    # The oldest STARTED request's age, with the alarm's threshold drawn on it
    assert f'"{NAMESPACE}","{OLDEST_STARTED_AGE}","service","{SERVICE}"' in body
    assert '{"value":900,"label":"alarm threshold"' in body


def test_a_given_up_delivery_of_any_channel_rings_the_deliveries_alarm(synth: Synth) -> None:
    props = alarm(synth, "DeliveriesFailed")
    assert (props["Threshold"], props["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    stats = [m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m]
    assert {(s["Metric"]["Namespace"], s["Metric"]["MetricName"], s["Stat"]) for s in stats} == {
        (NAMESPACE, "DeliveriesFailed", "Sum")
    }
    channels = {tuple(sorted((d["Name"], d["Value"]) for d in s["Metric"]["Dimensions"])) for s in stats}
    assert channels == {
        (("channel", channel), ("service", SERVICE)) for channel in ("webhook", "email", "slack")
    }
    (expression,) = [m["Expression"] for m in props["Metrics"] if "Expression" in m]
    assert all(f"FILL({channel}, 0)" in expression for channel in ("webhook", "email", "slack"))
