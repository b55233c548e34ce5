"""sub_workflow on a FORK_JOB task: the model (strict) and its rules, each refusal naming field,
task and line; and the decision a waiting sub_workflow takes (an await on a task token)."""

from __future__ import annotations

import textwrap

import pytest
from formica.jobs import DefinitionError, parse_definition


def sub_workflow_job(block: str, method: str = "FORK_JOB") -> str:
    """A job whose task ``fetch`` (line 3) forks; the ``sub_workflow`` lines start at line 7."""
    return (
        "job_type: parent\n"
        "tasks:\n"
        "- task_type: fetch\n"
        f"  method: {method}\n"
        "  fork_job_type: child\n"
        "  sub_workflow:\n" + textwrap.indent(textwrap.dedent(block).strip("\n"), "    ") + "\n"
    )


def problems_of(text: str) -> list[tuple[int | None, str | None, str | None, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    return [(p.line, p.task_type, p.field, p.message) for p in caught.value.problems]


def test_a_sub_workflow_parses_and_a_waiting_one_awaits_its_child() -> None:
    job = parse_definition(
        sub_workflow_job(
            """
            input_params:
              - {name: Symbol, value: "{{ .Ticker }}"}
              - {name: Count, value: 3}
            output_variables: {price_Price: Price}
            wait_for_completion: true
            """
        ),
    )

    task = job.task("fetch")
    assert task.sub_workflow is not None
    assert [(p.name, p.value) for p in task.sub_workflow.input_params] == [("Symbol", ""), ("Count", "3")]
    assert task.sub_workflow.output_variables == {"price_Price": "Price"}
    assert task.awaits_children
    not_waiting = parse_definition(sub_workflow_job("input_params: [{name: A, value: b}]"))
    assert not not_waiting.task("fetch").awaits_children


@pytest.mark.parametrize(
    ("block", "method", "expected"),
    [
        (
            "output_variables: {price_Price: Price}",
            "FORK_JOB",
            (7, "sub_workflow.output_variables", "needs wait_for_completion: true"),
        ),
        (
            "input_params: [{name: A, value: b}]",
            "AWAIT_FORKED_JOB",
            (6, "sub_workflow", "sub_workflow is for FORK_JOB tasks"),
        ),
        (
            "input_params:\n  - {name: ok, value: b}\n  - {name: bad-name, value: b}",
            "FORK_JOB",
            (9, "sub_workflow.input_params.1.name", "name 'bad-name' is not a template identifier"),
        ),
        (
            "input_params:\n  - {name: A, value: b}\n  - {name: A, value: c}",
            "FORK_JOB",
            (9, "sub_workflow.input_params.1.name", "names A twice"),
        ),
        (
            "input_params: [{name: ParentJobID, value: x}]",
            "FORK_JOB",
            (7, "sub_workflow.input_params.0.name", "ParentJobID is set by Formica itself"),
        ),
        (
            "wait_for_completion: true\noutput_variables:\n  a_B: JobState",
            "FORK_JOB",
            (9, "sub_workflow.output_variables.a_B", "value JobState is published by the task"),
        ),
        (
            "wait_for_completion: true\noutput_variables:\n  a_B: X\n  c_D: X",
            "FORK_JOB",
            (10, "sub_workflow.output_variables.c_D", "publishes X twice"),
        ),
        (
            "wait_for_completion: true\noutput_variables:\n  a.b: X",
            "FORK_JOB",
            (9, "sub_workflow.output_variables.a.b", "key 'a.b' is not a name of the child's context"),
        ),
    ],
)
def test_a_broken_sub_workflow_is_refused_naming_field_task_and_line(
    block: str, method: str, expected: tuple[int, str, str]
) -> None:
    text = sub_workflow_job(block, method)
    if method == "AWAIT_FORKED_JOB":
        text = text.replace("  fork_job_type: child\n", "  await_forked_tasks: [fetch]\n")

    problems = problems_of(text)

    line, field, words = expected
    assert any(
        (p_line, p_task, p_field) == (line, "fetch", field) and words in message
        for p_line, p_task, p_field, message in problems
    ), problems


def test_an_unknown_key_in_sub_workflow_is_refused() -> None:
    problems = problems_of(sub_workflow_job("wait_for_completion: true\ninput_param: []"))

    assert any(p_task == "fetch" and "input_param" in message for _, p_task, _, message in problems), problems
