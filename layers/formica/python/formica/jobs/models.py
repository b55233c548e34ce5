"""Typed models of formicary's job-definition language.

Field names are formicary's YAML keys, so a model field and the YAML key are the same word.
User-written YAML is validated with ``extra="forbid"``: a typo is an error that names the key.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from formica.jobs.durations import Duration


def go_str(value: Any) -> Any:
    """Read a YAML scalar into a string field the way Go's yaml.v3 does.

    ``1`` becomes ``"1"``, ``true`` becomes ``"true"`` and a null (for instance a line whose
    template rendered empty) becomes ``""``; anything else is left for pydantic to judge.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


GoStr = Annotated[str, BeforeValidator(go_str)]
"""A string field that also accepts numbers and booleans, as formicary does."""
OptGoStr = Annotated[str | None, BeforeValidator(go_str)]
"""An optional string: absent is None, present but null (an empty template) is ``""``."""


class TaskMethod(StrEnum):
    HTTP_GET = "HTTP_GET"
    HTTP_POST_FORM = "HTTP_POST_FORM"
    HTTP_POST_JSON = "HTTP_POST_JSON"
    HTTP_PUT_JSON = "HTTP_PUT_JSON"
    HTTP_DELETE = "HTTP_DELETE"
    SHELL = "SHELL"
    DOCKER = "DOCKER"
    KUBERNETES = "KUBERNETES"
    FORK_JOB = "FORK_JOB"
    AWAIT_FORKED_JOB = "AWAIT_FORKED_JOB"
    # Parsed so that formicary definitions load, refused at validation: Formica does not run them.
    MESSAGING = "MESSAGING"
    WEBSOCKET = "WEBSOCKET"
    EXPIRE_ARTIFACTS = "EXPIRE_ARTIFACTS"
    PURGE_JOBS = "PURGE_JOBS"
    MANUAL = "MANUAL"


HTTP_METHODS = frozenset(
    {
        TaskMethod.HTTP_GET,
        TaskMethod.HTTP_POST_FORM,
        TaskMethod.HTTP_POST_JSON,
        TaskMethod.HTTP_PUT_JSON,
        TaskMethod.HTTP_DELETE,
    }
)
CONTAINER_METHODS = frozenset({TaskMethod.DOCKER, TaskMethod.KUBERNETES})
UNSUPPORTED_METHODS = frozenset(
    {
        TaskMethod.MESSAGING,
        TaskMethod.WEBSOCKET,
        TaskMethod.EXPIRE_ARTIFACTS,
        TaskMethod.PURGE_JOBS,
        TaskMethod.MANUAL,
    }
)


