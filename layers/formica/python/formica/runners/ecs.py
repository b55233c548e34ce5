"""The ECS Fargate runner: starts one container task attempt and returns its task ARN.

It does not wait: the task's STOPPED event (EventBridge -> functions/container_events) or the
reconciler reports the exit code back to the waiting Launch state (formica.runtime.containers).

One task, four containers sharing one ephemeral volume mounted at the workspace (/workspace or the
task's working_dir), and no task role: no container of the task can obtain AWS credentials (there
is no credentials endpoint to ask), so a tenant's image holds nothing that reaches Formica's table,
bucket, state machine or anything else.

``dependencies`` (helper image, non-essential)
    downloads the artifacts of the task's ``dependencies`` into the workspace with curl, from the
    presigned GETs its grant lists, then exits 0 (``container_script.DEPENDENCIES_PROGRAM``).
``main`` (the task's image, non-essential, starts after ``dependencies`` SUCCESS)
    runs the rendered script as ``sh -c <script>``: ``sh -c`` is the task definition's entryPoint
    (RunTask overrides cannot replace an image's ENTRYPOINT, only its CMD) and the script is the
    per-run command override. Its exit code is the task's. It is given no grant.
``artifacts`` (helper image, essential, starts after ``main`` COMPLETE)
    uploads ``artifacts.paths`` with curl through its grant, a presigned POST limited to the task's
    artifacts prefix (``container_script.UPLOAD_PROGRAM``; the run passes ``when``, the prefix and
    the patterns as its arguments, never as shell text). ECS only allows a COMPLETE dependency on a
    non-essential container and needs one essential container, so this one is essential: its exit
    ends the task once the artifacts are up. It never decides the exit code: completion reads
    ``main`` only and the program exits 0.
``logs`` (helper image, non-essential, starts after ``dependencies`` SUCCESS, beside ``main``)
    streams what ``main`` writes (the script tees it to ``.formica/output.log``) to the attempt's
    live log every few seconds, each chunk masked and PUT through its grant, a presigned PUT per
    chunk (``container_script.LOG_PROGRAM``). It ends with ``main``'s exit-code file, or when ECS
    stops it as the task ends (SIGTERM: it sends the rest first).

The grants (``formica.runners.container_grants``) reach the three helpers as ``environmentFiles``
container overrides: each names the S3 ``.env`` file holding that helper's ``FORMICA_GRANTS_URL``,
which the ECS agent reads with the execution role. The URL itself is never in RunTask's parameters,
so the overrides stay a few hundred characters and the same for a retried Launch (RunTask's client
token refuses a retry with other parameters). The main container's variables that hold a secret
config travel the same way (``formica.runners.container_secrets``): Launch writes them to the
attempt's ``main.env`` before RunTask, and ``main``'s override names that file; only the other
variables are in its ``environment``.

Task definitions are registered once per content: the registration request (image, Fargate size,
workspace, roles, log group, helper image and ``LAYOUT_VERSION``) is hashed, the family is
``{settings.ecs_task_family_prefix}{digest[:16]}`` (the stack grants RunTask on that prefix only),
and DescribeTaskDefinition on that family finds an earlier registration.
Logs go to the stack's log group with the awslogs driver; ``log_stream_name(task_arn)`` gives the
main container's stream back from the task ARN.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.jobs.models import ContainerDefinition, TaskDefinition
from formica.runners.base import TaskContext
from formica.runners.container_grants import ENV_FILE_CONTENT_TYPE, ContainerGrants, HelperGrant
from formica.runners.container_script import (
    ARTIFACTS_PROGRAM_NAME,
    DEPENDENCIES_PROGRAM,
    DEPENDENCIES_PROGRAM_NAME,
    LOG_PROGRAM,
    LOGS_PROGRAM_NAME,
    UPLOAD_PROGRAM,
    build_script,
    container_environment,
    upload_arguments,
    workspace_of,
)
from formica.runners.container_secrets import (
    EnvFile,
    SecretEnvironmentError,
    main_container,
    main_env_file_key,
)
from formica.runners.ecs_events import (
    ARTIFACTS_CONTAINER,
    DEPENDENCIES_CONTAINER,
    LOGS_CONTAINER,
    MAIN_CONTAINER,
    RUN_KEY_ENV,
    RunKey,
)
from formica.settings import FormicaSettings
from formica.store.blobs import BlobStore, BlobStoreError

logger = logging.getLogger(__name__)

LAYOUT_VERSION = "3"
"""Bump when the container layout above changes: every image then gets a new task definition.
2: no task role; the helpers use curl and their grants instead of the AWS CLI and the role.
3: the ``logs`` helper streams the live log."""
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.15.0"
"""The helper image (Amazon Linux 2: sh, curl, coreutils); only its curl is used, never the AWS CLI."""
WORKSPACE_VOLUME = "workspace"
LOG_STREAM_PREFIX = "formica"
FAMILY_PREFIX = "formica-"
OVERRIDES_MAX_CHARS = 8192  # ECS: the JSON of a RunTask's overrides, formatting included
DEFAULT_CPU_UNITS = 512
DEFAULT_MEMORY_MIB = 1024
HELPER_MEMORY_RESERVATION_MIB = 64
DEFAULT_EPHEMERAL_GIB = 20  # Fargate's free ephemeral storage; 21..200 GiB can be asked for
MAX_EPHEMERAL_GIB = 200

# Valid Fargate (Linux) task sizes: CPU units -> the memory sizes (MiB) allowed with it.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

_QUANTITY = re.compile(r"^\s*([+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


class EcsRunnerError(RuntimeError):
    """The ECS runner could not start the task."""


class EcsConfigError(EcsRunnerError):
    """A setting the ECS runner needs is missing."""


class ContainerSizeError(EcsRunnerError, ValueError):
    """A cpu/memory/storage value is not a Kubernetes quantity, or no Fargate size can hold it."""


class OverridesTooLargeError(EcsRunnerError):
    """The rendered script and environment exceed ECS's 8,192 characters of RunTask overrides."""


