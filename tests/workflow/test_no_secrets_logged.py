"""No secret reaches an operator's log line: a job whose params, variables, environment and URLs
carry secrets runs through the real walk, and no log record of Formica's own code contains them
(the task's own log in S3, which only its organisation reads, may)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from formica.engine.walk import JobState

from tests.workflow.conftest import Walk

SECRET_PARAM = "param-s3cr3t-1111"
SECRET_VARIABLE = "variable-s3cr3t-2222"
SECRET_ENV = "env-s3cr3t-3333"

JOB = """
job_type: secretive
tasks:
- task_type: call
  method: HTTP_GET
  script:
    - BASE/todos/1?api_key={{ .ApiKey }}
  on_completed: use
- task_type: use
  method: SHELL
  environment:
    DB_PASSWORD: ENV_SECRET
  variables:
    Token: VARIABLE_SECRET
  script:
    - echo "using $ApiKey $Token $DB_PASSWORD" > /dev/null
    - exit {{ if eq .ApiKey "PARAM_SECRET" }}0{{ else }}9{{ end }}
"""


def test_secrets_of_a_run_never_reach_a_formica_log_record(
    walk: Walk, web: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    walk.upload(
        JOB.replace("BASE", web.base_url)
        .replace("ENV_SECRET", SECRET_ENV)
        .replace("VARIABLE_SECRET", SECRET_VARIABLE)
        .replace("PARAM_SECRET", SECRET_PARAM)
    )

    done = walk.wait(walk.submit("secretive", {"ApiKey": SECRET_PARAM}))

    assert done.job_state == JobState.COMPLETED, done  # the secrets were used
    ours = [r for r in caplog.records if r.name.startswith("formica") or r.name == "formica"]
    assert ours, "expected Formica's own log records"
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    for secret in (SECRET_PARAM, SECRET_VARIABLE, SECRET_ENV):
        assert secret not in text
