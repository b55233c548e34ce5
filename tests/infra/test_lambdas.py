"""Lambdas: one code asset, one layer, python3.12 on arm64, JSON logs, tracing, own log groups."""

from __future__ import annotations

import json
import re
from typing import Any

from formica.settings import FormicaSettings

from cdk.app import FUNCTIONS_DIR
from tests.infra.synthesis import Synth

FOLDERS = {
    "api",
    "authorizer",
    "advance",
    "http_task",
    "shell_task",
    "fork_task",
    "expire_task",
    "shell_sandbox",
    "launch",
    "continue_execution",
    "container_events",
    "reconciler",
    "scheduler",
    "notify",
    "messaging_reply",
}
# Settings every function gets (docs/architecture.md: "Environment of every function").
COMMON_SETTINGS = {
    "FORMICA_TABLE_NAME",
    "FORMICA_BUCKET_NAME",
    "FORMICA_STATE_MACHINE_ARN",
    "FORMICA_ECS_CLUSTER_ARN",
    "FORMICA_CONTAINER_LOG_GROUP",
}
# Protects: ECS's RegisterTaskDefinition/RunTask rate limits, one sweep at a time, and webhook
# receivers from a burst of deliveries. Never on
# the long-running task Lambdas (a throttle there would outlast the ASL's retry budget).
RESERVED_CONCURRENCY = {"launch": 10, "reconciler": 1, "scheduler": 2, "notify": 10}
# Tenants' SHELL scripts run here: no setting of the stack, no tracing (its role writes its logs only).
SANDBOX = "shell_sandbox"


def trusted_functions(synth: Synth) -> dict[str, tuple[str, dict[str, Any]]]:
    return {folder: function for folder, function in synth.functions().items() if folder != SANDBOX}


def test_every_function_folder_is_deployed_once(synth: Synth) -> None:
    assert set(synth.functions()) == FOLDERS


def test_functions_run_python312_on_arm64_with_the_shared_code_and_layer(synth: Synth) -> None:
    functions = synth.functions()
    (layer_id,) = synth.of_type("AWS::Lambda::LayerVersion")
    code_keys = set()
    for folder, (_, properties) in functions.items():
        assert properties["Handler"] == f"{folder}.app.handler"
        assert properties["Runtime"] == "python3.12"
        assert properties["Architectures"] == ["arm64"]
        assert properties["Layers"] == [{"Ref": layer_id}]
        code_keys.add(properties["Code"]["S3Key"])
    assert len(code_keys) == 1, "all functions share the functions/ asset"


def test_layer_targets_the_function_runtime(synth: Synth) -> None:
    (layer,) = synth.of_type("AWS::Lambda::LayerVersion").values()
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def test_functions_trace_and_log_json_to_their_own_log_group(synth: Synth) -> None:
    log_groups = synth.of_type("AWS::Logs::LogGroup")
    used = []
    for folder, (_, properties) in synth.functions().items():
        if folder == SANDBOX:
            assert "TracingConfig" not in properties or properties["TracingConfig"] == {"Mode": "PassThrough"}
        else:
            assert properties["TracingConfig"] == {"Mode": "Active"}
        logging = properties["LoggingConfig"]
        assert logging["LogFormat"] == "JSON"
        assert logging["ApplicationLogLevel"] == "INFO"
        group = logging["LogGroup"]["Ref"]
        assert log_groups[group]["Properties"]["RetentionInDays"] == 30
        used.append(group)
    assert len(set(used)) == len(used)


def test_log_retention_follows_context(variant: Synth) -> None:
    retention = {
        group["Properties"].get("RetentionInDays")
        for group in variant.of_type("AWS::Logs::LogGroup").values()
    }
    assert retention == {90}


