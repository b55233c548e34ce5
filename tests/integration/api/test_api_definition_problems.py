"""An upload's problems read as `formica validate` prints them: one format, every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from formica.cli import main
from formica.cli.remote import _detail_text

from tests.integration.api.conftest import ApiWorld

YAML = {"Content-Type": "application/yaml"}
BAD = """job_type: demo
tasks:
- task_type: one
  method: SHELL
  scirpt:
    - echo hi
  on_completed: tow
- task_type: two
  method: SHELL
  script: [echo two]
"""


def test_upload_details_carry_the_line_validate_prints(
    world: ApiWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a definition with a misspelt key and a misspelt target
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)

    # When it is uploaded and validated
    answer = world.call("POST", "/api/jobs/definitions", body=BAD, headers=YAML)
    assert main(["validate", str(path)]) == 1
    printed = [line.removeprefix(f"{path}: ") for line in capsys.readouterr().err.splitlines()]

    # Then both list both problems, in the same words, and the API keeps its fields
    assert answer.status == 400
    details = answer.json()["details"]
    assert [detail["text"] for detail in details] == printed
    assert printed[:2] == [
        "line 5, task \"one\": unknown key 'scirpt' (did you mean 'script'?)",
        'line 7, task "one": on_completed names unknown task "tow" (did you mean "two"?)',
    ]
    assert {key: details[1][key] for key in ("field", "line", "task_type")} == {
        "field": "on_completed",
        "line": 7,
        "task_type": "one",
    }
    # and the client prints the API's line as it came
    assert [_detail_text(detail) for detail in details] == printed


def test_a_detail_without_a_line_names_its_field(world: ApiWorld) -> None:
    answer = world.call("POST", "/api/jobs/requests", json_body={"job_type": "nope", "bogus": 1})
    assert answer.status == 400
    texts = [detail["text"] for detail in answer.json()["details"]]
    assert any(text.startswith("bogus: ") for text in texts), texts
