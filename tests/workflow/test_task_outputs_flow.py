"""Task outputs through the real walk: a later task reads an earlier SHELL task's and HTTP task's
outputs by name, in its templates and in its environment."""

from __future__ import annotations

from formica.engine.walk import JobState

from tests.workflow.conftest import Walk, _Web

OUTPUTS_JOB = """
job_type: outputs
job_variables:
  Region: eu-west-1
tasks:
- task_type: build
  method: SHELL
  script:
    - echo "ArtifactURL_1=s3://bucket/build/{{.JobID}}.tgz" >> "$FORMICA_OUTPUTS"
    - echo "version=1.2.3" >> "$FORMICA_OUTPUTS"
  on_completed: fetch-info
- task_type: fetch-info
  method: HTTP_GET
  url: {{.BaseURL}}/todos/1
  on_completed: use
- task_type: use
  method: SHELL
  script:
    - echo "template url={{ .build_ArtifactURL_1 }} version={{ .build_version }}"
    - echo "template status={{ index .Outputs "fetch-info" "status" }} bare={{ .status }}"
    - echo "env url=$build_ArtifactURL_1 version=$version status=$status region=$Region"
"""


def test_a_later_task_reads_shell_and_http_outputs_by_task_name(walk: Walk, web: _Web) -> None:
    walk.upload(OUTPUTS_JOB)

    request_id = walk.submit("outputs", {"BaseURL": web.base_url})
    done = walk.wait(request_id)

    assert done.job_state == JobState.COMPLETED, done
    log = walk.log(request_id, "use")
    url = f"s3://bucket/build/{request_id}.tgz"
    assert f"template url={url} version=1.2.3" in log
    assert "template status=200 bare=200" in log
    assert f"env url={url} version=1.2.3 status=200 region=eu-west-1" in log
    tasks = {task.task_type: task for task in walk.tasks(request_id)}
    assert tasks["build"].outputs == {"ArtifactURL_1": url, "version": "1.2.3"}
    assert tasks["fetch-info"].outputs["status"] == "200"
