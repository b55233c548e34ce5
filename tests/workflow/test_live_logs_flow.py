"""A running task is EXECUTING and its log is readable while it runs; logs are numbered by the
task's own attempts."""

from __future__ import annotations

import time
from pathlib import Path

from formica.engine.routing import TaskState
from formica.engine.walk import JobState
from formica.runtime import get_runtime
from formica.store.logs import TaskLogs, live_prefix
from formica.store.schema import log_key

from tests.workflow.conftest import BUCKET, ORG, Walk

STREAMING = """
job_type: streaming
tasks:
- task_type: prepare
  method: SHELL
  script:
    - echo ready
  on_completed: stream
- task_type: stream
  method: SHELL
  script:
    - echo first line
    - sleep 4
    - echo second line
    - sleep 4
"""

CONTAINER = """
job_type: contained
tasks:
- task_type: stream
  method: DOCKER
  container:
    image: alpine:3.19
  script:
    - echo first line
    - sleep 4
    - echo second line
    - sleep 2
"""

RETRIED = """
job_type: retried
tasks:
- task_type: prepare
  method: SHELL
  script:
    - echo ready
  on_completed: flaky
- task_type: flaky
  method: SHELL
  retry: 1
  script:
    - test -f "$MARKER" || { touch "$MARKER"; echo "try one fails"; exit 3; }
    - echo "try two works"
"""


def test_a_running_task_is_executing_and_its_output_is_readable_before_it_ends(walk: Walk) -> None:
    walk.upload(STREAMING)
    request_id = walk.submit("streaming")

    # When the second task runs, its record says EXECUTING (not READY) and so does the request.
    def streaming(request: object) -> bool:
        tasks = [task for task in walk.tasks(request_id) if task.task_type == "stream"]
        return bool(tasks) and tasks[-1].task_state == TaskState.EXECUTING

    running = walk.wait_for(request_id, streaming, timeout=30)
    assert running.job_state == JobState.EXECUTING

    # Then its first line is stored (as a chunk of attempt 1) while it still runs.
    prefix = live_prefix(ORG, request_id, "stream", 1)
    deadline = time.monotonic() + 7
    text = b""
    while time.monotonic() < deadline and b"first line" not in text:
        text = TaskLogs(get_runtime().blobs).read_live(prefix, 0).data
        time.sleep(0.2)
    assert b"first line" in text
    assert b"second line" not in text
    assert not walk.request(request_id).is_final

    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED
    whole = walk.blob(log_key(ORG, request_id, "stream", 1)).decode()
    assert whole.startswith(text.decode()) and "second line" in whole
    assert walk.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0) == 0


def test_a_local_container_attempts_output_is_readable_before_it_ends(walk: Walk) -> None:
    # Given a container task, run by `formica dev`'s local launcher (on the host here: no Docker)
    walk.upload(CONTAINER)
    request_id = walk.submit("contained")

    # Then its first line is stored as a chunk of attempt 1 while it still runs
    prefix = live_prefix(ORG, request_id, "stream", 1)
    deadline = time.monotonic() + 20
    text = b""
    while time.monotonic() < deadline and b"first line" not in text:
        text = TaskLogs(get_runtime().blobs).read_live(prefix, 0).data
        time.sleep(0.2)
    assert b"first line" in text and b"second line" not in text
    assert not walk.request(request_id).is_final

    # And the whole log, stored when it ends, begins with those bytes and replaces the chunks
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED
    whole = walk.blob(log_key(ORG, request_id, "stream", 1)).decode()
    assert whole.startswith(text.decode()) and "second line" in whole
    assert walk.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0) == 0


def test_logs_are_numbered_by_the_tasks_own_attempts(walk: Walk, tmp_path: Path) -> None:
    walk.upload(RETRIED)
    request_id = walk.submit("retried", {"MARKER": f"{tmp_path}/marker"})

    done = walk.wait(request_id)

    assert done.job_state == JobState.COMPLETED
    [flaky] = [task for task in walk.tasks(request_id) if task.task_type == "flaky"]
    assert flaky.attempts == 2
    # The walk's steps were 1 (prepare), 2 and 3 (flaky): the logs say 1 and 2 all the same.
    assert "try one fails" in walk.blob(log_key(ORG, request_id, "flaky", 1)).decode()
    assert "try two works" in walk.blob(log_key(ORG, request_id, "flaky", 2)).decode()
    assert walk.blob(log_key(ORG, request_id, "prepare", 1)).decode().strip().endswith("ready")
