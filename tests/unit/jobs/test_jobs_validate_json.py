"""formica validate --json: one document for scripts, with the problems as the API details them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from formica.cli import main

ONE = "job_type: one\ntasks:\n- task_type: only\n  method: SHELL\n  script: [date]\n"
TWO = (
    ONE.replace("job_type: one", "job_type: two")
    + "  on_completed: next\n- task_type: next\n  method: SHELL\n"
)
BAD = ONE + "  on_completed: nowhere\n"


def test_json_lists_each_file_with_its_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a valid file and an invalid one
    (tmp_path / "one.yaml").write_text(ONE)
    (tmp_path / "bad.yaml").write_text(BAD)

    # When they are validated with --json
    code = main(["validate", "--json", str(tmp_path / "one.yaml"), str(tmp_path / "bad.yaml")])

    # Then stdout is one JSON document and the exit code still says a file failed
    assert code == 1
    document = json.loads(capsys.readouterr().out)
    good, bad = document["files"]
    assert good == {"file": str(tmp_path / "one.yaml"), "ok": True, "job_type": "one", "tasks": 1}
    assert bad["ok"] is False
    assert bad["problems"] == [
        {
            "message": 'on_completed names unknown task "nowhere"',
            "line": 6,
            "task_type": "only",
            "field": "on_completed",
            "text": 'line 6, task "only": on_completed names unknown task "nowhere"',
        }
    ]


def test_task_counts_read_in_the_right_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "one.yaml").write_text(ONE)
    (tmp_path / "two.yaml").write_text(TWO)

    assert main(["validate", str(tmp_path / "one.yaml"), str(tmp_path / "two.yaml")]) == 0

    out = capsys.readouterr().out
    assert "OK (job_type one, 1 task)\n" in out
    assert "OK (job_type two, 2 tasks)\n" in out
