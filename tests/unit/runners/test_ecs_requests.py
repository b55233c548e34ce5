"""The RegisterTaskDefinition and RunTask parameters the ECS runner builds (pure)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from formica.jobs.models import ArtifactsDefinition, ContainerDefinition, TaskDefinition, TaskMethod
from formica.runners.container_grants import ContainerGrants, HelperGrant, grants_prefix
from formica.runners.container_script import (
    CAPABILITY_ENV,
    DEPENDENCIES_PROGRAM,
    GRANTS_URL_ENV,
    UPLOAD_PROGRAM,
)
from formica.runners.ecs import (
    FAMILY_PREFIX,
    OVERRIDES_MAX_CHARS,
    EcsConfigError,
    EcsLaunchConfig,
    FargateSize,
    OverridesTooLargeError,
    client_token,
    log_stream_name,
    run_task_request,
    s3_object_arn,
    task_definition_request,
)
from formica.runners.ecs_events import RunKey
from formica.settings import FormicaSettings

from tests.unit.runners.conftest import make_context

CONFIG = EcsLaunchConfig(
    cluster_arn="arn:aws:ecs:us-east-1:111122223333:cluster/formica",
    subnet_ids=("subnet-a", "subnet-b"),
    security_group_ids=("sg-1",),
    execution_role_arn="arn:aws:iam::111122223333:role/execution",
    log_group="/formica/containers",
    region="us-east-1",
    bucket="formica-artifacts",
)
REQUEST_ID = "7f0c6d3e-2b8a-4f6e-9a51-3c2d1e0f9b47"


def _td(**changes: object) -> dict[str, object]:
    arguments: dict[str, object] = {
        "image": "alpine:3.19",
        "size": FargateSize(512, 1024),
        "workspace": "/workspace",
        "config": CONFIG,
    }
    arguments.update(changes)
    return task_definition_request(**arguments)  # type: ignore[arg-type]


def _containers(request: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in request["containerDefinitions"]}  # type: ignore[attr-defined,index]


def test_task_definition_layout() -> None:
    request = _td()
    containers = _containers(request)

    assert request["requiresCompatibilities"] == ["FARGATE"]
    assert request["networkMode"] == "awsvpc"
    assert (request["cpu"], request["memory"]) == ("512", "1024")
    # No task role: no container of the task (the tenant's main among them) can get credentials.
    assert "taskRoleArn" not in request
    assert request["executionRoleArn"] == CONFIG.execution_role_arn
    assert request["volumes"] == [{"name": "workspace"}]
    assert list(containers) == ["dependencies", "main", "logs", "artifacts"]
    main = containers["main"]
    assert main["image"] == "alpine:3.19"
    assert main["entryPoint"] == ["sh", "-c"]
    assert main["workingDirectory"] == "/workspace"
    assert main["essential"] is False  # ECS: a COMPLETE dependency target must be non-essential
    assert main["dependsOn"] == [{"containerName": "dependencies", "condition": "SUCCESS"}]
    assert containers["artifacts"]["dependsOn"] == [{"containerName": "main", "condition": "COMPLETE"}]
    assert containers["artifacts"]["essential"] is True
    assert containers["dependencies"]["essential"] is False
    # The live log's helper runs beside main and never holds the task up.
    assert containers["logs"]["essential"] is False
    assert containers["logs"]["dependsOn"] == [{"containerName": "dependencies", "condition": "SUCCESS"}]
    for container in containers.values():
        assert container["mountPoints"] == [
            {"sourceVolume": "workspace", "containerPath": "/workspace", "readOnly": False}
        ]
        assert container["logConfiguration"] == {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": "/formica/containers",
                "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "formica",
            },
        }
    assert sum(1 for c in containers.values() if c["essential"]) == 1
    assert sum(c["memoryReservation"] for c in containers.values()) <= 1024  # type: ignore[misc]
    assert main["memoryReservation"] == 1024 - 3 * 64
    assert all("memory" not in c for c in containers.values())  # no hard limit below the task's


def test_family_prefix_comes_from_the_config() -> None:
    config = EcsLaunchConfig(**{**CONFIG.__dict__, "family_prefix": "formica-dev-"})
    family = str(_td(config=config)["family"])
    assert family.startswith("formica-dev-")
    assert len(family) == len("formica-dev-") + 16


def test_family_is_a_digest_of_the_content() -> None:
    family = str(_td()["family"])
    assert family.startswith(FAMILY_PREFIX)
    assert len(family) == len(FAMILY_PREFIX) + 16
    assert _td()["family"] == family  # same content, same family
    for changed in (
        _td(image="alpine:3.20"),
        _td(size=FargateSize(1024, 2048)),
        _td(workspace="/sample"),
        _td(ephemeral_gib=30),
        _td(config=EcsLaunchConfig(**{**CONFIG.__dict__, "execution_role_arn": "arn:aws:iam::1:role/other"})),
    ):
        assert changed["family"] != family


def test_ephemeral_storage_only_when_asked() -> None:
    assert "ephemeralStorage" not in _td()
    assert _td(ephemeral_gib=40)["ephemeralStorage"] == {"sizeInGiB": 40}


def _task(**changes: object) -> TaskDefinition:
    values: dict[str, object] = {
        "task_type": "build",
        "method": TaskMethod.DOCKER,
        "container": ContainerDefinition(image="alpine:3.19"),
        "script": ["ls -l > ls.txt", "env > env.txt"],
        "environment": {"STAGE": "test"},
        "variables": {"COLOR": "blue"},
        "dependencies": ["init"],
        "artifacts": ArtifactsDefinition(paths=["ls.txt", "env.txt"]),
    }
    values.update(changes)
    return TaskDefinition.model_validate(values)


# What Launch grants the helpers of step 12 (container_grants.issue_grants stores the files).
GRANTS_AT = grants_prefix("acme", REQUEST_ID, "build", 12)
GRANTS = ContainerGrants(
    dependencies=HelperGrant(
        endpoint="https://api.example/prod/api/grants",
        capability="fgc_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        env_file_key=GRANTS_AT + "dependencies.env",
    ),
    artifacts=HelperGrant(
        endpoint="https://api.example/prod/api/grants",
        capability="fgc_ccccccccccccccccccccccccccccccccccccccccccc",
        env_file_key=GRANTS_AT + "artifacts.env",
    ),
    expires_at=datetime(2026, 11, 28, 19, 0, tzinfo=UTC),
)


def _run_request(
    task: TaskDefinition, step: int = 12, grants: ContainerGrants | None = GRANTS
) -> dict[str, object]:
    ctx = make_context(org="acme", request_id=REQUEST_ID, task_type=task.task_type, params={"Target": "prod"})
    return run_task_request(
        task=task,
        ctx=ctx,
        run_key=RunKey(REQUEST_ID, step),
        task_definition_arn="arn:aws:ecs:us-east-1:111122223333:task-definition/formica-x:1",
        config=CONFIG,
        grants=grants,
    )


def _overrides(request: dict[str, object]) -> dict[str, dict[str, object]]:
    return {o["name"]: o for o in request["overrides"]["containerOverrides"]}  # type: ignore[index]


def test_run_task_request() -> None:
    request = _run_request(_task())

    assert request["cluster"] == CONFIG.cluster_arn
    assert request["launchType"] == "FARGATE"
    assert request["count"] == 1
    assert request["networkConfiguration"] == {
        "awsvpcConfiguration": {
            "subnets": ["subnet-a", "subnet-b"],
            "securityGroups": ["sg-1"],
            "assignPublicIp": "DISABLED",
        }
    }
    assert RunKey.from_started_by(str(request["startedBy"])) == RunKey(REQUEST_ID, 12)
    assert len(str(request["startedBy"])) <= 36
    assert request["clientToken"] == client_token(RunKey(REQUEST_ID, 12))
    assert "tags" not in request  # RunTask tags would need ecs:TagResource
    overrides = _overrides(request)
    main = overrides["main"]
    assert {e["name"]: e["value"] for e in main["environment"]} == {  # type: ignore[attr-defined]
        "Target": "prod",
        "STAGE": "test",
        "COLOR": "blue",
        "FORMICA_RUN_KEY": f"{REQUEST_ID}/12",
        "FORMICA_TASK_TYPE": "build",
    }
    assert "ls -l > ls.txt" in main["command"][0]  # type: ignore[index]
    # The uploader's arguments: when, this task's artifacts prefix (its grant allows nothing else),
    # the patterns; its program is the task definition's, so no user value is shell text.
    assert overrides["artifacts"]["command"] == [
        "formica-artifacts",
        "onSuccess",
        f"acme/{REQUEST_ID}/build/artifacts/",
        "ls.txt",
        "env.txt",
    ]
    # Each helper gets its grant as an env file the ECS agent reads: its own, named by S3 ARN.
    assert overrides["dependencies"] == {
        "name": "dependencies",
        "environmentFiles": [
            {"value": f"arn:aws:s3:::formica-artifacts/{GRANTS_AT}dependencies.env", "type": "s3"}
        ],
    }
    assert overrides["artifacts"]["environmentFiles"] == [
        {"value": f"arn:aws:s3:::formica-artifacts/{GRANTS_AT}artifacts.env", "type": "s3"}
    ]


def test_the_main_container_is_given_no_grant() -> None:
    overrides = _overrides(_run_request(_task()))
    main = overrides["main"]
    assert "environmentFiles" not in main
    names = {e["name"] for e in main["environment"]}  # type: ignore[attr-defined]
    assert {GRANTS_URL_ENV, CAPABILITY_ENV}.isdisjoint(names)
    # No capability appears anywhere in RunTask's parameters (they are in the env files).
    text = json.dumps(_run_request(_task()))
    assert "fgc_" not in text
    assert "s3://" not in text


def test_helpers_without_a_grant_get_no_env_file() -> None:
    overrides = _overrides(_run_request(_task(dependencies=[], artifacts=None), grants=None))
    assert "dependencies" not in overrides  # its program finds no grant and exits 0
    assert overrides["artifacts"] == {
        "name": "artifacts",
        "command": ["formica-artifacts", "onSuccess", f"acme/{REQUEST_ID}/build/artifacts/"],
    }
    only_uploads = ContainerGrants(
        dependencies=None, artifacts=GRANTS.artifacts, expires_at=GRANTS.expires_at
    )
    overrides = _overrides(_run_request(_task(dependencies=[]), grants=only_uploads))
    assert "dependencies" not in overrides
    assert "environmentFiles" in overrides["artifacts"]


def test_artifact_patterns_are_arguments_not_shell() -> None:
    task = _task(artifacts=ArtifactsDefinition(paths=["out dir/*.txt", "$(touch x)"], when="always"))
    command = _overrides(_run_request(task))["artifacts"]["command"]
    assert command[-2:] == ["out dir/*.txt", "$(touch x)"]  # type: ignore[index]


def test_the_helpers_programs_are_fixed_in_the_task_definition() -> None:
    containers = _containers(_td())
    dependencies, artifacts = containers["dependencies"], containers["artifacts"]
    assert dependencies["entryPoint"] == ["sh", "-c", DEPENDENCIES_PROGRAM]
    assert dependencies["command"] == ["formica-dependencies"]
    assert artifacts["entryPoint"] == ["sh", "-c", UPLOAD_PROGRAM]
    assert artifacts["command"] == ["formica-artifacts", "never", ""]  # RunTask always overrides it
    assert containers["main"]["entryPoint"] == ["sh", "-c"]
    # Nothing in the registration gives a container an identity, a secret or a grant.
    assert all("secrets" not in c and "environmentFiles" not in c for c in containers.values())


def test_a_retried_launch_sends_the_same_run_task_parameters() -> None:
    # RunTask's clientToken refuses a retry whose parameters differ (ConflictException): the
    # capabilities, minted anew on a retried Launch, must not appear in them.
    fresh = ContainerGrants(
        dependencies=HelperGrant(
            endpoint="https://api.example/prod/api/grants",
            capability="fgc_ddddddddddddddddddddddddddddddddddddddddddd",
            env_file_key=GRANTS_AT + "dependencies.env",
        ),
        artifacts=HelperGrant(
            endpoint="https://api.example/prod/api/grants",
            capability="fgc_eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            env_file_key=GRANTS_AT + "artifacts.env",
        ),
        expires_at=GRANTS.expires_at,
    )
    assert _run_request(_task(), grants=fresh) == _run_request(_task())


def test_the_grants_cost_a_few_hundred_characters_of_overrides() -> None:
    with_grants = len(json.dumps(_run_request(_task())["overrides"], separators=(",", ":")))
    without = len(json.dumps(_run_request(_task(), grants=None)["overrides"], separators=(",", ":")))
    # Two env-file entries, whatever the number of dependency files.
    assert with_grants - without < 400


def test_env_files_are_named_in_the_clusters_partition() -> None:
    china = EcsLaunchConfig(**{**CONFIG.__dict__, "cluster_arn": "arn:aws-cn:ecs:cn-north-1:1:cluster/f"})
    assert s3_object_arn(china, "a/b.env") == "arn:aws-cn:s3:::formica-artifacts/a/b.env"
    assert s3_object_arn(CONFIG, "a/b.env") == "arn:aws:s3:::formica-artifacts/a/b.env"


def test_the_main_override_runs_the_script_as_the_shell_runner_would(tmp_path: Path) -> None:
    task = _task(
        script=["env NEW_ENV_VAR=xyz", "echo $NEW_ENV_VAR > out.txt", "exit 4"], working_dir=str(tmp_path)
    )
    request = _run_request(task)
    script = _overrides(request)["main"]["command"][0]  # type: ignore[index]

    # entryPoint ["sh", "-c"] + command [script] is exactly this:
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10, check=False)

    assert result.returncode == 4
    assert (tmp_path / "out.txt").read_text() == "xyz\n"


def test_client_token_is_stable_per_run_and_valid() -> None:
    token = client_token(RunKey(REQUEST_ID, 3))
    assert token == client_token(RunKey(REQUEST_ID, 3))
    assert token != client_token(RunKey(REQUEST_ID, 4))
    assert len(token) <= 64
    assert all(33 <= ord(ch) <= 126 for ch in token)


def test_oversized_overrides_are_refused_with_a_clear_error() -> None:
    with pytest.raises(OverridesTooLargeError, match=str(OVERRIDES_MAX_CHARS)):
        _run_request(_task(script=["echo " + "x" * OVERRIDES_MAX_CHARS]))


def test_overrides_json_fits_for_an_ordinary_task() -> None:
    overrides = _run_request(_task())["overrides"]
    assert len(json.dumps(overrides, separators=(",", ":"))) < OVERRIDES_MAX_CHARS


def test_public_ip_follows_the_config() -> None:
    config = EcsLaunchConfig(**{**CONFIG.__dict__, "assign_public_ip": True})
    request = run_task_request(
        task=_task(), ctx=make_context(), run_key=RunKey("r", 1), task_definition_arn="td", config=config
    )
    assert request["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"  # type: ignore[index]


def test_log_stream_is_computed_from_the_task_arn() -> None:
    arn = "arn:aws:ecs:us-east-1:111122223333:task/formica/c13b4cb40f1f4fe4a2971f76ae5a47ad"
    assert log_stream_name(arn) == "formica/main/c13b4cb40f1f4fe4a2971f76ae5a47ad"
    assert log_stream_name(arn, "artifacts") == "formica/artifacts/c13b4cb40f1f4fe4a2971f76ae5a47ad"


def test_config_from_settings_names_what_is_missing() -> None:
    settings = FormicaSettings(table_name="t", bucket_name="b", ecs_cluster_arn="arn:cluster")
    with pytest.raises(EcsConfigError) as error:
        EcsLaunchConfig.from_settings(settings)
    assert "FORMICA_ECS_SUBNET_IDS" in str(error.value)
    assert "FORMICA_CONTAINER_LOG_GROUP" in str(error.value)
    assert "FORMICA_ECS_CLUSTER_ARN" not in str(error.value)
    assert "FORMICA_ECS_TASK_ROLE_ARN" not in str(error.value)  # tasks have no task role


def test_config_from_settings_splits_lists() -> None:
    settings = FormicaSettings(
        table_name="t",
        bucket_name="b",
        region="eu-west-1",
        ecs_cluster_arn="arn:cluster",
        ecs_subnet_ids="subnet-a, subnet-b,",
        ecs_security_group_ids="sg-1",
        ecs_task_role_arn="arn:task",
        ecs_execution_role_arn="arn:exec",
        container_log_group="/logs",
        ecs_task_family_prefix="formica-prod-",
    )
    config = EcsLaunchConfig.from_settings(settings)
    assert config.family_prefix == "formica-prod-"
    assert config.subnet_ids == ("subnet-a", "subnet-b")
    assert config.region == "eu-west-1"
    assert config.bucket == "b"