class EcsLaunchError(EcsRunnerError):
    """ECS refused to start the task (RunTask error or a failure such as no capacity)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


# --- sizes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FargateSize:
    cpu: int  # CPU units (1024 = 1 vCPU)
    memory: int  # MiB


def _quantity(text: str, what: str) -> tuple[Decimal, str]:
    match = _QUANTITY.match(str(text))
    if match is None:
        raise ContainerSizeError(f"{what} {text!r} is not a Kubernetes quantity")
    try:
        return Decimal(match.group(1)), match.group(2)
    except InvalidOperation as exc:  # pragma: no cover - the pattern only admits decimals
        raise ContainerSizeError(f"{what} {text!r} is not a Kubernetes quantity") from exc


def parse_cpu(text: str) -> Decimal:
    """Kubernetes CPU quantity -> vCPUs: ``"500m"`` -> 0.5, ``"1"`` -> 1, ``"0.25"`` -> 0.25."""
    number, suffix = _quantity(text, "cpu")
    if suffix == "m":
        return number / 1000
    if suffix == "":
        return number
    raise ContainerSizeError(f"cpu {text!r}: unknown suffix {suffix!r} (use cores or millicores, e.g. 500m)")


def parse_memory_bytes(text: str) -> int:
    """Kubernetes memory quantity -> bytes (rounded up): ``"512Mi"``, ``"2Gi"``, ``"1G"``, ``"1e9"``.

    A lower-case ``m`` means megabytes: formicary's examples write ``memory_limit: 500m`` for 500 MB
    (Kubernetes would read millibytes, which no container can run in).
    """
    number, suffix = _quantity(text, "memory")
    if suffix in _BINARY:
        value = number * _BINARY[suffix]
    elif suffix in _DECIMAL:
        value = number * _DECIMAL[suffix]
    elif suffix == "m":
        value = number * 10**6
    else:
        raise ContainerSizeError(f"memory {text!r}: unknown suffix {suffix!r}")
    return math.ceil(value)


def parse_memory_mib(text: str) -> int:
    return math.ceil(parse_memory_bytes(text) / 2**20)


def fargate_size(cpu: str | None = None, memory: str | None = None) -> FargateSize:
    """The smallest valid Fargate size with at least ``cpu`` (Kubernetes cores) and ``memory``.

    With neither given: DEFAULT_CPU_UNITS / DEFAULT_MEMORY_MIB. With one given, the other is the
    smallest that Fargate pairs with it.

    Raises
    ------
    ContainerSizeError
        A value is not a quantity, or exceeds Fargate's largest size (16 vCPU, 120 GiB).
    """
    if cpu is None and memory is None:
        return FargateSize(DEFAULT_CPU_UNITS, DEFAULT_MEMORY_MIB)
    cpu_units = math.ceil(parse_cpu(cpu) * 1024) if cpu is not None else 0
    memory_mib = parse_memory_mib(memory) if memory is not None else 0
    for units, memories in FARGATE_SIZES.items():
        if units < cpu_units:
            continue
        for size in memories:
            if size >= memory_mib:
                return FargateSize(units, size)
    raise ContainerSizeError(
        f"no Fargate size holds cpu {cpu!r} and memory {memory!r} (at most 16 vCPU and 120 GiB)"
    )


def fargate_size_for(container: ContainerDefinition | None) -> FargateSize:
    """A container's Fargate size from its limits, falling back to its requests."""
    if container is None:
        return fargate_size()
    return fargate_size(
        container.cpu_limit or container.cpu_request, container.memory_limit or container.memory_request
    )


