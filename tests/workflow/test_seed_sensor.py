"""The seed's sensor job, walked by the real state machine under moto.

``test_seed_sensor_job_as_written`` takes the YAML from ../shared/seed-sensor-job.md unchanged but for
the two URLs (pointed at a local server). Its second task exits ``{{ Random 0 5 }}``; the test pins
Random to 0 so the walk reaches the third task. ``test_seed_exit_codes`` is the same routing with the
exit code read from a param, for every code 0..5.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from formica.engine.routing import TaskState
from formica.engine.walk import JobState
from formica.runtime import get_runtime

from tests.workflow.conftest import ORG, SHARED, Walk

SEED = SHARED / "seed-sensor-job.md"
SEED_HOST = "https://jsonplaceholder.typicode.com"


def seed_yaml(base_url: str) -> str:
    text = SEED.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    job = next(block for block in blocks if "job_type: sensor-job" in block)
    assert job.count(SEED_HOST) == 2
    return job.replace(SEED_HOST, base_url)


class _PinnedRandom:
    def __init__(self, value: int) -> None:
        self.value = value

    def randint(self, low: int, high: int) -> int:
        assert low <= self.value <= high
        return self.value


def assert_third_ran(walk: Walk, request_id: str) -> None:
    key = f"{ORG}/{request_id}/third/artifacts/date.txt"
    assert walk.blob(key).strip(), "date.txt is empty"
    artifacts = [a for a in get_runtime().requests.list_artifacts(request_id) if a.kind == "artifact"]
    assert [(a.task_type, a.name, a.key) for a in artifacts] == [("third", "date.txt", key)]
    assert "variable value is xyz" in walk.log(request_id, "third")


@pytest.mark.skipif(not SEED.exists(), reason=f"{SEED} is absent (the shared seed files are not here)")
def test_seed_sensor_job_as_written(walk: Walk, web: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the seed's job with its URLs on a local server, and Random pinned to 0
    from formica.jobs import templates

    monkeypatch.setattr(templates, "random", _PinnedRandom(0))
    walk.upload(seed_yaml(web.base_url))

    # When it runs
    request_id = walk.submit("sensor-job", {"Key": "Value"})
    done = walk.wait(request_id, timeout=40)

    # Then the first task polled (404 -> EXECUTING) until JobElapsedSecs >= 3, then got 200
    assert done.job_state == JobState.COMPLETED, done
    first, second, third = walk.tasks(request_id)
    assert (first.task_type, first.task_state, first.exit_code) == ("first", TaskState.COMPLETED, "200")
    assert first.polls >= 1 and first.attempts == first.polls + 1
    assert web.hits["/blaaaaahtodos/1"] == first.polls
    assert web.hits["/todos/1"] == 1
    # the second task's exit code routed to the third, which left date.txt in S3
    assert (second.task_state, second.exit_code) == (TaskState.COMPLETED, "0")
    assert re.search(r"nonce [0-9a-f]+", walk.log(request_id, "second"))
    assert third.task_state == TaskState.COMPLETED
    assert_third_ran(walk, request_id)


SENSOR_COPY = """
job_type: sensor-fast
tasks:
- task_type: first
  method: HTTP_GET
  environment:
    OLD_ENV_VAR: ijk
  allow_failure: true
  timeout: 15s
  delay_between_retries: 1s
  script:
    {{ if lt .JobElapsedSecs 3 }}
    - BASE/blaaaaahtodos/1
    {{ else }}
    - BASE/todos/1
    {{ end }}
  on_completed: second
  on_exit_code:
    404: EXECUTING
- task_type: second
  method: SHELL
  script:
    - echo done
"""


def test_sensor_polls_until_the_template_switches_url(walk: Walk, web: Any) -> None:
    # The seed's sensor without the shared file: one-second delays, switch at JobElapsedSecs >= 3
    # (as the sensor job's own 3; a switch at 1 s was missed once when a loaded machine took 1.3 s
    # from admission to the first attempt, which then polled nothing).
    walk.upload(SENSOR_COPY.replace("BASE", web.base_url))
    request_id = walk.submit("sensor-fast")
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED, done
    first, second = walk.tasks(request_id)
    assert first.polls >= 1 and web.hits["/blaaaaahtodos/1"] == first.polls
    assert (first.exit_code, second.task_state) == ("200", TaskState.COMPLETED)


EXIT_CODES = """
job_type: exit-codes
tasks:
- task_type: second
  container:
    image: alpine
  script:
    - echo nonce {{.Nonce}}
    - exit {{.Code}}
  on_exit_code:
    1: FAILED
    2: RESTART_JOB
    3: COMPLETED
    4: ERR_BLAH
    5: RESTART_TASK
  on_completed: third
- task_type: third
  container:
    image: alpine
  environment:
    OLD_ENV_VAR: ijk
  script:
    - date > date.txt
    - env NEW_ENV_VAR=xyz
    - echo variable value is $NEW_ENV_VAR
  artifacts:
    paths:
      - date.txt
"""


@pytest.mark.parametrize(
    ("code", "state", "error", "job_retry", "second_retries"),
    [
        (0, JobState.COMPLETED, None, 0, 0),
        (1, JobState.FAILED, "ERR_TASK_FAILED", 0, 0),
        (2, JobState.FAILED, "ERR_RESTART_JOB", 3, 0),
        (3, JobState.COMPLETED, None, 0, 0),
        (4, JobState.FAILED, "ERR_BLAH", 0, 0),
        (5, JobState.FAILED, "ERR_RESTART_TASK", 0, 3),
    ],
)
def test_seed_exit_codes(  # noqa: PLR0917 - one parameter per column of the table
    walk: Walk, code: int, state: JobState, error: str | None, job_retry: int, second_retries: int
) -> None:
    # Given the seed's second and third tasks, the exit code taken from a param
    walk.upload(EXIT_CODES)
    # When the job runs with that code
    request_id = walk.submit("exit-codes", {"Code": code})
    done = walk.wait(request_id)
    # Then the job ends as the seed's mapping says
    assert (done.job_state, done.error_code, done.job_retry) == (state, error, job_retry), done
    seconds = [t for t in walk.tasks(request_id) if t.task_type == "second"]
    assert seconds[-1].exit_code == str(code)
    assert seconds[-1].task_retry == second_retries
    if code == 2:
        # RESTART_JOB re-walks from the root with JobRetry + 1, until the default cap of 3
        assert [t.job_retry for t in seconds] == [0, 1, 2, 3]
    if state == JobState.COMPLETED:
        assert_third_ran(walk, request_id)
    else:
        assert all(t.task_type == "second" for t in walk.tasks(request_id))
