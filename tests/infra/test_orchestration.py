"""The job state machine: the ASL file with every placeholder filled, Standard, traced, logged."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra.synthesis import Synth

SUBSTITUTED_FUNCTIONS = {
    "AdvanceFunctionArn": "advance",
    "HttpTaskFunctionArn": "http_task",
    "ShellTaskFunctionArn": "shell_task",
    "LaunchFunctionArn": "launch",
    "ForkTaskFunctionArn": "fork_task",
    "ExpireTaskFunctionArn": "expire_task",
    "ContinueFunctionArn": "continue_execution",
}


def state_machine(synth: Synth) -> dict[str, Any]:
    (machine,) = synth.of_type("AWS::StepFunctions::StateMachine").values()
    return dict(machine["Properties"])


def test_definition_is_the_asl_file_with_every_placeholder_substituted(synth: Synth) -> None:
    properties = state_machine(synth)
    definition = properties["DefinitionString"]
    substitutions = properties["DefinitionSubstitutions"]
    asl = synth.definition_file.read_text()
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", asl))

    assert definition == asl, "the ASL file is inlined verbatim (DefinitionString, not an S3 asset)"
    assert placeholders == set(substitutions), "every placeholder, and only those, is substituted"
    assert placeholders <= SUBSTITUTED_FUNCTIONS.keys()

    # What CloudFormation will do: replace ${Name} by the value; nothing may be left over.
    rendered = definition
    for name, value in substitutions.items():
        rendered = rendered.replace(
            "${" + name + "}", json.dumps(value)[1:-1] if isinstance(value, str) else name
        )
    assert "${" not in rendered
    json.loads(rendered)


def test_each_placeholder_is_the_arn_of_its_function(synth: Synth) -> None:
    functions = synth.functions()
    for name, value in state_machine(synth)["DefinitionSubstitutions"].items():
        folder = SUBSTITUTED_FUNCTIONS[name]
        assert value == {"Fn::GetAtt": [functions[folder][0], "Arn"]}, name


def test_state_machine_is_standard_named_traced_and_logs_everything(synth: Synth) -> None:
    properties = state_machine(synth)
    assert properties["StateMachineType"] == "STANDARD"
    assert properties["StateMachineName"] == "formica-test-job"
    assert properties["TracingConfiguration"] == {"Enabled": True}
    logging = properties["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is True
    (destination,) = logging["Destinations"]
    group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    group = synth.resources[group_id]["Properties"]
    assert group["LogGroupName"] == "/aws/vendedlogs/states/formica-test-job"
    assert group["RetentionInDays"] == 30


def test_state_machine_role_invokes_exactly_its_five_functions(synth: Synth) -> None:
    properties = state_machine(synth)
    role_id = properties["RoleArn"]["Fn::GetAtt"][0]
    functions = synth.functions()
    (invoke,) = synth.statements_granting(role_id, "lambda:InvokeFunction")

    assert invoke["Action"] == "lambda:InvokeFunction"
    assert sorted(resource["Fn::GetAtt"][0] for resource in invoke["Resource"]) == sorted(
        functions[folder][0] for folder in SUBSTITUTED_FUNCTIONS.values()
    )
    trust = synth.resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust[0]["Principal"] == {"Service": "states.amazonaws.com"}
    assert "aws:SourceAccount" in trust[0]["Condition"]["StringEquals"]


def test_http_allowed_networks_reach_the_http_task_function_only(synth: Synth, variant: Synth) -> None:
    def holders(stack: Synth) -> dict[str, str]:
        return {
            folder: properties["Environment"]["Variables"]["FORMICA_HTTP_ALLOWED_NETWORKS"]
            for folder, (_, properties) in stack.functions().items()
            if "FORMICA_HTTP_ALLOWED_NETWORKS" in properties.get("Environment", {}).get("Variables", {})
        }

    # Unset (the default): public addresses only, and nothing to set.
    assert holders(synth) == {}
    assert holders(variant) == {"http_task": "10.0.0.0/8,fd00::/8"}
