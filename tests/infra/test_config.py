"""Context parsing: what `-c key=value` (strings) and cdk.json (JSON values) may say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import aws_logs as logs

from cdk.config import ContextError, DeploymentConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def config(**context: object) -> DeploymentConfig:
    return DeploymentConfig.from_context(context.get)


def test_defaults_when_nothing_is_set() -> None:
    assert config() == DeploymentConfig()
    assert config().stack_name == "Formica-dev"
    assert config().log_retention is logs.RetentionDays.ONE_MONTH


def test_cdk_json_context_is_valid_and_matches_the_defaults() -> None:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    assert config(**context) == DeploymentConfig()


def test_cli_strings_are_parsed() -> None:
    parsed = config(
        stage="prod",
        vpc_id="vpc-0abc",
        eks_cluster_name="jobs",
        log_retention_days="365",
        cors_origins="https://a.example.com, http://localhost:3000/",
        deletion_protection="true",
        artifact_expiry_days="14",
        reserved_concurrency="false",
    )
    assert parsed == DeploymentConfig(
        stage="prod",
        vpc_id="vpc-0abc",
        eks_cluster_name="jobs",
        log_retention_days=365,
        cors_origins=("https://a.example.com", "http://localhost:3000"),
        deletion_protection=True,
        artifact_expiry_days=14,
        reserved_concurrency=False,
    )
    assert parsed.log_retention is logs.RetentionDays.ONE_YEAR


def test_json_lists_and_booleans_are_accepted() -> None:
    parsed = config(cors_origins='["*"]', deletion_protection=True, vpc_id="")
    assert parsed.cors_origins == ("*",)
    assert parsed.deletion_protection is True
    assert parsed.vpc_id is None
    assert config(cors_origins=["https://x.example.com"]).cors_origins == ("https://x.example.com",)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("stage", "Prod", "stage 'Prod'"),
        ("stage", "a_b", "stage 'a_b'"),
        ("log_retention_days", "31", "CloudWatch Logs accepts 1, 3, 5"),
        ("log_retention_days", "month", "whole number"),
        ("deletion_protection", "maybe", "expected true or false"),
        ("artifact_expiry_days", "0", "at least 1"),
        ("cors_origins", "example.com", "scheme://host"),
        ("notify_sender", "builds", "expected an email address"),
        ("notify_sender", "Builds <builds@example.com>", "expected an email address"),
        ("oldest_started_alarm_seconds", "60", "at least 120"),
        ("oldest_started_alarm_seconds", "15m", "whole number of seconds"),
    ],
)
def test_malformed_values_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ContextError, match=key) as raised:
        config(**{key: value})
    assert message in str(raised.value)


def test_every_context_key_is_documented_and_has_a_cdk_json_default() -> None:
    keys = set(DeploymentConfig.__dataclass_fields__)
    deploy_doc = (REPO_ROOT / "docs" / "deploy.md").read_text()
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    for key in keys:
        assert f"| `{key}` |" in deploy_doc, f"docs/deploy.md context table lacks {key}"
    assert set(context) <= keys


def test_notify_sender_is_an_address_and_unset_means_email_off() -> None:
    assert config(notify_sender=" builds@example.com ").notify_sender == "builds@example.com"
    assert config(notify_sender="").notify_sender is None
    assert config().notify_sender is None


def test_http_allowed_networks_are_cidrs_normalized() -> None:
    assert config().http_allowed_networks == ()
    assert config(http_allowed_networks="10.0.0.0/8, fd00::/8,127.0.0.2").http_allowed_networks == (
        "10.0.0.0/8",
        "fd00::/8",
        "127.0.0.2/32",
    )
    assert config(http_allowed_networks='["100.64.0.0/10"]').http_allowed_networks == ("100.64.0.0/10",)
    assert config(http_allowed_networks=["10.1.0.0/16"]).http_allowed_networks == ("10.1.0.0/16",)
    assert config(http_allowed_networks=[]).http_allowed_networks == ()


@pytest.mark.parametrize("value", ["10.0.0.1/8", "10.0.0.0/33", "intranet", "[unclosed"])
def test_malformed_http_allowed_networks_name_the_key(value: str) -> None:
    with pytest.raises(ContextError, match="http_allowed_networks"):
        config(http_allowed_networks=value)


def test_the_oldest_started_alarm_threshold_defaults_to_15_minutes() -> None:
    assert config().oldest_started_alarm_seconds == 900
    assert config(oldest_started_alarm_seconds="1800").oldest_started_alarm_seconds == 1800
    assert config(oldest_started_alarm_seconds=120).oldest_started_alarm_seconds == 120
