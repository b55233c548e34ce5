"""Artifacts between SHELL tasks through the real walk: uploaded after one task, downloaded into
the next task's fresh working directory by `dependencies`, `when` honoured."""

from __future__ import annotations

import hashlib

from formica.engine.walk import JobState
from formica.runtime import get_runtime

from tests.workflow.conftest import ORG, Walk

PIPELINE = """
job_type: pipeline
tasks:
- task_type: make
  method: SHELL
  script:
    - mkdir -p out
    - echo made-by-make > out/result.txt
    - echo scratch > scratch.txt
  artifacts:
    paths:
      - out/result.txt
  on_completed: use
- task_type: use
  method: SHELL
  dependencies:
    - make
  script:
    - test ! -e scratch.txt
    - echo "read $(cat out/result.txt)"
  on_completed: report
- task_type: report
  method: SHELL
  script:
    - echo only-on-failure > report.txt
    - exit 3
  allow_failure: true
  artifacts:
    when: on_failure
    paths:
      - report.txt
"""


def test_an_artifact_flows_to_the_dependent_task_and_when_is_honoured(walk: Walk) -> None:
    walk.upload(PIPELINE)

    request_id = walk.submit("pipeline")
    done = walk.wait(request_id)

    assert done.job_state == JobState.COMPLETED, done
    # the next task ran in a fresh directory (no scratch.txt) holding the dependency's artifact
    assert "read made-by-make" in walk.log(request_id, "use")
    artifacts = {a.name: a for a in get_runtime().requests.list_artifacts(request_id) if a.kind == "artifact"}
    assert set(artifacts) == {"out/result.txt", "report.txt"}
    made = artifacts["out/result.txt"]
    assert made.key == f"{ORG}/{request_id}/make/artifacts/out/result.txt"
    assert walk.blob(made.key) == b"made-by-make\n"
    assert (made.size, made.sha256) == (13, hashlib.sha256(b"made-by-make\n").hexdigest())
    # `when: on_failure` uploaded the failing task's report
    assert walk.blob(artifacts["report.txt"].key) == b"only-on-failure\n"
