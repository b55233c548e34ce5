"""Synthesize the Formica stack and read what came out (template, cdk-nag report).

The layer asset is ``layers/formica`` (the library alone): template tests need no pip download.
Bundling is skipped. The real ASL file is used when it exists; until it does, a minimal ASL with
every placeholder is written to a temporary directory (never to cdk/statemachine/).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Environment
from aws_cdk.assertions import Template

from cdk.app import DEFINITION_FILE, FEATURE_FLAGS, LIBRARY_LAYER_DIR, build_app

PLACEHOLDER_ASL = {
    "Comment": "test stand-in for cdk/statemachine/job.asl.json",
    "StartAt": "Advance",
    "States": {
        "Advance": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${AdvanceFunctionArn}", "Payload.$": "$"},
            "Next": "Http",
        },
        "Http": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${HttpTaskFunctionArn}", "Payload.$": "$"},
            "Next": "Shell",
        },
        "Shell": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${ShellTaskFunctionArn}", "Payload.$": "$"},
            "Next": "Launch",
        },
        "Launch": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "${LaunchFunctionArn}", "Payload": {"token.$": "$$.Task.Token"}},
            "Next": "Continue",
        },
        "Continue": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${ContinueFunctionArn}", "Payload.$": "$"},
            "End": True,
        },
    },
}

DEFAULT_CONTEXT: dict[str, object] = {"stage": "test"}
VARIANT_VPC_LOOKUP = (
    "vpc-provider:account=123456789012:filter.vpc-id=vpc-0123456789abcdef0:region=eu-west-1"
    ":returnAsymmetricSubnets=true"
)
# Everything optional switched on; context values as the CLI passes them (strings).
VARIANT_CONTEXT: dict[str, object] = {
    "stage": "prod",
    "vpc_id": "vpc-0123456789abcdef0",
    "eks_cluster_name": "jobs",
    "cors_origins": "https://app.example.com",
    "deletion_protection": "true",
    "log_retention_days": "90",
    "artifact_expiry_days": "7",
    "reserved_concurrency": "false",
    "http_allowed_networks": "10.0.0.0/8, fd00::/8",
    "notify_sender": "builds@example.com",
    "oldest_started_alarm_seconds": "1800",
    # The answer of the existing VPC's lookup, as `cdk synth` caches it in cdk.context.json; without
    # it CDK synthesizes a dummy "vpc-12345" that cfn-lint rightly rejects (E1151).
    VARIANT_VPC_LOOKUP: {
        "vpcId": "vpc-0123456789abcdef0",
        "vpcCidrBlock": "10.20.0.0/16",
        "ownerAccountId": "123456789012",
        "availabilityZones": [],
        "subnetGroups": [
            {
                "name": "Public",
                "type": "Public",
                "subnets": [
                    {
                        "subnetId": f"subnet-0000000000000000{index}",
                        "cidr": f"10.20.{index}.0/24",
                        "availabilityZone": f"eu-west-1{zone}",
                        "routeTableId": f"rtb-0000000000000000{index}",
                    }
                    for index, zone in ((1, "a"), (2, "b"))
                ],
            },
            {
                "name": "Private",
                "type": "Private",
                "subnets": [
                    {
                        "subnetId": f"subnet-0000000000000001{index}",
                        "cidr": f"10.20.1{index}.0/24",
                        "availabilityZone": f"eu-west-1{zone}",
                        "routeTableId": f"rtb-0000000000000001{index}",
                    }
                    for index, zone in ((1, "a"), (2, "b"))
                ],
            },
        ],
    },
}
VARIANT_ENV = Environment(account="123456789012", region="eu-west-1")


@dataclass
class Synth:
    """One synthesized stack: its template, the validation (cdk-nag) report and the files."""

    stack_name: str
    outdir: Path
    template_file: Path
    definition_file: Path
    template: dict[str, Any]
    validation_error: str | None
    # Validation plugin name ("AwsSolutions" is cdk-nag) -> its unacknowledged findings.
    violations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def assertions(self) -> Template:
        return Template.from_json(self.template)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template["Resources"])

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {key: value for key, value in self.resources.items() if value["Type"] == resource_type}

    def functions(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """``{folder: (logical id, properties)}`` of every Lambda function built from functions/."""
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        for logical_id, resource in self.of_type("AWS::Lambda::Function").items():
            handler = resource["Properties"].get("Handler", "")
            if handler.endswith(".app.handler"):
                found[handler.split(".")[0]] = (logical_id, resource["Properties"])
        return found

    def role_of(self, folder: str) -> str:
        """The logical id of the role a function runs as."""
        role = self.functions()[folder][1]["Role"]
        return str(role["Fn::GetAtt"][0])

    def statements_of_role(self, role_logical_id: str) -> list[dict[str, Any]]:
        """Every statement of every inline policy attached to the role."""
        statements: list[dict[str, Any]] = []
        for resource in self.of_type("AWS::IAM::Policy").values():
            roles = [entry.get("Ref") for entry in resource["Properties"].get("Roles", [])]
            if role_logical_id in roles:
                statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
        return statements

    def actions_of_role(self, role_logical_id: str) -> set[str]:
        actions: set[str] = set()
        for statement in self.statements_of_role(role_logical_id):
            actions.update(actions_of(statement))
        return actions

    def statements_granting(self, role_logical_id: str, action: str) -> list[dict[str, Any]]:
        return [
            statement
            for statement in self.statements_of_role(role_logical_id)
            if action in actions_of(statement)
        ]


def spell(value: Any) -> str:
    """A CloudFormation string value, with Ref/GetAtt as <...> (as cdk-nag spells them)."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(spell(part) for part in parts)
    raise AssertionError(f"unexpected value {value!r}")


def resources_of(statement: dict[str, Any]) -> list[str]:
    """A policy statement's resources, each spelled as ``spell`` does."""
    resource = statement["Resource"]
    return [spell(item) for item in (resource if isinstance(resource, list) else [resource])]


def actions_of(statement: dict[str, Any]) -> set[str]:
    """A policy statement's actions (CloudFormation allows one string or a list)."""
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def definition_file(tmp_root: Path) -> Path:
    if DEFINITION_FILE.is_file():
        return DEFINITION_FILE
    stand_in = tmp_root / "job.asl.json"
    stand_in.write_text(json.dumps(PLACEHOLDER_ASL, indent=2))
    return stand_in


def synthesize(
    outdir: Path, asl: Path, context: dict[str, object], environment: Environment | None = None
) -> Synth:
    app = App(
        context={**FEATURE_FLAGS, "aws:cdk:bundling-stacks": [], **context},
        outdir=str(outdir),
    )
    stack = build_app(app, layer_dir=LIBRARY_LAYER_DIR, definition_file=asl, environment=environment)
    error: str | None = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings fail synthesis; the report says which
        error = str(exc)
    template_file = outdir / f"{stack.stack_name}.template.json"
    report_file = outdir / "validation-report.json"
    violations: dict[str, list[dict[str, Any]]] = {}
    if report_file.is_file():
        for plugin in json.loads(report_file.read_text()).get("pluginReports", []):
            violations.setdefault(plugin["pluginName"], []).extend(plugin.get("violations", []))
    return Synth(
        stack_name=stack.stack_name,
        outdir=outdir,
        template_file=template_file,
        definition_file=asl,
        template=json.loads(template_file.read_text()),
        validation_error=error,
        violations=violations,
    )
