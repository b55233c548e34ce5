"""cdk-nag (AwsSolutions) and cfn-lint on the synthesized templates."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.infra.synthesis import Synth

# W3005 "dependency already enforced": CDK adds DependsOn on a function's role and its default
# policy although the function also references the role; harmless and routine for CDK output.
IGNORED_CFN_LINT_RULES = ("W3005",)
MIN_REASON_LENGTH = 30


def test_cdk_nag_reports_nothing_unacknowledged(synth: Synth) -> None:
    assert synth.violations.get("AwsSolutions", []) == []
    assert synth.validation_error is None


def test_cdk_nag_is_clean_with_every_option_on(variant: Synth) -> None:
    # (The variant's looked-up VPC is CDK's dummy "vpc-12345", which only CDK's own template
    # validation warns about; cdk-nag must still be clean.)
    assert variant.violations.get("AwsSolutions", []) == []
    assert variant.validation_error is None


def test_every_acknowledgment_gives_a_reason(synth: Synth) -> None:
    metadata = json.loads((synth.outdir / f"{synth.stack_name}.metadata.json").read_text())
    acknowledged = {
        (path, rule): reason
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule, reason in entry["data"].items()
        if "AwsSolutions" in rule
    }
    assert len(acknowledged) > 10
    for (path, rule), reason in acknowledged.items():
        assert len(reason) >= MIN_REASON_LENGTH, (path, rule, reason)


def test_nag_acknowledges_no_blanket_iam_wildcards(synth: Synth) -> None:
    metadata = json.loads((synth.outdir / f"{synth.stack_name}.metadata.json").read_text())
    rules = {
        rule
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule in entry["data"]
    }
    # Every IAM5 acknowledgment names one finding (a resource or an action), never the whole rule.
    assert not any(rule.endswith("AwsSolutions-IAM5") for rule in rules)


@pytest.mark.parametrize("which", ["synth", "variant"])
def test_cfn_lint_is_clean(which: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synth = request.getfixturevalue(which)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cfnlint",
            "--format",
            "json",
            "--ignore-checks",
            *IGNORED_CFN_LINT_RULES,
            "--",
            str(synthesized.template_file),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], [(f["Rule"]["Id"], f["Message"]) for f in findings]
