"""A failed job explains itself: the exit code, the last lines of the task's output, and where its
whole log is."""

from __future__ import annotations

from formica.engine.walk import JobState

from tests.workflow.conftest import Walk

FAILING = """
job_type: failing
tasks:
- task_type: compile
  method: SHELL
  script:
    - for i in 1 2 3 4 5 6 7 8; do echo "line $i"; done
    - echo "main.c line 3 error, expected a semicolon" >&2
    - exit 2
"""


def test_a_failed_job_quotes_the_exit_code_and_the_last_lines_of_output(walk: Walk) -> None:
    walk.upload(FAILING)

    request_id = walk.submit("failing")
    done = walk.wait(request_id)

    assert done.job_state == JobState.FAILED
    assert done.error_code == "ERR_TASK_FAILED"
    assert done.error_message == (
        "task compile failed with exit code 2\n"
        "last lines of its output:\n"
        "  line 7\n  line 8\n"
        '  $ echo "main.c line 3 error, expected a semicolon" >&2\n'
        "  main.c line 3 error, expected a semicolon\n"
        "  $ exit 2\n"
        f"whole log: formica logs {request_id} compile"
    )
