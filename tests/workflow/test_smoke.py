"""A first end-to-end walk: one HTTP task and one shell task."""

from __future__ import annotations

from formica.engine.walk import JobState

from tests.workflow.conftest import Walk


def test_two_tasks_complete(walk: Walk, web) -> None:  # type: ignore[no-untyped-def]
    walk.upload(
        f"""
job_type: smoke
tasks:
- task_type: fetch
  method: HTTP_GET
  script:
    - {web.base_url}/todos/1
  on_completed: say
- task_type: say
  method: SHELL
  script:
    - echo hello {{{{.JobType}}}}
"""
    )
    request_id = walk.submit("smoke")
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done
    fetch, say = walk.tasks(request_id)
    assert (fetch.task_type, say.task_type) == ("fetch", "say")
    assert fetch.outputs["status"] == "200"
    assert "hello smoke" in walk.log(request_id, "say")
