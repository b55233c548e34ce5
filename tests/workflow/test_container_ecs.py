"""Container tasks on the ECS runtime through the real state machine (moto executes the ASL).

Launch starts each task with RunTask on moto's ECS; the test then plays ECS and EventBridge: it puts
what the artifact sidecar would upload into S3 and hands ``complete_container`` the real-shaped
"ECS Task State Change" event for the task moto started. The walk must go on exactly as with SHELL:
exit codes route, artifacts and logs are recorded on the request, dependencies are named in the next
task's RunTask.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from formica.engine.walk import JobState
from formica.runners.grants import curl_config, exchange_capability
from formica.runtime import default_container_service, get_runtime
from formica.store.blobs import S3BlobStore
from formica.store.grants import DynamoGrantRepository

from tests.event_samples import ecs_event, with_run
from tests.workflow.conftest import (
    BUCKET,
    ORG,
    TABLE,
    Walk,
    launched_run,
    run_task_calls,
    stop_ecs_task,
)

DOCKER_JOB = """
job_type: docker-job
tasks:
- task_type: init
  container:
    image: alpine
  method: DOCKER
  script:
    - ls -l / > ls.txt
    - env > env.txt
  after_script:
    - ls -l
  artifacts:
    paths:
      - env.txt
      - ls.txt
  on_exit_code:
    "3": report
  on_completed: cleanup
- task_type: cleanup
  method: DOCKER
  always_run: true
  container:
    image: alpine
  dependencies:
    - init
  script:
    - ls -l
- task_type: report
  method: KUBERNETES
  container:
    image: alpine
  script:
    - echo exit three
"""


def test_a_docker_job_runs_on_ecs_with_artifacts_logs_and_dependencies(ecs_walk: Walk) -> None:
    ecs_walk.upload(DOCKER_JOB)
    run_tasks = run_task_calls()
    request_id = ecs_walk.submit("docker-job")

    init = launched_run(request_id)
    assert init.task_type == "init"
    # What the artifact sidecar would have uploaded after the script:
    prefix = f"{ORG}/{request_id}/init/artifacts/"
    ecs_walk.s3.put_object(
        Bucket=BUCKET, Key=prefix + "env.txt", Body=b"A=1\n", Metadata={"sha256": "ab" * 32}
    )
    stop_ecs_task(init, "task-stopped-exit-0", log_lines=["$ ls -l / > ls.txt", "$ env > env.txt"])

    cleanup = launched_run(request_id, step_after=init.step)
    assert cleanup.task_type == "cleanup"
    stop_ecs_task(cleanup, "task-stopped-exit-0")

    request = ecs_walk.wait(request_id)
    assert request.job_state == JobState.COMPLETED
    tasks = {task.task_type: task for task in ecs_walk.tasks(request_id)}
    assert tasks["init"].exit_code == "0"
    assert tasks["cleanup"].exit_code == "0"
    assert ecs_walk.log(request_id, "init") == "$ ls -l / > ls.txt\n$ env > env.txt\n"
    artifacts = [a for a in get_runtime().requests.list_artifacts(request_id) if a.kind == "artifact"]
    assert [(a.task_type, a.name, a.sha256) for a in artifacts] == [("init", "env.txt", "ab" * 32)]
    # cleanup depends on init: its dependencies container is granted init's file, and only that.
    cleanup_call = run_tasks[1]
    download = next(o for o in cleanup_call["overrides"]["containerOverrides"] if o["name"] == "dependencies")
    grants_at = f"{ORG}/{request_id}/cleanup/grants/attempt-{cleanup.step}/"
    assert download["environmentFiles"] == [
        {"value": f"arn:aws:s3:::{BUCKET}/{grants_at}dependencies.env", "type": "s3"}
    ]
    env_file = (
        ecs_walk.s3.get_object(Bucket=BUCKET, Key=grants_at + "dependencies.env")["Body"].read().decode()
    )
    environment = dict(line.split("=", 1) for line in env_file.splitlines())
    assert environment["FORMICA_GRANTS_URL"].endswith("/test/api/grants")
    # What the helper gets at the grants route for its capability (the route's logic, on this table).
    grant = exchange_capability(
        DynamoGrantRepository(TABLE),
        S3BlobStore(BUCKET),
        environment["FORMICA_CAPABILITY"],
        now=datetime.now(UTC),
    )
    downloads = curl_config(grant).encode()
    urls = re.findall(r'^url = "([^"]+)"$', downloads.decode(), flags=re.MULTILINE)
    assert len(urls) == 1
    assert unquote(urlsplit(urls[0]).path).endswith("/" + prefix + "env.txt")
    assert "X-Amz-Signature=" in urls[0]
    assert 'output = "./env.txt"' in downloads.decode()


def test_exit_codes_route_as_with_shell_and_kubernetes_tasks_run_on_fargate(ecs_walk: Walk) -> None:
    ecs_walk.upload(DOCKER_JOB)
    request_id = ecs_walk.submit("docker-job")

    init = launched_run(request_id)
    stop_ecs_task(init, "task-stopped-exit-3")  # on_exit_code "3" -> report
    report = launched_run(request_id, step_after=init.step)
    assert report.task_type == "report"
    assert report.runtime == "ecs"  # no EKS cluster configured: KUBERNETES runs on Fargate
    stop_ecs_task(report, "task-stopped-exit-0")

    request = ecs_walk.wait(request_id)
    assert request.job_state == JobState.COMPLETED
    assert [(t.task_type, t.exit_code) for t in ecs_walk.tasks(request_id)] == [
        ("init", "3"),
        ("report", "0"),
    ]


def test_an_image_that_cannot_be_pulled_fails_the_task(ecs_walk: Walk) -> None:
    ecs_walk.upload(DOCKER_JOB)
    request_id = ecs_walk.submit("docker-job")

    init = launched_run(request_id)
    stop_ecs_task(init, "task-stopped-image-pull-failure")
    cleanup = launched_run(request_id, step_after=init.step)  # always_run
    stop_ecs_task(cleanup, "task-stopped-exit-0")

    request = ecs_walk.wait(request_id)
    assert request.job_state == JobState.FAILED
    init_task = next(t for t in ecs_walk.tasks(request_id) if t.task_type == "init")
    assert init_task.error_code == "ERR_CONTAINER_START"
    assert "CannotPullContainerError" in str(init_task.error_message)


def test_each_stopped_task_adds_its_billed_fargate_time_to_the_request(ecs_walk: Walk) -> None:
    # Given a two-task docker job whose tasks each stop after 85.448 s billed (512 CPU units, 1,024 MiB)
    ecs_walk.upload(DOCKER_JOB)
    request_id = ecs_walk.submit("docker-job")
    init = launched_run(request_id)
    stop_ecs_task(init, "task-stopped-exit-0")
    stop_ecs_task(launched_run(request_id, step_after=init.step), "task-stopped-exit-0")

    # When the request ends
    request = ecs_walk.wait(request_id)

    # Then its usage holds both tasks' Fargate time: 86 s each
    assert request.job_state == JobState.COMPLETED
    assert request.usage.fargate_cpu_unit_ms == 2 * 512 * 86_000
    assert request.usage.fargate_mib_ms == 2 * 1024 * 86_000
    # A duplicate STOPPED event settles nothing and counts nothing again
    assert (
        default_container_service().complete(
            with_run(
                ecs_event("task-stopped-exit-0"),
                task_arn=str(init.ecs_task_arn),
                request_id=request_id,
                step=init.step,
            )
        )
        is False
    )
    assert ecs_walk.request(request_id).usage.fargate_mib_ms == 2 * 1024 * 86_000
