"""Retention in the stack: the table's TTL on ``expires_at`` and every function's retention setting
follow the same ``artifact_expiry_days`` value as the artifacts bucket's lifecycle rule."""

from __future__ import annotations

from typing import Any

from tests.infra.synthesis import Synth


def _expiry_days(of: Synth) -> int:
    for resource in of.of_type("AWS::S3::Bucket").values():
        rules = resource["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
        for rule in rules:
            if rule.get("Id") == "expire-artifacts-and-task-logs":
                return int(rule["ExpirationInDays"])
    raise AssertionError("no artifacts lifecycle rule")


def _table(of: Synth) -> dict[str, Any]:
    (table,) = of.of_type("AWS::DynamoDB::Table").values()
    return dict(table["Properties"])


def test_items_expire_with_the_artifacts(synth: Synth, variant: Synth) -> None:
    for of, days in ((synth, 30), (variant, 7)):
        assert _table(of)["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert _expiry_days(of) == days
        for folder, (_, properties) in of.functions().items():
            variables = properties["Environment"]["Variables"]
            if folder == "shell_sandbox":  # holds no data credentials: writes no item
                assert "FORMICA_RETENTION_DAYS" not in variables
                continue
            assert variables["FORMICA_RETENTION_DAYS"] == str(days), folder