def test_settings_are_formica_settings_fields(synth: Synth, variant: Synth) -> None:
    fields = {f"FORMICA_{name.upper()}" for name in FormicaSettings.model_fields}
    stacks = [trusted_functions(synth).items(), trusted_functions(variant).items()]
    for folder, (_, properties) in [function for functions in stacks for function in functions]:
        variables = properties["Environment"]["Variables"]
        assert variables["POWERTOOLS_SERVICE_NAME"] == "formica"
        assert variables.keys() >= COMMON_SETTINGS, folder
        formica = {name for name in variables if name.startswith("FORMICA_")}
        # Every FORMICA_* variable the stack sets is read by the settings model (none is ignored).
        assert formica <= fields, (folder, sorted(formica - fields))


def test_the_api_gets_the_schedule_and_cors_settings(variant: Synth) -> None:
    variables = variant.functions()["api"][1]["Environment"]["Variables"]
    assert {
        "FORMICA_SCHEDULE_GROUP",
        "FORMICA_SCHEDULER_ROLE_ARN",
        "FORMICA_SCHEDULER_FUNCTION_ARN",
        "FORMICA_CORS_ORIGINS",
    } <= set(variables)


def test_state_machine_arn_setting_is_the_deployed_state_machine(synth: Synth) -> None:
    (machine,) = synth.of_type("AWS::StepFunctions::StateMachine").values()
    name = machine["Properties"]["StateMachineName"]
    for _, properties in trusted_functions(synth).values():
        setting = properties["Environment"]["Variables"]["FORMICA_STATE_MACHINE_ARN"]
        # A formatted ARN, not a Ref: continue_execution is invoked by that state machine.
        assert setting["Fn::Join"][1][-1] == f":stateMachine:{name}"


def test_reserved_concurrency_where_it_protects_downstream(synth: Synth, variant: Synth) -> None:
    reserved = {
        folder: properties.get("ReservedConcurrentExecutions")
        for folder, (_, properties) in synth.functions().items()
        if "ReservedConcurrentExecutions" in properties
    }
    assert reserved == RESERVED_CONCURRENCY
    assert not any(
        "ReservedConcurrentExecutions" in properties for _, properties in variant.functions().values()
    ), "reserved_concurrency=false removes every cap"


def test_shell_tasks_get_a_work_root_and_room_in_tmp(synth: Synth) -> None:
    # The scripts run in the sandbox: the work root and the disk are its own.
    _, shell = synth.functions()[SANDBOX]
    assert shell["Environment"]["Variables"]["FORMICA_WORK_ROOT"] == "/tmp"
    assert shell["EphemeralStorage"] == {"Size": 2048}
    assert shell["Timeout"] == 900
    _, trusted = synth.functions()["shell_task"]
    assert trusted["Timeout"] == 900, "it waits for the sandbox"


def test_a_function_without_its_handler_file_is_flagged(synth: Synth) -> None:
    metadata = json.loads((synth.outdir / f"{synth.stack_name}.metadata.json").read_text())
    warned = {
        match.group(1)
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == "aws:cdk:warning"
        and (match := re.match(r"functions/(\w+)/app.py does not exist", str(entry["data"])))
    }
    assert warned == {folder for folder in FOLDERS if not (FUNCTIONS_DIR / folder / "app.py").is_file()}


def test_the_shell_sandbox_knows_no_setting_of_the_stack(synth: Synth) -> None:
    # Given the function tenants' SHELL scripts run in
    _, sandbox = synth.functions()[SANDBOX]
    variables = sandbox["Environment"]["Variables"]
    # Then its environment names no table, bucket, state machine or cluster, and it scrubs itself
    assert not {name for name in variables if name.startswith("FORMICA_")} - {
        "FORMICA_WORK_ROOT",
        "FORMICA_SANDBOX_SCRUB",
    }
    assert variables["FORMICA_SANDBOX_SCRUB"] == "all"
    assert sandbox["EphemeralStorage"] == {"Size": 2048}
    # And the shell-task function is told its name
    _, shell = synth.functions()["shell_task"]
    assert shell["Environment"]["Variables"]["FORMICA_SHELL_SANDBOX_FUNCTION"] == {
        "Ref": synth.functions()[SANDBOX][0]
    }
