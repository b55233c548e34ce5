"""The IAM cross-check: every AWS call a function made in the integration and workflow suites is
allowed by that function's synthesized policy (action and resource).

The calls come from this session when it ran those suites (tests/conftest.py moves this module to
the end); run alone, the module runs a fixed subset of them in a subprocess that records
(``FORMICA_IAM_RECORD``), so the check never passes for want of calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.iamcheck import recorder
from tests.iamcheck.policies import FunctionPolicy, Statement, denied
from tests.iamcheck.recorder import Call

REPO = Path(__file__).resolve().parents[2]
# Run alone, these record the calls: the walk's HTTP and SHELL Lambdas (artifacts, logs), the API
# and its authorizer, admission. The whole integration and workflow suites record far more.
SUBSET = (
    "tests/workflow/test_smoke.py",
    "tests/workflow/test_shell_artifacts.py",
    "tests/integration/api/test_api_requests.py",
)
# The subset runs in a subprocess before the first test here: more than pytest's default timeout.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[list[str]]]:
    if recorder.SESSION_RECORDS:
        return recorder.snapshot()
    target = tmp_path_factory.mktemp("iam-record") / "calls.json"
    subset = [path for path in SUBSET if (REPO / path).exists()]
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *subset],
        cwd=REPO,
        env={**os.environ, "FORMICA_IAM_RECORD": str(target)},
        check=False,
        capture_output=True,
        timeout=900,
    )
    return dict(json.loads(target.read_text()))


def _calls(recorded: dict[str, list[list[str]]]) -> list[Call]:
    return [Call(*entry) for entry in recorded["calls"]]


def test_the_suites_recorded_calls_of_the_walk_and_the_api(recorded: dict[str, Any]) -> None:
    functions = {call.function for call in _calls(recorded)}
    assert {"api", "http_task", "shell_task"} <= functions or recorder.SESSION_RECORDS, functions


def test_every_recorded_call_is_resolved(recorded: dict[str, Any]) -> None:
    unresolved = "\n".join(" ".join(entry) for entry in recorded["unresolved"])
    assert not unresolved, (
        f"operations the cross-check cannot map to IAM (add them to recorder.resolve):\n{unresolved}"
    )


def test_every_policy_resource_resolves(policies: dict[str, FunctionPolicy]) -> None:
    unresolved = {folder: policy.unresolved for folder, policy in policies.items() if policy.unresolved}
    assert not unresolved


def test_every_recorded_call_is_allowed_by_its_functions_policy(
    recorded: dict[str, Any], policies: dict[str, FunctionPolicy]
) -> None:
    refused = denied(_calls(recorded), policies)
    report = "\n".join(f"{c.function}: {c.action} on {c.resource}" for c in refused)
    assert not refused, f"calls the deployed functions' roles would be refused:\n{report}"


def test_a_missing_permission_is_reported_with_function_action_and_resource(
    policies: dict[str, FunctionPolicy],
) -> None:
    # Given the API's policy without its table writes
    call = Call("api", "dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:123456789012:table/<TABLE>")
    assert policies["api"].allows(call)
    crippled = {
        **policies,
        "api": FunctionPolicy(
            "api",
            [
                Statement(s.effect, [a for a in s.actions if a != "dynamodb:PutItem"], s.resources)
                for s in policies["api"].statements
            ],
        ),
    }
    # Then the same call is refused, named by function, action and resource
    assert denied([call], crippled) == [call]
    # And a resource outside the grant (another table) is refused too
    other = Call("api", "dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:123456789012:table/someone-elses")
    assert denied([other], policies) == [other]
