"""A definition that validated at upload but fails to render at run time ends the job cleanly."""

from __future__ import annotations

from formica.engine.routing import TaskState
from formica.engine.walk import JobState

from tests.workflow.conftest import Walk

# `Count` is not declared, so upload validation renders it as the zero value (and passes); a
# request whose Count is not a number makes `gt` fail when the template is rendered for a run.
COUNTED = """
job_type: counted
tasks:
- task_type: first
  method: SHELL
  script:
    - echo first
  on_completed: second
- task_type: second
  method: SHELL
  script:
    - echo {{ if eq .TaskType "second" }}{{ if gt .Count 5 }}many{{ end }}{{ end }}
"""


def test_a_render_failure_at_the_start_fails_the_job_with_the_template_message(walk: Walk) -> None:
    walk.upload(COUNTED.replace('{{ if eq .TaskType "second" }}', "{{ if true }}"))

    request_id = walk.submit("counted", {"Count": "lots"})
    done = walk.wait(request_id)

    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_INVALID_DEFINITION")
    assert "gt: cannot compare 'lots' with '5'" in (done.error_message or "")
    assert walk.tasks(request_id) == []
    assert walk.execution_status(done) == "FAILED"


def test_a_render_failure_before_a_later_task_fails_the_job_after_what_ran(walk: Walk) -> None:
    walk.upload(COUNTED)

    request_id = walk.submit("counted", {"Count": "lots"})
    done = walk.wait(request_id)

    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_INVALID_DEFINITION")
    assert (done.error_message or "").startswith(
        "line 12, task \"second\": template error: gt: cannot compare 'lots' with '5'"
    )
    first, *_ = walk.tasks(request_id)
    assert (first.task_type, first.task_state) == ("first", TaskState.COMPLETED)
    assert walk.execution_status(done) == "FAILED"


def test_the_same_definition_runs_when_the_value_is_a_number(walk: Walk) -> None:
    walk.upload(COUNTED)

    done = walk.wait(walk.submit("counted", {"Count": "9"}))

    assert done.job_state == JobState.COMPLETED