class ExitCodeAction(StrEnum):
    """What an exit code (or on_completed / on_failed) can lead to besides another task."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    FATAL = "FATAL"
    EXECUTING = "EXECUTING"
    RESTART_TASK = "RESTART_TASK"
    RESTART_JOB = "RESTART_JOB"


ERROR_CODE_PATTERN = re.compile(r"ERR_[A-Za-z0-9_]+")
"""A target such as ``ERR_BLAH``: fail the task with that error code."""
EXIT_CODE_STATE_KEYS = frozenset({"COMPLETED", "FAILED"})
"""on_exit_code keys that are states, not numbers: the same as on_completed / on_failed."""


def is_action(target: str) -> bool:
    """True when a routing target is an ExitCodeAction or an ERR_* error code, not a task."""
    return target in ExitCodeAction.__members__ or ERROR_CODE_PATTERN.fullmatch(target) is not None


class RunnerKind(StrEnum):
    """Which Lambda / runner executes a task: derived from method and container."""

    HTTP = "HTTP"
    SHELL = "SHELL"
    CONTAINER = "CONTAINER"
    FORK = "FORK"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        # Go decodes `key: null` (often a template that rendered empty) to the zero value: take the
        # field's default where it has a non-null one; required and optional fields see the null.
        if not isinstance(data, dict):
            return data
        result = dict(data)
        for key, value in data.items():
            if value is not None or not isinstance(key, str):
                continue
            info = cls.model_fields.get(key) or next(
                (f for f in cls.model_fields.values() if f.alias == key), None
            )
            if (
                info is not None
                and not info.is_required()
                and (info.default_factory or info.default is not None)
            ):
                del result[key]
        return result


class VolumeMount(_Strict):
    name: GoStr
    mount_path: GoStr
    host_path: OptGoStr = None
    read_only: bool = False
    sources: list[dict[str, Any]] = Field(default_factory=list)


class Volumes(_Strict):
    host_path: list[VolumeMount] = Field(default_factory=list)
    empty_dir: list[VolumeMount] = Field(default_factory=list)
    projected: list[VolumeMount] = Field(default_factory=list)
    secret: list[VolumeMount] = Field(default_factory=list)
    config_map: list[VolumeMount] = Field(default_factory=list)
    persistent_volume_claim: list[VolumeMount] = Field(default_factory=list)


class ContainerDefinition(_Strict):
    image: GoStr
    image_definition: dict[GoStr, Any] | None = None
    cpu_limit: OptGoStr = None
    cpu_request: OptGoStr = None
    memory_limit: OptGoStr = None
    memory_request: OptGoStr = None
    ephemeral_storage_limit: OptGoStr = None
    ephemeral_storage_request: OptGoStr = None
    volumes: Volumes | None = None
    entrypoint: list[GoStr] | None = None
    command: list[GoStr] | None = None


class ServicePort(_Strict):
    number: int


class ServiceDefinition(_Strict):
    name: GoStr
    alias: OptGoStr = None
    image: GoStr
    command: list[GoStr] | None = None
    entrypoint: list[GoStr] | None = None
    ports: list[ServicePort] = Field(default_factory=list)
    cpu_limit: OptGoStr = None
    cpu_request: OptGoStr = None
    memory_limit: OptGoStr = None
    memory_request: OptGoStr = None
    volumes: Volumes | None = None


class ArtifactsDefinition(_Strict):
    paths: list[GoStr] = Field(default_factory=list)
    when: GoStr = "onSuccess"  # onSuccess | onFailed | always (formicary's spelling)
    expires_after: Duration | None = None


class CacheDefinition(_Strict):
    key: OptGoStr = None
    keys: list[GoStr] = Field(default_factory=list)
    key_paths: list[GoStr] = Field(default_factory=list)
    paths: list[GoStr] = Field(default_factory=list)
    expires_after: Duration | None = None


class ResourcesDefinition(_Strict):
    resource_type: OptGoStr = None
    platform: OptGoStr = None
    tags: list[GoStr] = Field(default_factory=list)
    value: int | None = None
    extract_config: dict[GoStr, Any] | None = None


class WebhookDefinition(_Strict):
    url: GoStr
    method: GoStr = "POST"
    headers: dict[GoStr, GoStr] = Field(default_factory=dict)
    query: dict[GoStr, GoStr] = Field(default_factory=dict)


class NotifyChannel(_Strict):
    recipients: list[GoStr] = Field(default_factory=list)
    when: GoStr = "always"

    @model_validator(mode="before")
    @classmethod
    def _null_is_empty(cls, data: Any) -> Any:
        return {} if data is None else data


class TaskDefinition(_Strict):
    task_type: GoStr
    method: TaskMethod | None = None
    description: OptGoStr = None
    script: list[GoStr] = Field(default_factory=list)
    before_script: list[GoStr] = Field(default_factory=list)
    after_script: list[GoStr] = Field(default_factory=list)
    url: OptGoStr = None
    headers: dict[GoStr, GoStr] = Field(default_factory=dict)
    query: dict[GoStr, GoStr] = Field(default_factory=dict)
    variables: dict[GoStr, Any] = Field(default_factory=dict)
    environment: dict[GoStr, GoStr] = Field(default_factory=dict)
    container: ContainerDefinition | None = None
    services: list[ServiceDefinition] = Field(default_factory=list)
    working_dir: OptGoStr = None
    timeout: Duration | None = None
    retry: int = 0
    delay_between_retries: Duration | None = None
    allow_failure: bool = False
    always_run: bool = False
    except_: OptGoStr = Field(default=None, alias="except")
    on_completed: OptGoStr = None
    on_failed: OptGoStr = None
    on_exit_code: dict[GoStr, GoStr] = Field(default_factory=dict)
    tags: list[GoStr] = Field(default_factory=list)
    dependencies: list[GoStr] = Field(default_factory=list)
    artifacts: ArtifactsDefinition | None = None
    cache: CacheDefinition | None = None
    resources: ResourcesDefinition | None = None
    webhook: WebhookDefinition | None = None
    report_stdout: bool = False
    fork_job_type: OptGoStr = None
    fork_job_version: OptGoStr = None
    await_forked_tasks: list[GoStr] = Field(default_factory=list)
    # Kubernetes pod settings formicary accepts on a task.
    pod_labels: dict[GoStr, GoStr] = Field(default_factory=dict)
    pod_annotations: dict[GoStr, GoStr] = Field(default_factory=dict)
    node_selector: dict[GoStr, GoStr] = Field(default_factory=dict)
    tolerations: dict[GoStr, Any] = Field(default_factory=dict)
    host_network: bool = False
    privileged: bool = False
    service_account: OptGoStr = None
    # More of formicary's task keys (its TaskDefinition and ExecutorOptions), accepted so that its
    # definitions load; Formica's runners use what applies to them and ignore the rest.
    node_tolerations: dict[GoStr, GoStr] = Field(default_factory=dict)
    affinity: dict[GoStr, Any] | None = None
    network_mode: OptGoStr = None
    allow_start_if_completed: bool = False
    job_version: OptGoStr = None
    artifact_ids: list[GoStr] = Field(default_factory=list)
    cost_factor: float = 0.0
    execute_command_without_shell: bool = False
    debug: bool = False
    messaging_request_queue: OptGoStr = None
    messaging_reply_queue: OptGoStr = None

    @field_validator("on_exit_code", mode="after")
    @classmethod
    def _canonical_exit_codes(cls, value: dict[str, str]) -> dict[str, str]:
        canonical: dict[str, str] = {}
        for key, target in value.items():
            text = key.strip()
            if re.fullmatch(r"\+?\d+", text):
                name = str(int(text))
            elif text.upper() in EXIT_CODE_STATE_KEYS:
                name = text.upper()
            else:
                raise ValueError(
                    f"on_exit_code key {key!r} is not an exit code: use a number (exit code or HTTP "
                    "status) or COMPLETED / FAILED"
                )
            if name in canonical:
                raise ValueError(f"on_exit_code names exit code {name} twice")
            canonical[name] = target
        return canonical

    @model_validator(mode="after")
    def _states_into_on_completed_and_on_failed(self) -> TaskDefinition:
        # formicary stores on_completed / on_failed as on_exit_code[COMPLETED] / [FAILED]; Formica
        # keeps them in on_completed / on_failed so on_exit_code holds only numeric codes.
        for state, attribute in (("COMPLETED", "on_completed"), ("FAILED", "on_failed")):
            target = self.on_exit_code.pop(state, None)
            if target is None:
                continue
            current = getattr(self, attribute)
            if current and current != target:
                raise ValueError(f"on_exit_code {state} names {target!r} but {attribute} names {current!r}")
            object.__setattr__(self, attribute, target)
        return self

    def exit_code_target(self, code: int) -> str | None:
        """The on_exit_code target for an exit code (or HTTP status), if one is mapped."""
        return self.on_exit_code.get(str(code))

    @property
    def runner(self) -> RunnerKind:
        """The runner that executes this task (a task with ``container`` and no method is a container)."""
        if self.method in HTTP_METHODS:
            return RunnerKind.HTTP
        if self.method in (TaskMethod.FORK_JOB, TaskMethod.AWAIT_FORKED_JOB):
            return RunnerKind.FORK
        if self.method in CONTAINER_METHODS or (self.method is None and self.container is not None):
            return RunnerKind.CONTAINER
        return RunnerKind.SHELL

    def next_tasks(self) -> list[str]:
        """Every target named by on_completed / on_failed / on_exit_code, in order, without duplicates."""
        targets = [self.on_completed, self.on_failed, *self.on_exit_code.values()]
        seen: dict[str, None] = {}
        for target in targets:
            if target:
                seen.setdefault(target, None)
        return list(seen)


class JobDefinition(_Strict):
    job_type: GoStr
    description: OptGoStr = None
    platform: OptGoStr = None
    url: OptGoStr = None
    timeout: Duration | None = None
    retry: int = 0
    delay_between_retries: Duration | None = None
    hard_reset_after_retries: int = 0
    max_concurrency: int = 0
    skip_if: OptGoStr = None
    cron_trigger: OptGoStr = None
    job_variables: dict[GoStr, Any] = Field(default_factory=dict)
    required_params: list[GoStr] = Field(default_factory=list)
    tags: list[GoStr] = Field(default_factory=list)
    notify: dict[str, NotifyChannel] = Field(default_factory=dict)
    webhook: WebhookDefinition | None = None
    public_plugin: bool = False
    sem_version: OptGoStr = None
    dynamic_template_tasks: bool = False
    resources: ResourcesDefinition | None = None
    tasks: list[TaskDefinition]

    def task(self, task_type: str) -> TaskDefinition:
        for task in self.tasks:
            if task.task_type == task_type:
                return task
        raise KeyError(task_type)

    @property
    def root_task(self) -> TaskDefinition:
        """The task no other task names as a next task (validation guarantees exactly one)."""
        named = {target for task in self.tasks for target in task.next_tasks()}
        for task in self.tasks:
            if task.task_type not in named:
                return task
        return self.tasks[0]