def ephemeral_storage_gib(container: ContainerDefinition | None) -> int | None:
    """GiB of ephemeral storage to ask Fargate for; None when the free 20 GiB suffice."""
    if container is None:
        return None
    text = container.ephemeral_storage_limit or container.ephemeral_storage_request
    if text is None:
        return None
    gib = math.ceil(parse_memory_bytes(text) / 2**30)
    if gib <= DEFAULT_EPHEMERAL_GIB:
        return None
    if gib > MAX_EPHEMERAL_GIB:
        raise ContainerSizeError(f"ephemeral storage {text!r} exceeds Fargate's {MAX_EPHEMERAL_GIB} GiB")
    return gib


# --- configuration ---------------------------------------------------------------------------


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class EcsLaunchConfig:
    """Where tasks run: the stack's cluster, network, execution role, log group and bucket.

    There is no task role: the containers get no AWS credentials (``FORMICA_ECS_TASK_ROLE_ARN`` is
    not read). The execution role is the ECS agent's (image pulls, logs, the helpers' ``.env`` grant
    files), never the containers'.
    """

    cluster_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    execution_role_arn: str
    log_group: str
    region: str
    bucket: str
    assign_public_ip: bool = False  # the stack's task subnets are private with a NAT gateway
    helper_image: str = AWS_CLI_IMAGE
    family_prefix: str = FAMILY_PREFIX

    @classmethod
    def from_settings(cls, settings: FormicaSettings) -> EcsLaunchConfig:
        """Raises EcsConfigError naming every FORMICA_ECS_* / FORMICA_CONTAINER_LOG_GROUP that is unset."""
        values = {
            "FORMICA_ECS_CLUSTER_ARN": settings.ecs_cluster_arn,
            "FORMICA_ECS_SUBNET_IDS": settings.ecs_subnet_ids,
            "FORMICA_ECS_SECURITY_GROUP_IDS": settings.ecs_security_group_ids,
            "FORMICA_ECS_EXECUTION_ROLE_ARN": settings.ecs_execution_role_arn,
            "FORMICA_CONTAINER_LOG_GROUP": settings.container_log_group,
        }
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise EcsConfigError("ECS runner settings missing: " + ", ".join(missing))
        return cls(
            cluster_arn=str(settings.ecs_cluster_arn),
            subnet_ids=_split(settings.ecs_subnet_ids),
            security_group_ids=_split(settings.ecs_security_group_ids),
            execution_role_arn=str(settings.ecs_execution_role_arn),
            log_group=str(settings.container_log_group),
            region=settings.region,
            bucket=settings.bucket_name,
            family_prefix=settings.ecs_task_family_prefix,
        )


