"""Configs through the real walk: precedence, export into tasks, and secrets masked everywhere.

The configs are written by the API's logic on moto's DynamoDB and SSM; the jobs run through the
ASL on moto's interpreter. SHELL and HTTP tasks print the secret, echo it back from a server,
base64 and URL-encode it: no stored log, task record, error message or API answer holds any form
of it, and no log record of Formica's own does either.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import quote, quote_plus

import boto3
import pytest
from formica.api import configs as config_routes
from formica.api.services import ApiServices
from formica.engine.walk import JobState
from formica.local.lambda_dispatch import INVOKED_FUNCTION
from formica.runtime import get_runtime
from formica.store.configs import SsmConfigSecretStore

from tests.fakes.loopback import serving, url_of
from tests.workflow.conftest import (
    BUCKET,
    CONFIGS_KMS_KEY,
    CONFIGS_PREFIX,
    ORG,
    REGION,
    TABLE,
    Walk,
    secret_forms,
    set_config,
)

SECRET = "s3cr3t/Token+with spaces&more=1"
ROTATED = "r0tated-Secret/Value=="


class _Echo:
    """A loopback server that answers every request with what it received (path and body)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.base_url = ""


@pytest.fixture
def echo() -> Iterator[_Echo]:
    state = _Echo()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            state.received.append(self.path + " " + body)
            data = json.dumps({"path": self.path, "body": body}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    with serving(Handler) as server:
        state.base_url = url_of(server)
        yield state


def _everything_stored(walk: Walk, request_id: str) -> str:
    """Every object in the bucket, the request's item and its task items, as one text."""
    texts: list[str] = []
    for page in walk.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for entry in page.get("Contents", []):
            texts.append(walk.blob(entry["Key"]).decode("utf-8", errors="replace"))
    texts.append(walk.request(request_id).model_dump_json())
    texts.extend(task.model_dump_json() for task in walk.tasks(request_id))
    return "\n".join(texts)


def _log_records_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{record.getMessage()} {json.dumps(record.__dict__, default=str)}" for record in caplog.records
    )


PRECEDENCE_JOB = """
job_type: precedence-job
job_variables:
  FromJobVariables: job-variables
  FromParams: job-variables
  FromTaskVariables: job-variables
tasks:
- task_type: show
  method: SHELL
  variables:
    FromTaskVariables: task-variables
  script:
    - echo "env OnlyOrg=$OnlyOrg FromJob=$FromJob FromJobVariables=$FromJobVariables"
    - echo "env FromParams=$FromParams FromTaskVariables=$FromTaskVariables"
    - echo "tpl OnlyOrg={{.OnlyOrg}} FromJob={{.FromJob}} FromJobVariables={{.FromJobVariables}}"
    - echo "tpl FromParams={{.FromParams}} FromTaskVariables={{.FromTaskVariables}}"
"""


def test_configs_take_the_lowest_precedence_of_the_job_s_variables(
    walk: Walk, configured: ApiServices
) -> None:
    # Given: every name set at the organisation, and then again at each higher layer but one.
    walk.upload(PRECEDENCE_JOB)
    for name in ("OnlyOrg", "FromJob", "FromJobVariables", "FromParams", "FromTaskVariables"):
        set_config(configured, name, "org")
    for name in ("FromJob", "FromJobVariables", "FromParams", "FromTaskVariables"):
        set_config(configured, name, "job", job_type="precedence-job")
    # When
    request_id = walk.submit("precedence-job", {"FromParams": "params", "FromTaskVariables": "params"})
    done = walk.wait(request_id)
    # Then: org < job configs < job_variables < params < task variables, in templates and environment.
    assert done.job_state == JobState.COMPLETED, done.error_message
    log = walk.log(request_id, "show")
    table = {
        "OnlyOrg": "org",
        "FromJob": "job",
        "FromJobVariables": "job-variables",
        "FromParams": "params",
        "FromTaskVariables": "task-variables",
    }
    for name, expected in table.items():
        assert f"{name}={expected}" in log.split("tpl", 1)[0], (name, log)
        assert f"{name}={expected}" in log.split("tpl", 1)[1], (name, log)


SECRET_JOB = """
job_type: secret-job
tasks:
- task_type: shout
  method: SHELL
  script:
    - echo "plain $ApiToken"
    - printf '%s' "$ApiToken" | base64
    - printf 'user:%s' "$ApiToken" | base64
    - python3 -c "import os, urllib.parse as u; print(u.quote(os.environ['ApiToken'], safe=''))"
    - python3 -c "import os, urllib.parse as u; print(u.quote_plus(os.environ['ApiToken']))"
    - echo "templated {{.ApiToken}} and {{.PlainSetting}}"
  on_completed: call
- task_type: call
  method: HTTP_POST_JSON
  url: "{{.EchoURL}}/echo?token={{.ApiToken}}"
  variables:
    token: "{{.ApiToken}}"
  on_completed: fail
- task_type: fail
  method: SHELL
  script:
    - echo "failing with $ApiToken"
    - exit 3
"""


