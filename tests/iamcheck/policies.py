"""Each function's IAM policy from the synthesized template, its resources resolved to ARNs.

``Fn::GetAtt``, ``Ref``, ``Fn::Join``, ``Fn::Select``/``Fn::Split`` and the pseudo parameters are
resolved in moto's account and region; the stack's table, artifacts bucket and job state machine
become the placeholders ``<TABLE>``, ``<BUCKET>`` and ``<STATEMACHINE>``, and so do its ECS cluster,
task family prefix, delivery queue, event bus and the name prefixes of secret configs and webhook
secrets (the recorder writes the tests' names the same way: ``recorder.canonical``); a function's
ARN is its local name ``formica-<folder>``. A resource
that does not resolve makes its statement grant nothing (reported by ``FunctionPolicy.unresolved``):
the check may then fail where IAM would allow, never pass where it would deny.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from tests.iamcheck.recorder import (
    ACCOUNT,
    BUS_PLACEHOLDER,
    CLUSTER_PLACEHOLDER,
    CONFIGS_PLACEHOLDER,
    FAMILY_PLACEHOLDER,
    NOTIFY_QUEUE_PLACEHOLDER,
    WEBHOOKS_PLACEHOLDER,
    Call,
)

REGION = "us-east-1"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
}


class UnresolvedReferenceError(ValueError):
    """A template value this module cannot turn into an ARN."""


@dataclass
class Statement:
    """One statement, its resources resolved; its condition is kept as written and not evaluated
    here (``FunctionPolicy.allows``); moto's check leaves conditioned statements out."""

    effect: str
    actions: list[str]
    resources: list[str]
    condition: dict[str, Any] | None = None

    def matches(self, call: Call) -> bool:
        action = any(fnmatch.fnmatchcase(call.action.lower(), pattern.lower()) for pattern in self.actions)
        return action and any(_arn_match(pattern, call.resource) for pattern in self.resources)


@dataclass
class FunctionPolicy:
    folder: str
    statements: list[Statement] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)

    def allows(self, call: Call) -> bool:
        """IAM's rule: an explicit Deny wins, else some Allow must match."""
        if any(s.effect == "Deny" and s.matches(call) for s in self.statements):
            return False
        return any(s.effect == "Allow" and s.matches(call) for s in self.statements)


def _arn_match(pattern: str, resource: str) -> bool:
    # IAM wildcards: * any run of characters (across ':' and '/'), ? one character.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, resource) is not None


