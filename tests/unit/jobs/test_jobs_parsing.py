"""parse_definition / load_definition / render_task: rules, lines, tasks, limits."""

from __future__ import annotations

import textwrap
import time

import pytest
from formica.jobs import DefinitionError, TemplateError, load_definition, parse_definition, render_task
from formica.jobs.limits import MAX_TASKS
from formica.jobs.parsing import MAX_DEFINITION_BYTES
from formica.jobs.templates import runtime_context


def yaml_text(text: str) -> str:
    """Dedent a definition written inline (line 1 is its first non-empty line)."""
    return textwrap.dedent(text).lstrip("\n")


VALID = yaml_text(
    """
    job_type: two-step
    tasks:
    - task_type: first
      method: SHELL
      script:
        - echo hi
      on_completed: second
    - task_type: second
      container:
        image: alpine
      script:
        - date
    """
)


def problems_of(text: str) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    return [(p.line, p.task_type, p.message) for p in caught.value.problems]


def test_a_valid_definition_parses() -> None:
    job = parse_definition(VALID)
    assert [t.task_type for t in job.tasks] == ["first", "second"]
    assert job.root_task.task_type == "first"


def test_the_seed_sensor_job_validates_unchanged(seed_yaml: str) -> None:
    job = parse_definition(seed_yaml)
    first, second, third = job.tasks
    assert (first.task_type, second.task_type, third.task_type) == ("first", "second", "third")
    assert first.on_exit_code == {"404": "EXECUTING"}
    assert second.on_exit_code == {
        "1": "FAILED",
        "2": "RESTART_JOB",
        "3": "COMPLETED",
        "4": "ERR_BLAH",
        "5": "RESTART_TASK",
    }
    assert (first.timeout, first.delay_between_retries) == (15.0, 5.0)


def test_dangling_on_completed_names_task_and_line() -> None:
    text = VALID.replace("on_completed: second", "on_completed: secnd")
    assert problems_of(text) == [
        (7, "first", 'on_completed names unknown task "secnd" (did you mean "second"?)'),
        (8, "second", 'task is not reachable: no task routes to it and "first" is already the first task'),
    ]
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    assert str(caught.value.problems[0]) == (
        'line 7, task "first": on_completed names unknown task "secnd" (did you mean "second"?)'
    )


ADD_TO_FIRST = "  on_completed: second\n"
RULES: list[tuple[str, int | None, str | None, str]] = [
    ("missing job_type", 1, None, "missing required key 'job_type'"),
    ("no tasks", 2, None, "at least one is required"),
    ("unknown key", 8, "first", "unknown key 'scirpt' (did you mean 'script'?)"),
    ("duplicate task", 13, "second", "used by another task too (line 8)"),
    ("unknown method", 4, "first", "unknown method 'SHEL'"),
    ("unsupported method", 4, "first", "Formica does not run PURGE_JOBS tasks"),
    ("messaging without queues", 3, "first", "method MESSAGING needs messaging_request_queue"),
    ("messaging queue name", 5, "first", "messaging_reply_queue 'my.queue.fifo' is not a queue name"),
    ("bad exit key", 8, "first", "on_exit_code key 'sometimes'"),
    ("bad exit target", 9, "first", 'on_exit_code 3 names unknown task "thrid"'),
    ("unreachable", 13, "orphan", "is not reachable"),
    ("no leaf", 2, None, "no first task"),
    ("no image", 10, "second", "container has no image"),
    ("docker without container", 14, "orphan", "needs a container with an image"),
    ("http without url", 14, "orphan", "needs a URL"),
    ("fork without type", 14, "orphan", "needs fork_job_type"),
    ("await without tasks", 14, "orphan", "needs await_forked_tasks"),
    ("neither method nor container", 13, "orphan", "neither a method nor a container"),
    ("bad duration", 5, "first", "invalid duration '2 hours'"),
    ("reserved task name", 13, "RESTART_JOB", "is reserved"),
    ("unknown dependency", 13, "second", 'dependencies names unknown task "nope"'),
    ("negative retry", 5, "first", "retry must not be negative"),
]