# --- requests (pure) -------------------------------------------------------------------------


def log_stream_name(task_arn: str, container: str = MAIN_CONTAINER) -> str:
    """The awslogs stream of ``container`` in the task: ``formica/<container>/<task id>``."""
    return f"{LOG_STREAM_PREFIX}/{container}/{task_arn.rsplit('/', 1)[-1]}"


def _log_configuration(config: EcsLaunchConfig) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": config.log_group,
            "awslogs-region": config.region,
            "awslogs-stream-prefix": LOG_STREAM_PREFIX,
        },
    }


def task_definition_request(
    *,
    image: str,
    size: FargateSize,
    workspace: str,
    config: EcsLaunchConfig,
    ephemeral_gib: int | None = None,
) -> dict[str, Any]:
    """The RegisterTaskDefinition parameters for one image and size, family included."""
    mount = [{"sourceVolume": WORKSPACE_VOLUME, "containerPath": workspace, "readOnly": False}]
    logs = _log_configuration(config)
    # Soft reservations (no hard limit: main may use the whole task's memory). Their sum stays within
    # the task's memory as Fargate requires; moto also insists on a memory value per container.
    # The helpers' programs are fixed and live here; a run only passes arguments (the uploader's
    # patterns) and grants (env files) in its overrides.
    helper = {
        "image": config.helper_image,
        "memoryReservation": HELPER_MEMORY_RESERVATION_MIB,
        "workingDirectory": workspace,
        "mountPoints": mount,
        "logConfiguration": logs,
    }
    containers = [
        {
            "name": DEPENDENCIES_CONTAINER,
            "essential": False,
            **helper,
            "entryPoint": ["sh", "-c", DEPENDENCIES_PROGRAM],
            "command": [DEPENDENCIES_PROGRAM_NAME],
        },
        {
            "name": MAIN_CONTAINER,
            "image": image,
            "essential": False,
            "memoryReservation": size.memory - 3 * HELPER_MEMORY_RESERVATION_MIB,
            "entryPoint": ["sh", "-c"],
            "command": ["exit 0"],
            "workingDirectory": workspace,
            "mountPoints": mount,
            "logConfiguration": logs,
            "dependsOn": [{"containerName": DEPENDENCIES_CONTAINER, "condition": "SUCCESS"}],
        },
        {
            "name": LOGS_CONTAINER,
            "essential": False,
            **helper,
            "entryPoint": ["sh", "-c", LOG_PROGRAM],
            "command": [LOGS_PROGRAM_NAME],
            "dependsOn": [{"containerName": DEPENDENCIES_CONTAINER, "condition": "SUCCESS"}],
        },
        {
            "name": ARTIFACTS_CONTAINER,
            "essential": True,
            **helper,
            "entryPoint": ["sh", "-c", UPLOAD_PROGRAM],
            "command": [ARTIFACTS_PROGRAM_NAME, "never", ""],  # every run overrides it
            "dependsOn": [{"containerName": MAIN_CONTAINER, "condition": "COMPLETE"}],
        },
    ]
    request: dict[str, Any] = {
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": str(size.cpu),
        "memory": str(size.memory),
        # No taskRoleArn: the containers (the tenant's main among them) get no credentials.
        "executionRoleArn": config.execution_role_arn,
        "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
        "volumes": [{"name": WORKSPACE_VOLUME}],
        "containerDefinitions": containers,
    }
    if ephemeral_gib is not None:
        request["ephemeralStorage"] = {"sizeInGiB": ephemeral_gib}
    digest = task_definition_digest(request)
    return {"family": config.family_prefix + digest[:16], **request}