class Resolver:
    """Resolves intrinsic functions of one template."""

    def __init__(self, template: dict[str, Any], state_machine_name: str) -> None:
        self.resources: dict[str, dict[str, Any]] = template["Resources"]
        self.state_machine_name = state_machine_name
        # Names under prefixes the stack tells its functions: the secret configs' parameters, Launch's
        # task definition families, the webhook signing secrets.
        self.configs_prefixes = self._settings("FORMICA_CONFIGS_PARAMETER_PREFIX")
        self.family_prefixes = self._settings("FORMICA_ECS_TASK_FAMILY_PREFIX")
        self.webhook_prefixes = self._settings("FORMICA_WEBHOOK_SECRET_PREFIX")
        # The notify function's delivery queue, by the reference its URL setting makes.
        self.notify_queues = {
            str(url["Ref"])
            for resource in self.resources.values()
            if isinstance(url := self._environment(resource).get("FORMICA_NOTIFY_QUEUE_URL"), dict)
            and "Ref" in url
        }

    @staticmethod
    def _environment(resource: dict[str, Any]) -> dict[str, Any]:
        variables: dict[str, Any] = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        return variables

    def _settings(self, name: str) -> set[str]:
        """The literal values of one setting across the functions."""
        return {
            value
            for resource in self.resources.values()
            if isinstance(value := self._environment(resource).get(name), str)
        }

    def _function_name(self, logical_id: str) -> str:
        handler = self.resources[logical_id]["Properties"].get("Handler", "")
        if not handler.endswith(".app.handler"):
            raise UnresolvedReferenceError(f"function {logical_id} is not one of functions/")
        return "formica-" + handler.split(".")[0].replace("_", "-")

    def _name(self, logical_id: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise UnresolvedReferenceError(f"no resource {logical_id}")
        kind = resource["Type"]
        if kind == "AWS::DynamoDB::Table":
            return "<TABLE>"
        if kind == "AWS::S3::Bucket":
            return "<BUCKET>" if "ArtifactsBucket" in logical_id else f"<{logical_id}>"
        if kind == "AWS::Lambda::Function":
            return self._function_name(logical_id)
        if kind == "AWS::ECS::Cluster":
            return CLUSTER_PLACEHOLDER
        if kind == "AWS::Events::EventBus":
            return BUS_PLACEHOLDER
        if kind == "AWS::SQS::Queue" and logical_id in self.notify_queues:
            return NOTIFY_QUEUE_PLACEHOLDER
        return f"<{logical_id}>"

    def _arn(self, logical_id: str) -> str:
        kind = self.resources.get(logical_id, {}).get("Type")
        name = self._name(logical_id)
        arns = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:"
            + "<STATEMACHINE>",
            "AWS::SecretsManager::Secret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-??????",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
            "AWS::ECS::Cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
            "AWS::Events::EventBus": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}",
            "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{name}",
        }
        if kind not in arns:
            raise UnresolvedReferenceError(f"the ARN of {logical_id} ({kind})")
        return arns[kind]

    def value(self, node: Any) -> str:
        if isinstance(node, str):
            for prefix in self.configs_prefixes:
                node = node.replace(f":parameter{prefix}/", f":parameter{CONFIGS_PLACEHOLDER}/")
            for prefix in self.family_prefixes:
                node = node.replace(f":task-definition/{prefix}", f":task-definition/{FAMILY_PLACEHOLDER}")
            for prefix in self.webhook_prefixes:
                node = node.replace(f":secret:{prefix}", f":secret:{WEBHOOKS_PLACEHOLDER}")
            return node.replace(self.state_machine_name, "<STATEMACHINE>")
        if not isinstance(node, dict) or len(node) != 1:
            raise UnresolvedReferenceError(f"{node!r}")
        ((function, argument),) = node.items()
        if function == "Ref":
            if argument in PSEUDO:
                return PSEUDO[argument]
            kind = self.resources.get(argument, {}).get("Type")
            if kind in ("AWS::StepFunctions::StateMachine", "AWS::SecretsManager::Secret", "AWS::SQS::Queue"):
                return self._arn(argument) if kind != "AWS::SQS::Queue" else f"https://sqs/{argument}"
            return self._name(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument
            if attribute == "Arn":
                return self._arn(logical_id)
            raise UnresolvedReferenceError(f"Fn::GetAtt {logical_id}.{attribute}")
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(self.value(part) for part in parts)
        if function == "Fn::Select":
            index, listed = argument
            return self._list(listed)[int(index)]
        raise UnresolvedReferenceError(f"{function}")

    def _list(self, node: Any) -> list[str]:
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if isinstance(node, dict) and "Fn::Split" in node:
            separator, text = node["Fn::Split"]
            return self.value(text).split(separator)
        raise UnresolvedReferenceError(f"{node!r}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_policies(template: dict[str, Any], state_machine_name: str) -> dict[str, FunctionPolicy]:
    """``{folder: FunctionPolicy}`` for every function built from functions/ in ``template``."""
    resolver = Resolver(template, state_machine_name)
    resources = template["Resources"]
    policies: dict[str, FunctionPolicy] = {}
    for properties in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function"):
        handler = properties.get("Handler", "")
        if not handler.endswith(".app.handler"):
            continue
        folder = handler.split(".")[0]
        role = properties["Role"]["Fn::GetAtt"][0]
        policy = FunctionPolicy(folder)
        for resource in resources.values():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            if role not in [entry.get("Ref") for entry in resource["Properties"].get("Roles", [])]:
                continue
            for raw in resource["Properties"]["PolicyDocument"]["Statement"]:
                resolved: list[str] = []
                for item in _as_list(raw.get("Resource", [])):
                    try:
                        resolved.append(resolver.value(item))
                    except UnresolvedReferenceError as exc:
                        policy.unresolved.append(f"{raw.get('Action')}: {exc}")
                policy.statements.append(
                    Statement(raw["Effect"], _as_list(raw.get("Action", [])), resolved, raw.get("Condition"))
                )
        policies[folder] = policy
    return policies


def denied(calls: list[Call], policies: dict[str, FunctionPolicy]) -> list[Call]:
    """The calls their function's policy does not allow (a function without a policy allows none)."""
    return [
        call for call in calls if call.function not in policies or not policies[call.function].allows(call)
    ]
