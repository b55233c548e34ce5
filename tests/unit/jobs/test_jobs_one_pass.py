"""One validation pass lists every problem: a refused key does not hide the flow's mistakes."""

from __future__ import annotations

import textwrap

import pytest
from formica.jobs import DefinitionError, parse_definition


def problems_of(text: str) -> list[tuple[int | None, str | None, str | None, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(textwrap.dedent(text).lstrip())
    return [(p.line, p.task_type, p.field, p.message) for p in caught.value.problems]


def test_an_unknown_key_does_not_hide_an_unknown_target_and_action() -> None:
    # Given a task with a misspelt key, a misspelt action and a misspelt task name
    text = """
        job_type: demo
        tasks:
        - task_type: one
          method: SHELL
          scirpt:
            - echo hi
          on_exit_code:
            3: RESTRAT_TASK
          on_completed: tow
        - task_type: two
          method: SHELL
          script: [echo two]
        """
    # When it is validated, Then all three are reported at once, each with line, task and field
    found = problems_of(text)
    assert found[:3] == [
        (5, "one", "scirpt", "unknown key 'scirpt' (did you mean 'script'?)"),
        (
            8,
            "one",
            "on_exit_code",
            'on_exit_code 3 names unknown action "RESTRAT_TASK" (did you mean "RESTART_TASK"?)',
        ),
        (9, "one", "on_completed", 'on_completed names unknown task "tow" (did you mean "two"?)'),
    ]


def test_a_bad_value_and_a_rule_are_reported_together() -> None:
    text = """
        job_type: demo
        tasks:
        - task_type: one
          method: SHLL
          retry: lots
          dependencies: [nope]
        """
    found = problems_of(text)
    assert (4, "one", "method", found[0][3]) == found[0]
    assert 'did you mean "SHELL"?' in found[0][3]
    assert found[1][:3] == (5, "one", "retry")
    assert (6, "one", "dependencies", 'dependencies names unknown task "nope"') in found


def test_a_refused_route_does_not_make_up_reachability_problems() -> None:
    # on_exit_code is refused whole by the models, so the shape of the flow is not judged on a guess
    text = """
        job_type: demo
        tasks:
        - task_type: one
          method: SHELL
          on_exit_code:
            sometimes: two
          unknown: 1
        - task_type: two
          method: SHELL
        """
    found = problems_of(text)
    assert [problem[2] for problem in found] == ["on_exit_code", "unknown"]


def test_a_missing_task_type_stops_before_the_rules() -> None:
    text = """
        job_type: demo
        tasks:
        - method: SHELL
          on_completed: nowhere
        """
    assert problems_of(text) == [(3, None, "task_type", "missing required key 'task_type'")]


def test_bad_yaml_stays_one_error() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition("job_type: x\ntasks: [\n")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].message.startswith("YAML:")
