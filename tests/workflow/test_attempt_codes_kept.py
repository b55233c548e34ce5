"""Every attempt's exit code reaches the task's record through the real state machine and store."""

from __future__ import annotations

import uuid

from formica.engine.walk import JobState

from tests.workflow.conftest import Walk

FLAKY = """
job_type: flaky
tasks:
- task_type: fetch
  method: SHELL
  retry: 2
  script:
    - n=$(cat /tmp/formica-flaky-$FLAKY_ID 2>/dev/null || echo 0); n=$((n + 1))
    - echo $n > /tmp/formica-flaky-$FLAKY_ID
    - if [ $n -lt 3 ]; then exit $((n + 4)); fi
"""


def test_a_retried_tasks_record_keeps_each_attempts_exit_code(walk: Walk) -> None:
    walk.upload(FLAKY)

    request_id = walk.submit("flaky", params={"FLAKY_ID": uuid.uuid4().hex})
    done = walk.wait(request_id)

    assert done.job_state == JobState.COMPLETED
    (fetch,) = walk.tasks(request_id)
    assert (fetch.attempts, fetch.exit_codes) == (3, ["5", "6", "0"])
