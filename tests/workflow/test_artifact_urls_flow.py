"""ArtifactURL_<n> through the real walk: a task that uploads artifacts publishes each one's presigned
download URL, in upload order, and a later task reads it in its template and its environment."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from formica.engine.walk import JobState
from formica.runtime import get_runtime
from formica.runtime.walker import ARTIFACT_URL_SECONDS

from tests.workflow.conftest import Walk

SPLIT_JOB = """
job_type: artifact-urls
tasks:
- task_type: split
  method: SHELL
  script:
    - echo one > part.1
    - echo two > part.2
  artifacts:
    paths:
      - part.1
      - part.2
  on_completed: use
- task_type: use
  method: SHELL
  script:
    - echo "template first={{ .split_ArtifactURL_1 }}"
    - echo "env second=$split_ArtifactURL_2"
"""


def test_a_task_with_artifacts_publishes_their_presigned_urls_in_upload_order(walk: Walk) -> None:
    # Given a task uploading two artifacts and a later task reading their URLs
    walk.upload(SPLIT_JOB)

    # When it runs
    request_id = walk.submit("artifact-urls")
    done = walk.wait(request_id)

    # Then ArtifactURL_1 and _2 are presigned GETs of part.1 and part.2's keys, living a week
    assert done.job_state == JobState.COMPLETED, done
    outputs = {task.task_type: task.outputs for task in walk.tasks(request_id)}["split"]
    assert sorted(outputs) == ["ArtifactURL_1", "ArtifactURL_2"]
    keys = {item.name: item.key for item in get_runtime().requests.list_artifacts(request_id)}
    for number, name in ((1, "part.1"), (2, "part.2")):
        url = urlsplit(outputs[f"ArtifactURL_{number}"])
        assert unquote(url.path).endswith("/" + keys[name])
        query = parse_qs(url.query)
        assert query["X-Amz-Expires"] == [str(ARTIFACT_URL_SECONDS)]
        assert "X-Amz-Signature" in query
    # And the later task read them by formicary's names
    log = walk.log(request_id, "use")
    assert f"template first={outputs['ArtifactURL_1']}" in log
    assert f"env second={outputs['ArtifactURL_2']}" in log