def test_a_secret_never_leaves_in_any_form(
    walk: Walk, configured: ApiServices, echo: _Echo, caplog: pytest.LogCaptureFixture
) -> None:
    # Given: a secret and two plain configs; the job prints, encodes and echoes the secret.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="formica")
    walk.upload(SECRET_JOB)
    set_config(configured, "ApiToken", SECRET, secret=True)
    set_config(configured, "PlainSetting", "visible-value")
    set_config(configured, "EchoURL", echo.base_url, job_type="secret-job")
    # When
    request_id = walk.submit("secret-job")
    done = walk.wait(request_id)
    # Then: the tasks had the real secret (the server received it, the job failed at `fail`)...
    assert done.job_state == JobState.FAILED
    assert any(quote_plus(SECRET) in hit or quote(SECRET) in hit or SECRET in hit for hit in echo.received)
    assert "failing with ****" in (done.error_message or "")
    shout = walk.log(request_id, "shout")
    assert "plain ****" in shout
    assert "templated **** and visible-value" in shout
    assert "visible-value" in shout
    # ... and nothing stored, answered or logged holds any form of it.
    stored = _everything_stored(walk, request_id)
    answered = config_routes.list_configs(configured, ORG).model_dump_json()
    answered += config_routes.get_config(configured, ORG, "ApiToken").model_dump_json()
    logged = _log_records_text(caplog)
    for form in secret_forms(SECRET):
        assert form not in stored, form
        assert form not in answered, form
        assert form not in logged, form
    assert '"secret":true' in answered.replace(" ", "")


ROTATION_JOB = """
job_type: rotation-job
tasks:
- task_type: check
  method: SHELL
  retry: 1
  script:
    - echo "sees ${#ApiToken} characters"
    - test "$ApiToken" = "r0tated-Secret/Value=="
"""


def test_a_rotated_secret_is_read_from_the_next_attempt_on(walk: Walk, configured: ApiServices) -> None:
    # Given: a job whose task succeeds only with the rotated value; its first attempt sees the old one.
    walk.upload(ROTATION_JOB)
    set_config(configured, "ApiToken", SECRET, secret=True, job_type="rotation-job")
    original_values = configured.config_secrets
    assert original_values is not None
    rotated: list[bool] = []

    class RotateAfterFirstRead(SsmConfigSecretStore):
        def values(self, references: Any) -> dict[str, str]:
            found = original_values.values(references)
            if not rotated:
                rotated.append(True)
                body = config_routes.UpdateConfigRequest(value=ROTATED, secret=True)
                # The API's PUT, made while the task function runs: its calls are the API's (IAM).
                acting = INVOKED_FUNCTION.set("api")
                try:
                    config_routes.update_config(configured, ORG, "ApiToken", body, job_type="rotation-job")
                finally:
                    INVOKED_FUNCTION.reset(acting)
            return found

    get_runtime().config_secrets = RotateAfterFirstRead(
        CONFIGS_PREFIX, CONFIGS_KMS_KEY, client=boto3.client("ssm", region_name=REGION)
    )
    # When
    request_id = walk.submit("rotation-job")
    done = walk.wait(request_id)
    # Then: the first attempt failed with the old value, the retry passed with the new one.
    assert done.job_state == JobState.COMPLETED, done.error_message
    prefix = f"{ORG}/{request_id}/check/logs/"
    listed = walk.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    logs = sorted(walk.blob(entry["Key"]).decode() for entry in listed if entry["Key"].endswith(".log"))
    assert [f"sees {len(SECRET)} characters" in log for log in logs].count(True) == 1
    assert [f"sees {len(ROTATED)} characters" in log for log in logs].count(True) == 1


def test_secrets_are_kms_encrypted_under_the_stack_prefix(walk: Walk, configured: ApiServices) -> None:
    # moto accepts any key id: what it stored is the key the code passed.
    set_config(configured, "ApiToken", SECRET, secret=True)
    ssm = boto3.client("ssm", region_name=REGION)
    described = ssm.describe_parameters()["Parameters"]
    assert [(item["Name"], item["Type"], item.get("KeyId")) for item in described] == [
        (f"{CONFIGS_PREFIX}/{ORG}/org/ApiToken", "SecureString", CONFIGS_KMS_KEY)
    ]
    item = walk.ddb.get_item(
        TableName=TABLE, Key={"pk": {"S": f"ORG#{ORG}#CONFIGS"}, "sk": {"S": "ORG#ApiToken"}}
    )
    assert SECRET not in json.dumps(item)
    assert replace(configured, configs=None).configs is None
