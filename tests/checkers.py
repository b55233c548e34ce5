"""The external checkers the suite runs: asl-validator (npm) and cfn-lint (PyPI).

A missing checker fails its test with the command that installs it, so a run that lacks one can
never look green. ``make test`` installs both first (``make install``: pip, then ``npm install``).
Setting ``FORMICA_ALLOW_MISSING_CHECKERS=1`` turns those failures into skips, for a run that
knowingly goes without them (a machine with no Node.js, say); the skip still names the fix.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPT_OUT = "FORMICA_ALLOW_MISSING_CHECKERS"


def require_checker(name: str, *, present: bool, fix: str) -> None:
    """Fail (or, with ``FORMICA_ALLOW_MISSING_CHECKERS=1``, skip) unless the checker is present.

    Parameters
    ----------
    name
        What is missing, as the message should name it.
    present
        Whether it was found.
    fix
        The command that installs it, as the message should say it (``"`make install`"``).
    """
    if present:
        return
    message = f"{name} is not installed: run {fix}; set {OPT_OUT}=1 only to skip this check knowingly"
    if os.environ.get(OPT_OUT) == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


def asl_validator_installed(root: Path = ROOT) -> bool:
    """npx and the asl-validator package of this checkout (``npm install``)."""
    return shutil.which("npx") is not None and (root / "node_modules" / "asl-validator").is_dir()


def cfn_lint_installed() -> bool:
    """cfn-lint in this interpreter's environment (``make install``)."""
    return importlib.util.find_spec("cfnlint") is not None