def task_definition_digest(request: Mapping[str, Any]) -> str:
    """sha256 of the registration content (family excluded) and LAYOUT_VERSION."""
    content = {key: value for key, value in request.items() if key != "family"}
    text = json.dumps({"layout": LAYOUT_VERSION, "request": content}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _env_list(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in values.items()]


def client_token(run_key: RunKey) -> str:
    """RunTask's idempotency token: a retried Launch for the same run starts no second task."""
    return "formica-" + hashlib.sha256(str(run_key).encode()).hexdigest()[:48]


def s3_object_arn(config: EcsLaunchConfig, key: str) -> str:
    """``arn:<partition>:s3:::<bucket>/<key>``, the partition taken from the cluster's ARN."""
    partition = config.cluster_arn.split(":")[1] if config.cluster_arn.startswith("arn:") else "aws"
    return f"arn:{partition}:s3:::{config.bucket}/{key}"


def _env_files(grant: HelperGrant | None, config: EcsLaunchConfig) -> dict[str, Any]:
    if grant is None:
        return {}
    return {"environmentFiles": [{"value": s3_object_arn(config, grant.env_file_key), "type": "s3"}]}


@dataclass(frozen=True)
class MainOverride:
    """The main container's part of RunTask: its ``environment`` and ``command`` overrides, and the
    attempt's ``main.env`` (its key and text; None when nothing is secret), stored before RunTask."""

    environment: dict[str, str]
    command: str
    env_file_key: str | None = None
    env_file: EnvFile | None = None


def main_override(task: TaskDefinition, ctx: TaskContext, run_key: RunKey) -> MainOverride:
    """The main container's variables (``container_environment`` and Formica's own) and script, with
    whatever holds a form of one of ``ctx.secrets`` set apart for ``main.env``
    (``container_secrets.main_container``).

    Raises
    ------
    SecretEnvironmentError
        A secret variable, or the script holding a secret, is too long for an env file line.
    """
    environment = container_environment(
        task, ctx, {RUN_KEY_ENV: str(run_key), "FORMICA_TASK_TYPE": task.task_type}
    )
    script = build_script(task, workspace_of(task))
    main = main_container(environment, script, ctx.secrets, task_type=task.task_type)
    if main.env_file is None:
        return MainOverride(environment=main.environment, command=main.command)
    return MainOverride(
        environment=main.environment,
        command=main.command,
        env_file_key=main_env_file_key(ctx.org, ctx.request_id, task.task_type, run_key.step),
        env_file=main.env_file,
    )


def run_task_request(
    *,
    task: TaskDefinition,
    ctx: TaskContext,
    run_key: RunKey,
    task_definition_arn: str,
    config: EcsLaunchConfig,
    grants: ContainerGrants | None = None,
    main: MainOverride | None = None,
) -> dict[str, Any]:
    """The RunTask parameters for one attempt of ``task``; the helpers' ``grants`` as env files, and
    the main container's secrets as its own (``main``, by default ``main_override``: its file must
    be stored before RunTask).

    Raises
    ------
    OverridesTooLargeError
        The overrides' JSON exceeds ECS's limit of 8,192 characters.
    SecretEnvironmentError
        A secret variable, or the script holding a secret, is too long for an env file line.
    """
    main = main or main_override(task, ctx, run_key)
    main_files: dict[str, Any] = {}
    if main.env_file_key is not None:
        main_files = {"environmentFiles": [{"value": s3_object_arn(config, main.env_file_key), "type": "s3"}]}
    artifacts = task.artifacts
    upload = upload_arguments(
        org=ctx.org,
        request_id=ctx.request_id,
        task_type=task.task_type,
        paths=artifacts.paths if artifacts else [],
        when=artifacts.when if artifacts else "onSuccess",
    )
    containers: list[dict[str, Any]] = []
    if grants is not None and grants.dependencies is not None:
        containers.append({"name": DEPENDENCIES_CONTAINER, **_env_files(grants.dependencies, config)})
    containers += [
        {
            "name": MAIN_CONTAINER,
            "command": [main.command],
            "environment": _env_list(main.environment),
            **main_files,
        },
        {
            "name": ARTIFACTS_CONTAINER,
            "command": [ARTIFACTS_PROGRAM_NAME, *upload],
            **_env_files(grants.artifacts if grants else None, config),
        },
    ]
    if grants is not None and grants.logs is not None:
        containers.append({"name": LOGS_CONTAINER, **_env_files(grants.logs, config)})
    overrides = {"containerOverrides": containers}
    size = len(json.dumps(overrides, separators=(",", ":")))
    if size > OVERRIDES_MAX_CHARS:
        raise OverridesTooLargeError(
            f"task {task.task_type!r}: script, environment and artifact paths take {size} characters"
            f" of RunTask overrides; ECS allows {OVERRIDES_MAX_CHARS}"
        )
    return {
        "cluster": config.cluster_arn,
        "taskDefinition": task_definition_arn,
        "launchType": "FARGATE",
        "count": 1,
        "startedBy": run_key.started_by(),
        "clientToken": client_token(run_key),
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": list(config.subnet_ids),
                "securityGroups": list(config.security_group_ids),
                "assignPublicIp": "ENABLED" if config.assign_public_ip else "DISABLED",
            }
        },
        # No tags: tagging at RunTask needs ecs:TagResource, and the run is found by startedBy/env.
        "overrides": overrides,
    }


