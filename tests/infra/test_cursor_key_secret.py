"""The cursor key: one generated secret, read by the API function alone; nothing else reads Secrets
Manager."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.synthesis import Synth, actions_of


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def _every_statement(synth: Synth) -> list[tuple[str, dict[str, Any]]]:
    """(policy or role logical id, statement) of every identity policy in the template."""
    found = [
        (logical_id, statement)
        for logical_id, policy in synth.of_type("AWS::IAM::Policy").items()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    for logical_id, role in synth.of_type("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found.extend((logical_id, statement) for statement in policy["PolicyDocument"]["Statement"])
    return found


def _cursor_secret(synth: Synth) -> str:
    (logical_id,) = synth.of_type("AWS::SecretsManager::Secret")
    return logical_id


def test_the_stack_generates_the_cursor_key_and_keeps_it_out_of_the_template(synth: Synth) -> None:
    secret = synth.resources[_cursor_secret(synth)]["Properties"]

    assert "SecretString" not in secret
    assert secret["GenerateSecretString"]["PasswordLength"] >= 32
    assert "CursorKey" not in json.dumps(synth.template.get("Outputs", {}))


def test_only_the_api_function_is_told_where_the_key_is(synth: Synth) -> None:
    secret = _cursor_secret(synth)
    named = {
        folder: properties.get("Environment", {}).get("Variables", {}).get("FORMICA_CURSOR_KEY_SECRET")
        for folder, (_, properties) in synth.functions().items()
    }

    assert named.pop("api") == {"Ref": secret}
    assert set(named.values()) == {None}


def test_the_api_role_reads_exactly_that_secret_and_nothing_else_in_secrets_manager(synth: Synth) -> None:
    secret = _cursor_secret(synth)
    api_role = synth.role_of("api")
    api_policies = {
        logical_id
        for logical_id, policy in synth.of_type("AWS::IAM::Policy").items()
        if {"Ref": api_role} in policy["Properties"].get("Roles", [])
    }

    granting = [
        (owner, statement)
        for owner, statement in _every_statement(synth)
        if any(
            action == "*" or action.lower().startswith("secretsmanager:") for action in actions_of(statement)
        )
        # The webhook signing secrets are other secrets, by their own prefix (test_notifications.py).
        and "/webhooks/*" not in json.dumps(statement["Resource"])
    ]

    assert [owner in api_policies for owner, _ in granting] == [True]
    ((_, statement),) = granting
    assert statement["Effect"] == "Allow"
    assert actions_of(statement) == {"secretsmanager:GetSecretValue"}
    assert _resources(statement) == [{"Ref": secret}]
    assert "Condition" not in statement
    for role in synth.of_type("AWS::IAM::Role").values():
        managed = json.dumps(role["Properties"].get("ManagedPolicyArns", []))
        assert "SecretsManager" not in managed
