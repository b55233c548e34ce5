"""fan_out on a task: the model (strict) and its rules, each refusal naming field, task and line."""

from __future__ import annotations

import textwrap

import pytest
from formica.jobs import DefinitionError, parse_definition
from formica.jobs.limits import FAN_OUT_DEFAULT_PARALLEL, FAN_OUT_MAX_PARALLEL
from formica.jobs.models import RunnerKind


def fan_out_job(fan_out: str, task_extra: str = "") -> str:
    """A two-task job whose first task (line 3) fans out; ``fan_out`` lines start at line 5."""
    return (
        "job_type: parent\n"
        "tasks:\n"
        "- task_type: each\n"
        "  fan_out:\n"
        + textwrap.indent(textwrap.dedent(fan_out).strip("\n"), "    ")
        + "\n"
        + textwrap.indent(textwrap.dedent(task_extra).strip("\n"), "  ")
        + ("\n" if task_extra else "")
        + "  on_completed: report\n"
        "- task_type: report\n"
        "  method: SHELL\n"
        "  script: [echo done]\n"
    )


def problems_of(text: str) -> list[tuple[int | None, str | None, str | None, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    return [(p.line, p.task_type, p.field, p.message) for p in caught.value.problems]


def test_a_fan_out_task_parses_with_its_defaults_and_runs_on_the_fork_runner() -> None:
    job = parse_definition(fan_out_job("source: '{{ .Items }}'\nfork_job_type: child\n"))

    task = job.task("each")
    assert task.fan_out is not None
    assert (task.fan_out.item_var, task.fan_out.max_parallel, task.fan_out.fail_fast) == (
        "item",
        FAN_OUT_DEFAULT_PARALLEL,
        False,
    )
    assert (task.fan_out.fork_job_type, task.fan_out.fork_job_version) == ("child", None)
    assert task.runner is RunnerKind.FORK


def test_every_field_is_read_and_a_bare_array_is_kept_as_its_json_text() -> None:
    job = parse_definition(
        fan_out_job(
            """
            source: ["a", {"b": 1}]
            item_var: symbol
            max_parallel: 3
            fail_fast: true
            fork_job_type: io.formicary.stock-plugin
            fork_job_version: 1.0-dev
            """,
            "method: FORK_JOB",
        )
    )

    fan_out = job.task("each").fan_out
    assert fan_out is not None
    assert fan_out.source == '["a", {"b": 1}]'
    assert (fan_out.item_var, fan_out.max_parallel, fan_out.fail_fast) == ("symbol", 3, True)
    assert (fan_out.fork_job_type, fan_out.fork_job_version) == ("io.formicary.stock-plugin", "1.0-dev")


@pytest.mark.parametrize(
    ("fan_out", "task_extra", "expected"),
    [
        (
            "source: '[1]'\nfork_job_type: child\nmax_parallel: 0",
            "",
            (
                7,
                "fan_out.max_parallel",
                f"fan_out.max_parallel 0 is out of range: 1 to {FAN_OUT_MAX_PARALLEL}",
            ),
        ),
        (
            f"source: '[1]'\nfork_job_type: child\nmax_parallel: {FAN_OUT_MAX_PARALLEL + 1}",
            "",
            (7, "fan_out.max_parallel", "is out of range"),
        ),
        (
            "source: '[1]'\nfork_job_type: child\nitem_var: 2nd-item",
            "",
            (7, "fan_out.item_var", "fan_out.item_var '2nd-item' is not a template identifier"),
        ),
        (
            "source: '[1]'\nfork_job_type: child\nitem_var: " + "x" * 33,
            "",
            (7, "fan_out.item_var", "at most 32 characters"),
        ),
        ("source: '[1]'\nfork_job_type: ''", "", (6, "fan_out.fork_job_type", "fan_out needs fork_job_type")),
        (
            "source: '[1]'\nfork_job_type: ../other",
            "",
            (6, "fan_out.fork_job_type", "fan_out.fork_job_type '../other' is not a valid name"),
        ),
        (
            "source: '[1]'\nfork_job_type: child",
            "method: SHELL",
            (7, "method", "a fan_out task forks jobs: its method is FORK_JOB or none, not SHELL"),
        ),
        (
            "source: '[1]'\nfork_job_type: child",
            "script: [echo hi]",
            (7, "script", "a fan_out task forks jobs and runs nothing itself: remove script"),
        ),
        (
            "source: '[1]'\nfork_job_type: child",
            "method: FORK_JOB\nfork_job_type: other",
            (8, "fork_job_type", "a fan_out task names its job in fan_out.fork_job_type"),
        ),
        (
            "source: '[1]'\nfork_job_type: child\nfork_job_version: 1.5",
            "",
            (7, "fan_out.fork_job_version", "1.5"),
        ),
        ("source: '[1]'\nfork_job_type: child\nparallel: 2", "", (7, "fan_out.parallel", "")),
        ("fork_job_type: child", "", (4, "fan_out.source", "")),
    ],
)
def test_a_wrong_fan_out_is_refused_naming_the_field_the_task_and_the_line(
    fan_out: str, task_extra: str, expected: tuple[int, str, str]
) -> None:
    problems = problems_of(fan_out_job(fan_out, task_extra))

    assert len(problems) == 1, problems
    line, task_type, field, message = problems[0]
    assert (line, task_type, field) == (expected[0], "each", expected[1])
    assert expected[2] in message


def test_an_await_of_a_fan_out_task_is_refused() -> None:
    text = fan_out_job("source: '[1]'\nfork_job_type: child").replace(
        "- task_type: report\n  method: SHELL\n  script: [echo done]\n",
        "- task_type: report\n  method: AWAIT_FORKED_JOB\n  await_forked_tasks: [each]\n",
    )

    problems = problems_of(text)

    assert [(p[1], p[2]) for p in problems] == [("report", "await_forked_tasks")]
    assert 'names "each", a fan_out task: it waits for its own children' in problems[0][3]


# -- task fan-out: fan_out without fork_job_type runs the task itself per item ----------------------


@pytest.mark.parametrize(
    ("task_extra", "runner"),
    [
        ("method: SHELL\nscript: ['echo {{ .item }}']", RunnerKind.SHELL),
        ("method: HTTP_GET\nurl: 'https://example.com/{{ .item }}'", RunnerKind.HTTP),
        ("method: HTTP_POST_JSON\nurl: https://example.com/items", RunnerKind.HTTP),
    ],
)
def test_a_task_fan_out_of_a_shell_or_http_task_parses_and_waits_on_the_fork_runner(
    task_extra: str, runner: RunnerKind
) -> None:
    job = parse_definition(fan_out_job('source: \'["a", "b"]\'\nmax_parallel: 2', task_extra))

    task = job.task("each")
    assert task.fan_out is not None and not task.fan_out.forks_jobs
    assert task.runner is RunnerKind.FORK  # the step waits for its instances
    assert task.method_runner is runner  # each instance runs the task's own method
    assert task.awaits_children


@pytest.mark.parametrize(
    ("fan_out", "task_extra", "expected"),
    [
        (
            "source: '[1]'",
            "container:\n  image: alpine",
            (6, "container", "a task fan-out (fan_out without fork_job_type) runs SHELL and HTTP tasks only"),
        ),
        (
            "source: '[1]'",
            "method: KUBERNETES\ncontainer:\n  image: alpine",
            (7, "container", "a container task cannot fan out"),
        ),
        (
            "source: '[1]'",
            "method: FORK_JOB",
            (6, "method", "runs SHELL and HTTP tasks only, not FORK_JOB"),
        ),
        (
            "source: '[1]'",
            "method: MANUAL",
            (6, "method", "runs SHELL and HTTP tasks only, not MANUAL"),
        ),
        ("source: '[1]'", "script: [echo hi]", (3, "method", "set method SHELL or an HTTP method")),
        ("source: '[1]'", "method: HTTP_GET", (6, "method", "method HTTP_GET needs a URL")),
        (
            "source: '[1]'\nfork_job_version: 2",
            "method: SHELL\nscript: [echo hi]",
            (6, "fan_out.fork_job_version", "set fan_out.fork_job_type too"),
        ),
        (
            "source: '[1]'\nmax_parallel: 0",
            "method: SHELL\nscript: [echo hi]",
            (6, "fan_out.max_parallel", "is out of range"),
        ),
    ],
)
def test_a_task_fan_out_that_cannot_run_is_refused_naming_the_field_the_task_and_the_line(
    fan_out: str, task_extra: str, expected: tuple[int, str, str]
) -> None:
    problems = problems_of(fan_out_job(fan_out, task_extra))

    assert len(problems) == 1, problems
    line, task_type, field, message = problems[0]
    assert (task_type, field) == ("each", expected[1]), problems
    assert expected[2] in message
    assert line == expected[0], problems
