"""Session-wide hooks for every suite: the IAM cross-check's recorder (tests/iamcheck).

Every AWS operation a Formica function makes while a test runs its handler in-process is recorded
(tests/iamcheck/recorder.py); tests/iamcheck/test_iam_crosscheck.py, moved to the end of the run,
checks each against that function's synthesized policy. With ``FORMICA_IAM_RECORD=<file>`` the
session also writes what it recorded to that file (the cross-check's own run of a suite subset).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.iamcheck import recorder

CROSSCHECK_MODULE = "test_iam_crosscheck.py"
RECORDING_SUITES = ("tests/integration/", "tests/workflow/")


def pytest_configure(config: pytest.Config) -> None:
    recorder.install()


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    # The cross-check reads what the suites before it recorded: it runs last.
    last = [item for item in items if item.path.name == CROSSCHECK_MODULE]
    if last:
        items[:] = [item for item in items if item.path.name != CROSSCHECK_MODULE] + last
    root = str(config.rootpath)
    recorder.SESSION_RECORDS = any(
        str(item.path).removeprefix(root + "/").startswith(RECORDING_SUITES) for item in items
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("FORMICA_IAM_RECORD")
    if target:
        with open(target, "w", encoding="utf-8") as handle:
            json.dump(recorder.snapshot(), handle)
