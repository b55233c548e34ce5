"""cdk-nag (AwsSolutions) and cfn-lint on the synthesized templates."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.checkers import cfn_lint_installed, require_checker
from tests.infra.synthesis import Synth

# W3005 "dependency already enforced": CDK adds DependsOn on a function's role and its default
# policy although the function also references the role; harmless and routine for CDK output.
IGNORED_CFN_LINT_RULES = ("W3005",)
MIN_REASON_LENGTH = 30


def test_cdk_nag_reports_nothing_unacknowledged(synth: Synth) -> None:
    assert synth.violations.get("AwsSolutions", []) == []
    assert synth.validation_error is None


def test_cdk_nag_is_clean_with_every_option_on(variant: Synth) -> None:
    # (The variant's VPC lookup is answered from context, as cdk.context.json would: synthesis.py.)
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


# The console script's entry point: cfn-lint has no ``python -m cfnlint`` (that only prints an
# error, which a bare ``json.loads(stdout or "[]")`` once read as a clean template).
CFN_LINT = "import sys; from cfnlint.runner import main; sys.exit(main())"
# cfn-lint's exit code is a bit mask of the levels it found (2 errors, 4 warnings, 8 informational).
CFN_LINT_FINDING_CODES = frozenset(range(0, 16, 2))


@pytest.mark.parametrize("which", ["synth", "variant"])
def test_cfn_lint_is_clean(which: str, request: pytest.FixtureRequest) -> None:
    require_checker("cfn-lint", present=cfn_lint_installed(), fix="`make install`")
    synthesized: Synth = request.getfixturevalue(which)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            CFN_LINT,
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
    # cfn-lint ran and answered (an empty list included): anything else is not a clean template.
    assert result.returncode in CFN_LINT_FINDING_CODES and result.stdout.strip(), result.stderr[-2000:]
    findings = json.loads(result.stdout)
    assert findings == [], [(f["Rule"]["Id"], f["Message"]) for f in findings]
