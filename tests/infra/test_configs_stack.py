"""Secret configs in the stack: the KMS key (rotation, removal policy), the settings of the functions
that use it, and IAM: the API writes the parameters under the stage's prefix, the functions that
run or settle attempts read them, nobody else touches them, and the key is used through SSM only."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from formica.settings import get_settings, reset_settings
from formica.store.configs import SsmConfigSecretStore
from moto import mock_aws

from cdk.constructs.configs import READERS, WRITER
from tests.infra.synthesis import Synth, actions_of, spell

PARAMETERS = "arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/formica/test/configs/*"
READ = {"ssm:GetParameters"}
WRITE = {"ssm:PutParameter", "ssm:DeleteParameter"}


def key_of(synth: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = synth.of_type("AWS::KMS::Key").items()
    return found


def statements(synth: Synth, folder: str, service: str) -> list[dict[str, Any]]:
    return [
        statement
        for statement in synth.statements_of_role(synth.role_of(folder))
        if any(action.startswith(service) for action in actions_of(statement))
    ]


def test_the_key_rotates_and_is_destroyed_with_a_stack_without_deletion_protection(synth: Synth) -> None:
    _, key = key_of(synth)
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"]["PendingWindowInDays"] == 30
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Delete"
    (alias,) = synth.of_type("AWS::KMS::Alias").values()
    assert alias["Properties"]["AliasName"] == "alias/formica-test-configs"
    assert alias["Properties"]["TargetKeyId"] == {"Fn::GetAtt": [key_of(synth)[0], "Arn"]}


def test_the_key_is_retained_with_deletion_protection(variant: Synth) -> None:
    _, key = key_of(variant)
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    assert key["Properties"]["EnableKeyRotation"] is True


def test_the_functions_that_use_secrets_are_told_the_prefix_and_the_key_and_no_other(synth: Synth) -> None:
    key_id, _ = key_of(synth)
    users = set()
    for folder, (_, properties) in synth.functions().items():
        environment = properties.get("Environment", {}).get("Variables", {})
        if "FORMICA_CONFIGS_KMS_KEY_ID" not in environment:
            assert "FORMICA_CONFIGS_PARAMETER_PREFIX" not in environment, folder
            continue
        users.add(folder)
        assert environment["FORMICA_CONFIGS_PARAMETER_PREFIX"] == "/formica/test/configs"
        assert environment["FORMICA_CONFIGS_KMS_KEY_ID"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert users == set(READERS) | {WRITER}
    assert {"http_task", "shell_task", "launch", "container_events", "reconciler", "api", "notify"} <= users
    assert not users & {"shell_sandbox", "authorizer", "advance"}


@pytest.mark.parametrize("folder", sorted({*READERS, WRITER}))
def test_parameters_are_read_by_the_readers_and_written_by_the_api_under_the_prefix_only(
    synth: Synth, folder: str
) -> None:
    (granted,) = statements(synth, folder, "ssm:")
    assert actions_of(granted) == (READ | WRITE if folder == WRITER else READ)
    assert [spell(granted["Resource"])] == [PARAMETERS]
    assert "Condition" not in granted


@pytest.mark.parametrize("folder", sorted({*READERS, WRITER}))
def test_the_key_is_used_on_this_key_only_and_through_ssm_only(synth: Synth, folder: str) -> None:
    key_id, _ = key_of(synth)
    (granted,) = statements(synth, folder, "kms:")
    assert actions_of(granted) == ({"kms:Decrypt", "kms:Encrypt"} if folder == WRITER else {"kms:Decrypt"})
    assert granted["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert granted["Condition"] == {
        "StringEquals": {
            "kms:ViaService": {"Fn::Join": ["", ["ssm.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
        }
    }


def test_no_other_function_holds_ssm_or_kms(synth: Synth) -> None:
    for folder in set(synth.functions()) - set(READERS) - {WRITER}:
        assert statements(synth, folder, "ssm:") == [], folder
        assert statements(synth, folder, "kms:") == [], folder


def test_the_stage_names_the_prefix_and_the_region_the_service(variant: Synth) -> None:
    (granted,) = statements(variant, "api", "ssm:")
    assert spell(granted["Resource"]) == "arn:aws:ssm:eu-west-1:123456789012:parameter/formica/prod/configs/*"
    (key_grant,) = statements(variant, "launch", "kms:")
    assert key_grant["Condition"] == {"StringEquals": {"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}}
    (_, api) = variant.functions()["api"]
    assert api["Environment"]["Variables"]["FORMICA_CONFIGS_PARAMETER_PREFIX"] == "/formica/prod/configs"


def test_the_settings_the_stack_sets_are_the_ones_the_code_reads_and_passes_to_ssm(
    synth: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: the API function's environment as deployed (its tokens resolved to sample values)
    key_id, _ = key_of(synth)
    key_arn = "arn:aws:kms:eu-west-1:123456789012:key/0b5c6a2e-1111-2222-3333-444455556666"
    for name in [name for name in os.environ if name.startswith("FORMICA_")]:
        monkeypatch.delenv(name)
    for name, value in synth.functions()["api"][1]["Environment"]["Variables"].items():
        monkeypatch.setenv(name, key_arn if value == {"Fn::GetAtt": [key_id, "Arn"]} else str(value))
    reset_settings()
    try:
        settings = get_settings()
    finally:
        reset_settings()

    # When: a secret config is stored with the settings read (moto accepts any key id: assert it)
    with mock_aws():
        client = boto3.client("ssm", region_name="eu-west-1")
        store = SsmConfigSecretStore(settings.configs_parameter_prefix, settings.configs_kms_key_id, client)
        reference = store.reference("acme", None, "ApiToken")
        store.put(reference, "a-secret-value")
        (parameter,) = client.describe_parameters()["Parameters"]

    # Then: under the prefix the policies grant, a SecureString encrypted with the stack's key
    assert reference == "/formica/test/configs/acme/org/ApiToken"
    assert reference.startswith(PARAMETERS.split(":parameter", 1)[1].removesuffix("*"))
    assert parameter["Type"] == "SecureString"
    assert parameter["KeyId"] == key_arn
