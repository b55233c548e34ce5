"""docs/job-language.md, "How a script runs": its example does what the section says it does."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from formica.jobs.models import TaskDefinition
from formica.runners.shell import run_shell

from tests.unit.runners.conftest import make_context

DOC = Path(__file__).resolve().parents[3] / "docs" / "job-language.md"
SECTION = "### How a script runs (SHELL tasks and containers)"


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, "the shell semantics section is missing from docs/job-language.md"
    start = text.index(SECTION)
    return text[start : text.index("\n## ", start)]


def test_the_section_names_every_rule_a_job_author_relies_on() -> None:
    section = _section()
    for rule in ("One shell", "`set -e`", "`env NAME=VALUE`", "`after_script`", "Environment"):
        assert rule in section, rule


def test_the_sections_example_runs_as_the_section_says(tmp_path: Path) -> None:
    section = _section()
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert example is not None
    (task_yaml,) = yaml.safe_load(example.group(1))
    task = TaskDefinition.model_validate(task_yaml)

    outcome = run_shell(task, make_context(), workdir=tmp_path)

    assert outcome.exit_code == "3", outcome.log
    for line in ("no missing.txt", "hello from out", "GREETING=unset"):
        assert line in outcome.log, outcome.log
    assert "never printed" not in outcome.log  # set -e: nothing after the failing line ran, not even echoed
    assert "exit code 3" in section