# --- the adapter -----------------------------------------------------------------------------


@dataclass
class EcsRunner:
    """Starts, stops and describes Formica's Fargate tasks. ``client`` defaults to the cached ECS client;
    ``blobs`` is the bucket the main container's ``main.env`` goes to (without it, a task with a
    secret variable is refused rather than given it in RunTask's parameters)."""

    config: EcsLaunchConfig
    client: Any | None = None
    blobs: BlobStore | None = None
    _families: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def _ecs(self) -> Any:
        if self.client is not None:
            return self.client
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("ecs")

    def ensure_task_definition(self, request: Mapping[str, Any]) -> str:
        """The ARN of a task definition with exactly this content: cached, described, or registered."""
        family = str(request["family"])
        with self._lock:
            cached = self._families.get(family)
        if cached:
            return cached
        arn = self._describe_family(family)
        if arn is None:
            try:
                response = self._ecs.register_task_definition(**request)
            except (ClientError, BotoCoreError) as exc:
                raise EcsLaunchError(f"could not register task definition {family}: {exc}") from exc
            arn = str(response["taskDefinition"]["taskDefinitionArn"])
            logger.info("task definition registered", extra={"family": family, "task_definition_arn": arn})
        with self._lock:
            self._families[family] = arn
        return arn

    def _describe_family(self, family: str) -> str | None:
        try:
            response = self._ecs.describe_task_definition(taskDefinition=family)
        except ClientError as exc:
            # ECS answers ClientException for an unknown family: register it.
            if exc.response.get("Error", {}).get("Code") in (
                "ClientException",
                "TaskDefinitionNotFoundException",
            ):
                return None
            raise EcsLaunchError(f"could not describe task definition {family}: {exc}") from exc
        except BotoCoreError as exc:
            raise EcsLaunchError(f"could not describe task definition {family}: {exc}") from exc
        definition = response.get("taskDefinition") or {}
        if definition.get("status", "ACTIVE") != "ACTIVE":
            return None
        return str(definition["taskDefinitionArn"])

    def launch(
        self, task: TaskDefinition, ctx: TaskContext, run_key: RunKey, grants: ContainerGrants | None = None
    ) -> str:
        """Start one attempt of a container task; returns the ECS task ARN. ``grants`` are what its
        helper containers may download and upload (``container_grants.issue_grants``; None: nothing).

        Raises
        ------
        ContainerSizeError, OverridesTooLargeError, EcsLaunchError
            The task cannot be started as written (a secret variable too long for an env file
            among the reasons), or ECS refused it.
        EcsConfigError
            The task has a secret variable and the runner no bucket to put it in.
        """
        if task.container is None or not task.container.image.strip():
            raise EcsLaunchError(f"task {task.task_type!r} has no container image")
        try:
            main = main_override(task, ctx, run_key)
        except SecretEnvironmentError as exc:
            raise EcsLaunchError(str(exc)) from exc
        td_request = task_definition_request(
            image=task.container.image.strip(),
            size=fargate_size_for(task.container),
            workspace=workspace_of(task),
            config=self.config,
            ephemeral_gib=ephemeral_storage_gib(task.container),
        )
        td_arn = self.ensure_task_definition(td_request)
        self._store_main_env(main)
        request = run_task_request(
            task=task,
            ctx=ctx,
            run_key=run_key,
            task_definition_arn=td_arn,
            config=self.config,
            grants=grants,
            main=main,
        )
        try:
            response = self._ecs.run_task(**request)
        except (ClientError, BotoCoreError) as exc:
            raise EcsLaunchError(f"RunTask failed for {task.task_type!r}: {exc}") from exc
        tasks = response.get("tasks") or []
        if not tasks:
            failures = response.get("failures") or [{}]
            reason = str(failures[0].get("reason") or "no task started")
            detail = failures[0].get("detail")
            raise EcsLaunchError(
                f"ECS did not start {task.task_type!r}: {reason} {detail or ''}".strip(), reason
            )
        task_arn = str(tasks[0]["taskArn"])
        logger.info(
            "ecs task started",
            extra={"request_id": ctx.request_id, "task_type": task.task_type, "task_arn": task_arn},
        )
        return task_arn

    def _store_main_env(self, main: MainOverride) -> None:
        """Write the main container's ``main.env`` (before RunTask: the agent reads it at start)."""
        if main.env_file_key is None or main.env_file is None:
            return
        if self.blobs is None:
            raise EcsConfigError("the ECS runner has no bucket for the main container's secret variables")
        try:
            self.blobs.put_bytes(main.env_file_key, main.env_file.data, ENV_FILE_CONTENT_TYPE)
        except BlobStoreError as exc:
            raise EcsLaunchError(f"could not store the main container's secret variables: {exc}") from exc

    def stop(self, task_arn: str, reason: str) -> None:
        """StopTask; a task ECS no longer knows is already stopped."""
        try:
            self._ecs.stop_task(cluster=self.config.cluster_arn, task=task_arn, reason=reason[:255])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("InvalidParameterException", "ClientException"):
                logger.info("ecs task already gone", extra={"task_arn": task_arn, "code": code})
                return
            raise EcsRunnerError(f"could not stop {task_arn}: {exc}") from exc
        except BotoCoreError as exc:
            raise EcsRunnerError(f"could not stop {task_arn}: {exc}") from exc

    def describe(self, task_arns: Sequence[str]) -> list[dict[str, Any]]:
        """DescribeTasks in batches of 100 (ECS's limit); tasks ECS forgot are left out."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(task_arns), 100):
            batch = list(task_arns[start : start + 100])
            try:
                response = self._ecs.describe_tasks(cluster=self.config.cluster_arn, tasks=batch)
            except (ClientError, BotoCoreError) as exc:
                raise EcsRunnerError(f"could not describe tasks: {exc}") from exc
            found.extend(response.get("tasks") or [])
        return found
