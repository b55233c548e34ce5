"""formica graph: the task flow as a Mermaid flowchart."""

from __future__ import annotations

from formica.jobs import JobDefinition, parse_definition
from formica.jobs.graph import to_mermaid


def test_seed_flow_has_labelled_edges(seed_yaml: str) -> None:
    chart = to_mermaid(parse_definition(seed_yaml))
    lines = chart.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    t0 -->|"completed"| t1' in lines
    assert '    t0 -->|"exit 404: poll"| t0' in lines
    assert '    t1 -->|"exit 5: restart task"| t1' in lines
    assert '    t1 -->|"completed"| t2' in lines
    assert any(line.startswith('    t1 -->|"exit 2: RESTART_JOB"| a') for line in lines)
    assert any('(["ERR_BLAH"])' in line for line in lines)
    assert "    style t0 stroke-width:3px" in lines


def test_exit_code_branches_and_failures_are_edges() -> None:
    job = parse_definition(
        "job_type: j\ntasks:\n- task_type: check\n  method: SHELL\n  on_exit_code:\n    1: monday\n"
        "  on_failed: FATAL\n  on_completed: done\n- task_type: monday\n  method: SHELL\n"
        "  on_completed: done\n- task_type: done\n  method: SHELL\n  always_run: true\n"
    )
    chart = to_mermaid(job)
    assert '    t0 -->|"exit 1"| t1' in chart
    assert '    t0 -->|"failed: FATAL"| a0' in chart
    assert 't2["done<br/><small>SHELL, always_run</small>"]' in chart


def test_quotes_in_names_are_escaped() -> None:
    # Upload refuses such a name (formica.jobs.limits); the chart escapes whatever it is given.
    job = JobDefinition.model_validate(
        {"job_type": "j", "tasks": [{"task_type": 'say "hi"', "method": "SHELL"}]}
    )
    assert "#quot;hi#quot;" in to_mermaid(job)
