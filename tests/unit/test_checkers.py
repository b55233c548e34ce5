"""A missing external checker (asl-validator, cfn-lint) fails its test with the fix, never skips
silently; only FORMICA_ALLOW_MISSING_CHECKERS=1 turns that into a skip, which still names the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.checkers import OPT_OUT, asl_validator_installed, cfn_lint_installed, require_checker


def test_a_missing_checker_fails_with_the_command_that_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPT_OUT, raising=False)
    with pytest.raises(pytest.fail.Exception) as failed:
        require_checker("asl-validator", present=False, fix="`make install` (or `npm install`)")
    assert "asl-validator is not installed: run `make install` (or `npm install`)" in str(failed.value)
    assert OPT_OUT in str(failed.value)


@pytest.mark.parametrize("value", ["0", "", "true"])
def test_only_the_exact_opt_out_skips(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(OPT_OUT, value)
    with pytest.raises(pytest.fail.Exception):
        require_checker("cfn-lint", present=False, fix="`make install`")


def test_the_opt_out_skips_and_still_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OPT_OUT, "1")
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_checker("cfn-lint", present=False, fix="`make install`")
    assert "run `make install`" in str(skipped.value)


def test_a_present_checker_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPT_OUT, raising=False)
    require_checker("cfn-lint", present=True, fix="`make install`")


def test_the_asl_validator_is_looked_for_in_the_checkouts_node_modules(tmp_path: Path) -> None:
    assert asl_validator_installed(tmp_path) is False
    (tmp_path / "node_modules" / "asl-validator").mkdir(parents=True)
    # (npx runs it: True only where npx is on PATH as well, which `make install` needs anyway.)
    assert asl_validator_installed(tmp_path) is (shutil.which("npx") is not None)


def test_cfn_lint_is_found_in_this_environment() -> None:
    # `make install` installs the dev extra, cfn-lint included: this suite's own environment has it.
    assert cfn_lint_installed()
