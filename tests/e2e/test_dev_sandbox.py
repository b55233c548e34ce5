"""`formica dev` with SHELL attempts handed to the sandbox function, as the deployed stack does: the
trusted shell-task function renders the attempt and invokes `functions/shell_sandbox` (dispatched
in-process by the local Lambda shim), which gets the dependencies and uploads the artifacts through
presigned URLs on moto's S3 only. The same job as the in-process path must give the same results."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.devserver import DevHandle, running_dev, submit, upload, wait_for

JOB = """
job_type: sandboxed
tasks:
- task_type: build
  method: SHELL
  script:
    - mkdir -p out && echo "hello {{.Who}}" > out/greeting.txt
    - echo built
  artifacts:
    paths:
      - out
  on_completed: check
- task_type: check
  method: SHELL
  dependencies:
    - build
  script:
    - cat out/greeting.txt
    - test "$(cat out/greeting.txt)" = "hello sandbox"
"""

SLEEPER = """
job_type: sandboxed-sleeper
tasks:
- task_type: wait
  method: SHELL
  script:
    - sleep 60
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHandle]:
    with running_dev(
        tmp_path_factory.mktemp("dev-sandbox"),
        extra_env={"FORMICA_SHELL_SANDBOX_FUNCTION": "formica-shell-sandbox"},
    ) as handle:
        yield handle


def test_a_job_runs_through_the_sandbox_with_dependencies_and_artifacts(
    api: httpx.Client, dev: DevHandle
) -> None:
    # Given a job whose second task reads the first one's artifact
    upload(api, JOB)

    # When it runs with SHELL attempts in the sandbox
    final = wait_for(api, submit(api, "sandboxed", {"Who": "sandbox"}))

    # Then both tasks completed, the artifact went up through the upload grant and came back down
    assert final["job_state"] == "COMPLETED", (final, dev.log()[-3000:])
    request_id = final["id"]
    records = api.get(f"/api/jobs/requests/{request_id}/artifacts").json()["records"]
    assert [(r["task_type"], r["name"]) for r in records] == [("build", "out/greeting.txt")]
    log = api.get(f"/api/jobs/requests/{request_id}/tasks/check/logs").text
    assert "hello sandbox" in log
    # And both attempts ran in the sandbox (the attempt's log names the function it ran in)
    for task in ("build", "check"):
        text = api.get(f"/api/jobs/requests/{request_id}/tasks/{task}/logs").text
        assert "[ran in the SHELL sandbox formica-shell-sandbox]" in text, text


def test_cancel_reaches_a_sandboxed_script(api: httpx.Client) -> None:
    upload(api, SLEEPER)
    request_id = submit(api, "sandboxed-sleeper")
    wait_for(api, request_id, frozenset({"EXECUTING"}), timeout=30)
    time.sleep(1)
    started = time.monotonic()
    assert api.post(f"/api/jobs/requests/{request_id}/cancel").status_code == 200

    final = wait_for(api, request_id, timeout=30)

    # The script learnt it through the cancel marker, within seconds, not at its 60 s end
    assert final["job_state"] == "CANCELLED", final
    [task] = final["tasks"]
    assert task["task_state"] == "CANCELLED"
    assert time.monotonic() - started < 20
