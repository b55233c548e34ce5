"""The grants route in the stack (its method is public, tests/infra/test_api.py): named to the
functions that mint capabilities, and the signing and writing access it needs, on the keys it needs
only."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.synthesis import Synth, actions_of


def _s3_statements(synth: Synth, folder: str) -> list[dict[str, Any]]:
    return [
        statement
        for statement in synth.statements_of_role(synth.role_of(folder))
        if any(action.startswith("s3:") for action in actions_of(statement))
    ]


def test_the_functions_that_mint_capabilities_name_the_api(synth: Synth) -> None:
    functions = synth.functions()
    for folder in ("shell_task", "launch"):
        variables = functions[folder][1]["Environment"]["Variables"]
        url = json.dumps(variables["FORMICA_API_URL"])
        assert "execute-api" in url and "RestApi" in url, folder
    # The sandbox learns the route from its payload: its environment names nothing of the stack.
    sandbox = functions["shell_sandbox"][1].get("Environment", {}).get("Variables", {})
    assert "FORMICA_API_URL" not in sandbox


def test_the_api_signs_uploads_under_artifact_prefixes_only(synth: Synth) -> None:
    # (and stores a worker's reported attempt's log, under logs/; and writes a cancel's marker)
    puts = [statement for statement in _s3_statements(synth, "api") if "s3:PutObject" in statement["Action"]]
    ends = sorted(json.dumps(put["Resource"]).rsplit('"', 2)[-2] for put in puts)
    assert ends == ["/*/_control/*", "/*/artifacts/*", "/*/logs/*"]


def test_launch_writes_grant_files_and_touches_no_artifact(synth: Synth) -> None:
    # (besides a cancel's marker, which any function that may cancel writes)
    statements = _s3_statements(synth, "launch")
    assert all(statement["Action"] == "s3:PutObject" for statement in statements)
    ends = sorted(json.dumps(statement["Resource"]).rsplit('"', 2)[-2] for statement in statements)
    assert ends == ["/*/_control/*", "/*/grants/*"]