EDITS = {
    "missing job_type": lambda t: t.replace("job_type: two-step\n", ""),
    "no tasks": lambda t: "job_type: j\ntasks: []\n",
    "unknown key": lambda t: t.replace(ADD_TO_FIRST, ADD_TO_FIRST + "  scirpt: x\n"),
    "duplicate task": lambda t: t + "- task_type: second\n  method: SHELL\n",
    "unknown method": lambda t: t.replace("method: SHELL", "method: SHEL"),
    "unsupported method": lambda t: t.replace("method: SHELL", "method: PURGE_JOBS"),
    "messaging without queues": lambda t: t.replace("method: SHELL", "method: MESSAGING"),
    "messaging queue name": lambda t: t.replace(
        "method: SHELL\n",
        "method: MESSAGING\n  messaging_reply_queue: my.queue.fifo\n  messaging_request_queue: ok-q\n",
        1,
    ),
    "bad exit key": lambda t: t.replace(
        ADD_TO_FIRST, ADD_TO_FIRST + "  on_exit_code:\n    sometimes: FAILED\n"
    ),
    "bad exit target": lambda t: t.replace(ADD_TO_FIRST, ADD_TO_FIRST + "  on_exit_code:\n    3: thrid\n"),
    "unreachable": lambda t: t + "- task_type: orphan\n  method: SHELL\n",
    "no leaf": lambda t: t + "  on_completed: first\n",
    "no image": lambda t: t.replace("image: alpine", "image: ''"),
    "docker without container": lambda t: t + "- task_type: orphan\n  method: DOCKER\n",
    "http without url": lambda t: t + "- task_type: orphan\n  method: HTTP_GET\n",
    "fork without type": lambda t: t + "- task_type: orphan\n  method: FORK_JOB\n",
    "await without tasks": lambda t: t + "- task_type: orphan\n  method: AWAIT_FORKED_JOB\n",
    "neither method nor container": lambda t: t + "- task_type: orphan\n  script: [x]\n",
    "bad duration": lambda t: t.replace("  method: SHELL\n", "  method: SHELL\n  timeout: 2 hours\n"),
    "reserved task name": lambda t: t + "- task_type: RESTART_JOB\n  method: SHELL\n",
    "unknown dependency": lambda t: t + "  dependencies: [nope]\n",
    "negative retry": lambda t: t.replace("  method: SHELL\n", "  method: SHELL\n  retry: -1\n"),
}


