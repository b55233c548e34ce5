"""The formica CLI: validate and graph, exit codes, messages without tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from formica.cli import build_parser, main

GOOD = "job_type: ok\ntasks:\n- task_type: first\n  method: SHELL\n  script: [date]\n"
DANGLING = (
    "job_type: bad\ntasks:\n- task_type: first\n  method: SHELL\n  script: [date]\n  on_completed: secnd\n"
    "- task_type: second\n  method: SHELL\n"
)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"good": tmp_path / "good.yaml", "bad": tmp_path / "bad.yaml"}
    paths["good"].write_text(GOOD)
    paths["bad"].write_text(DANGLING)
    return paths


def test_validate_accepts_a_good_file(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(files["good"])]) == 0
    assert "OK (job_type ok, 1 task)" in capsys.readouterr().out


def test_validate_rejects_a_dangling_on_completed_with_task_and_line(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(files["good"]), str(files["bad"])]) == 1
    captured = capsys.readouterr()
    assert f'{files["bad"]}: line 6, task "first": on_completed names unknown task "secnd"' in captured.err
    assert "OK" in captured.out


def test_validate_accepts_the_seed(seed_yaml: str, tmp_path: Path) -> None:
    path = tmp_path / "sensor-job.yaml"
    path.write_text(seed_yaml)
    assert main(["validate", str(path)]) == 0


def test_missing_file_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err
    assert "Traceback" not in err


def test_graph_prints_mermaid(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(files["good"])]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD\n")


def test_graph_of_an_invalid_file_exits_1(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(files["bad"])]) == 1
    assert 'formica: line 6, task "first"' in capsys.readouterr().err


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["validate"]) == 2


def test_schema_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert '"job_type"' in capsys.readouterr().out


def test_parser_lists_the_job_commands() -> None:
    help_text = build_parser().format_help()
    for command in ("validate", "graph", "schema", "render"):
        assert command in help_text


def test_render_shows_the_rendered_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("a: {{ .Name }}\n")
    assert main(["render", str(path), "--param", "Name=ant"]) == 0
    assert capsys.readouterr().out == "a: ant\n"
