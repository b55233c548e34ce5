"""A container task's secret config through the real walk on (moto's) ECS: the config is written
by the API's logic to moto's SSM, Launch reads it for the attempt, and RunTask carries no form of
it: the variable and the script a template rendered it into are in the attempt's ``main.env``,
which is gone once the run is settled."""

from __future__ import annotations

import json

import boto3
from formica.api.services import ApiServices
from formica.engine.walk import JobState
from formica.runners.container_secrets import SCRIPT_RUNNER
from formica.store.aws import get_client

from tests.ecs_env_files import read_as_ecs_agent
from tests.workflow.conftest import (
    BUCKET,
    ORG,
    REGION,
    Walk,
    launched_run,
    run_task_calls,
    secret_forms,
    set_config,
    stop_ecs_task,
)

SECRET = "s3cr3t/Token+with spaces&more=1"

SECRET_DOCKER_JOB = """
job_type: secret-docker-job
tasks:
- task_type: deploy
  method: DOCKER
  container:
    image: alpine
  script:
    - echo "deploying to $Stage"
    - 'curl -fsS -H "Authorization: Bearer {{.ApiToken}}" https://deploy.example.invalid'
"""


def test_a_container_tasks_secret_config_is_in_its_env_file_not_in_run_task(
    ecs_walk: Walk, configured: ApiServices
) -> None:
    # Given a secret config and a plain one, and a container task using the secret in its
    # environment and, through a template, in its script
    ecs_walk.upload(SECRET_DOCKER_JOB)
    set_config(configured, "ApiToken", SECRET, secret=True)
    set_config(configured, "Stage", "prod")
    run_tasks = run_task_calls()

    # When the walk launches it
    request_id = ecs_walk.submit("secret-docker-job")
    run = launched_run(request_id)

    # Then RunTask, and the task ECS describes, hold no form of the secret
    (call,) = run_tasks
    (described,) = get_client("ecs").describe_tasks(cluster=call["cluster"], tasks=[run.ecs_task_arn])[
        "tasks"
    ]
    recorded = json.dumps(call) + json.dumps(described, default=str)
    for form in secret_forms(SECRET):
        assert form not in recorded
    main = next(o for o in call["overrides"]["containerOverrides"] if o["name"] == "main")
    environment = {e["name"]: e["value"] for e in main["environment"]}
    assert environment["Stage"] == "prod"
    assert "ApiToken" not in environment
    assert main["command"] == [SCRIPT_RUNNER]
    key = f"{ORG}/{request_id}/deploy/grants/attempt-{run.step}/main.env"
    assert main["environmentFiles"] == [{"value": f"arn:aws:s3:::{BUCKET}/{key}", "type": "s3"}]
    # And main.env holds it, as the ECS agent will read it
    carried = read_as_ecs_agent(ecs_walk.blob(key).decode())
    assert carried["ApiToken"] == SECRET
    assert f"Bearer {SECRET}" in carried["FORMICA_SCRIPT"]

    # When the task stops, Then the walk goes on and main.env is gone
    stop_ecs_task(run, "task-stopped-exit-0")
    assert ecs_walk.wait(request_id).job_state == JobState.COMPLETED
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET, Prefix=key)
    assert listed.get("KeyCount", 0) == 0


# Advance decides with secrets as `****`, so this renders there; only the attempt's render, with
# the secret itself, reaches `gt`, whose error quotes the value it could not compare.
FAILS_ONLY_WITH_THE_SECRET = """
job_type: secret-render-fails
tasks:
- task_type: deploy
  method: DOCKER
  container:
    image: alpine
  script:
    - 'echo {{ if eq .ApiToken "****" }}decided{{ else }}{{ if gt .ApiToken 5 }}big{{ end }}{{ end }}'
"""


def test_a_container_attempt_that_fails_to_render_names_no_secret(
    ecs_walk: Walk, configured: ApiServices
) -> None:
    ecs_walk.upload(FAILS_ONLY_WITH_THE_SECRET)
    set_config(configured, "ApiToken", SECRET, secret=True)
    run_tasks = run_task_calls()

    done = ecs_walk.wait(ecs_walk.submit("secret-render-fails"))

    # The attempt fails on its template, before anything is started, and says so without the value
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_INVALID_DEFINITION")
    (task,) = ecs_walk.tasks(done.request_id)
    assert "gt: cannot compare '****' with '5'" in (task.error_message or "")
    assert run_tasks == []
    recorded = json.dumps([done.model_dump(mode="json"), task.model_dump(mode="json")])
    for form in secret_forms(SECRET):
        assert form not in recorded