@pytest.mark.parametrize(("name", "line", "task_type", "message"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_reports_line_task_and_reason(
    name: str, line: int | None, task_type: str | None, message: str
) -> None:
    found = problems_of(EDITS[name](VALID))
    assert any(
        (p_line, p_task) == (line, task_type) and message in p_message for p_line, p_task, p_message in found
    ), found


def test_every_problem_is_reported_at_once() -> None:
    text = VALID.replace("method: SHELL", "method: WEBSOCKET") + "- task_type: orphan\n  method: HTTP_GET\n"
    assert len(problems_of(text)) >= 3


def test_exactly_one_root() -> None:
    text = VALID + "- task_type: other\n  method: SHELL\n  on_completed: second\n"
    assert problems_of(text) == [
        (13, "other", 'task is not reachable: no task routes to it and "first" is already the first task')
    ]


def test_a_cycle_without_a_root_is_refused() -> None:
    text = VALID.replace("    - date\n", "    - date\n  on_completed: first\n")
    found = problems_of(text)
    assert any("no first task" in message for _, _, message in found)


def test_actions_and_error_codes_are_valid_targets() -> None:
    text = VALID.replace(
        "  on_completed: second\n",
        "  on_completed: second\n  on_failed: FATAL\n  on_exit_code:\n"
        "    2: RESTART_JOB\n    3: ERR_CUSTOM\n    4: EXECUTING\n    5: RESTART_TASK\n",
    )
    job = parse_definition(text)
    assert job.tasks[0].on_exit_code == {
        "2": "RESTART_JOB",
        "3": "ERR_CUSTOM",
        "4": "EXECUTING",
        "5": "RESTART_TASK",
    }


def test_on_exit_code_completed_counts_as_on_completed() -> None:
    text = VALID.replace("  on_completed: second\n", "  on_exit_code:\n    COMPLETED: second\n")
    job = parse_definition(text)
    assert job.tasks[0].on_completed == "second"
    dangling = text.replace("COMPLETED: second", "COMPLETED: secnd")
    assert problems_of(dangling)[0] == (
        8,
        "first",
        'on_completed names unknown task "secnd" (did you mean "second"?)',
    )


def test_lines_are_original_lines_after_template_lines() -> None:
    text = yaml_text(
        """
        job_type: t
        tasks:
        - task_type: first
          method: SHELL
          script:
          {{ if .Never }}
            - a
            - b
          {{ end }}
            - c
          on_completed: nowhere
        """
    )
    assert problems_of(text) == [(11, "first", 'on_completed names unknown task "nowhere"')]


def test_generated_tasks_report_the_template_line() -> None:
    text = yaml_text(
        """
        job_type: gen
        tasks:
        {{- range $v := Iterate 3 }}
        - task_type: task-{{ $v }}
          method: SHELL
          on_completed: task-{{ Add $v 2 }}
        {{- end }}
        """
    )
    found = problems_of(text)
    assert (6, "task-1", 'on_completed names unknown task "task-3" (did you mean "task-2"?)') in found


def test_broken_template_fails_at_upload_with_its_line() -> None:
    text = VALID.replace("    - echo hi\n", "    - echo {{ if .X }}hi\n")
    with pytest.raises(TemplateError) as caught:
        parse_definition(text)
    assert (caught.value.problems[0].line, caught.value.problems[0].task_type) == (6, "first")


def test_a_numeric_comparison_on_job_id_fails_at_upload_not_at_run_time() -> None:
    # JobID is never empty at run time: validation renders it as a request id, so the formicary
    # form `gt .JobID 5` (a number there, a UUID here) is refused when the definition is uploaded.
    text = VALID.replace("    - echo hi\n", "    - echo {{ if gt .JobID 5 }}late{{ end }}\n")
    with pytest.raises(TemplateError) as caught:
        parse_definition(text)
    problem = caught.value.problems[0]
    assert (problem.line, problem.task_type) == (6, "first")
    assert "JobID is the request's id" in problem.message
    assert parse_definition(VALID.replace("echo hi", 'echo {{ if ne .JobID "" }}{{ .JobID }}{{ end }}'))


def test_validation_uses_the_definitions_job_variables() -> None:
    text = yaml_text(
        """
        job_type: vars
        job_variables:
          Image: alpine
        tasks:
        - task_type: only
          container:
            image: "repo/{{ .Image }}:{{ .Tag }}"
        """
    )
    assert parse_definition(text).tasks[0].container.image == "repo/alpine:"  # type: ignore[union-attr]


def test_limits_are_refused_before_parsing() -> None:
    with pytest.raises(DefinitionError, match=f"the limit is {MAX_DEFINITION_BYTES} "):
        parse_definition("#" * (MAX_DEFINITION_BYTES + 1))
    many = "job_type: j\ntasks:\n" + "".join(
        f"- task_type: t{i}\n  method: SHELL\n" for i in range(MAX_TASKS + 1)
    )
    with pytest.raises(DefinitionError, match="limit is 100"):
        parse_definition(many)


def test_an_alias_bomb_definition_is_refused_fast() -> None:
    # a billion-laughs document: 10^8 strings if expanded
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    text = "job_type: bomb\n" + "\n".join(levels) + "\ntasks:\n- task_type: t\n  method: SHELL\n"
    started = time.monotonic()
    with pytest.raises(DefinitionError):
        parse_definition(text)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("text", ["", "- a\n", "just text\n", "job_type: [\n"])
def test_not_a_definition_is_a_definition_error(text: str) -> None:
    with pytest.raises(DefinitionError):
        parse_definition(text)


def test_load_definition_renders_with_the_runtime_context(seed_yaml: str) -> None:
    early = load_definition(seed_yaml, runtime_context(job_id="r", job_type="sensor-job", org="o"))
    late = load_definition(
        seed_yaml, runtime_context(job_id="r", job_type="sensor-job", org="o", job_elapsed_secs=3)
    )
    assert early.tasks[0].script == ["https://jsonplaceholder.typicode.com/blaaaaahtodos/1"]
    assert late.tasks[0].script == ["https://jsonplaceholder.typicode.com/todos/1"]


def test_every_attempt_renders_fresh_random_and_nonce(seed_yaml: str) -> None:
    scripts = [
        render_task(seed_yaml, "second", runtime_context(job_id="r", job_type="sensor-job", org="o")).script
        for _ in range(200)
    ]
    assert {script[1] for script in scripts} == {f"exit {code}" for code in range(6)}
    assert len({script[0] for script in scripts}) == 200


def test_render_task_sees_its_own_variables_over_params() -> None:
    text = yaml_text(
        """
        job_type: v
        tasks:
        - task_type: only
          method: SHELL
          variables:
            repo: https://example.test/repo.git
          script:
            - git clone {{ .repo }} {{ .JobID }}
        """
    )
    context = runtime_context(job_id="req-9", job_type="v", org="o", params={"repo": "param", "JobID": "x"})
    assert render_task(text, "only", context).script == ["git clone https://example.test/repo.git req-9"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("cron_trigger: every day\n", "is not a cron expression"),
        ("public_plugin: true\nsem_version: 1.0\n", "organisation bundle id"),
        ("sem_version: '1'\n", "must be a semantic version"),
        ("sem_version: 1.x\n", "must end in a number or a dev/rc part"),
    ],
)
def test_job_level_rules(header: str, message: str) -> None:
    found = problems_of(header + VALID)
    assert any(message in text for _, _, text in found), found


def test_plugin_versions_as_formicary_writes_them_are_accepted() -> None:
    job = parse_definition(
        "public_plugin: true\nsem_version: 1.10\n" + VALID.replace("two-step", "io.acme.two-step")
    )
    assert job.sem_version == "1.10"


def test_numbers_in_string_fields_keep_their_written_form() -> None:
    job = parse_definition(
        VALID.replace("  method: SHELL\n", "  method: SHELL\n  environment: {A: 007, B: 1.50}\n")
    )
    assert job.tasks[0].environment == {"A": "007", "B": "1.50"}


def test_except_and_skip_if_render_to_flags() -> None:
    text = 'skip_if: {{ if eq .Branch "main" }} true {{ end }}\n' + VALID.replace(
        "  method: SHELL\n", "  method: SHELL\n  except: '{{ if .Skip }}true{{ end }}'\n"
    )
    skipped = load_definition(
        text, runtime_context(job_id="r", job_type="t", org="o", params={"Branch": "main"})
    )
    assert skipped.skipped
    assert not skipped.tasks[0].excepted
    running = load_definition(text, runtime_context(job_id="r", job_type="t", org="o", params={"Skip": True}))
    assert not running.skipped
    assert running.tasks[0].excepted


def test_a_self_loop_does_not_hide_the_first_task() -> None:
    text = VALID.replace(
        "  on_completed: second\n", "  on_completed: second\n  on_exit_code:\n    9: first\n"
    )
    assert parse_definition(text).root_task.task_type == "first"


def test_load_definition_renders_the_current_task_with_its_variables() -> None:
    text = yaml_text(
        """
        job_type: v
        tasks:
        - task_type: clone
          method: SHELL
          variables:
            repo: https://example.test/repo.git
          script:
            - git clone {{ .repo }}
        """
    )
    current = runtime_context(job_id="r", job_type="v", org="o", task_type="clone")
    assert load_definition(text, current).tasks[0].script == ["git clone https://example.test/repo.git"]
    other = runtime_context(job_id="r", job_type="v", org="o", task_type="")
    assert load_definition(text, other).tasks[0].script == ["git clone"]  # YAML trims the plain scalar
