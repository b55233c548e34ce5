"""Typed models of formicary's job-definition language.

Field names are formicary's YAML keys, so a model field and the YAML key are the same word.
User-written YAML is validated with ``extra="forbid"``: a typo is an error that names the key.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from formica.jobs.durations import Duration


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


class RunnerKind(StrEnum):
    """Which Lambda / runner executes a task: derived from method and container."""

    HTTP = "HTTP"
    SHELL = "SHELL"
    CONTAINER = "CONTAINER"
    FORK = "FORK"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class VolumeMount(_Strict):
    name: str
    mount_path: str
    host_path: str | None = None
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
    image: str
    image_definition: dict[str, Any] | None = None
    cpu_limit: str | None = None
    cpu_request: str | None = None
    memory_limit: str | None = None
    memory_request: str | None = None
    ephemeral_storage_limit: str | None = None
    ephemeral_storage_request: str | None = None
    volumes: Volumes | None = None
    entrypoint: list[str] | None = None
    command: list[str] | None = None


class ServicePort(_Strict):
    number: int


class ServiceDefinition(_Strict):
    name: str
    alias: str | None = None
    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    ports: list[ServicePort] = Field(default_factory=list)
    cpu_limit: str | None = None
    cpu_request: str | None = None
    memory_limit: str | None = None
    memory_request: str | None = None
    volumes: Volumes | None = None


class ArtifactsDefinition(_Strict):
    paths: list[str] = Field(default_factory=list)
    when: str = "onSuccess"  # onSuccess | onFailed | always (formicary's spelling)
    expires_after: Duration | None = None


class CacheDefinition(_Strict):
    key: str | None = None
    keys: list[str] = Field(default_factory=list)
    key_paths: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    expires_after: Duration | None = None


class ResourcesDefinition(_Strict):
    resource_type: str | None = None
    platform: str | None = None
    tags: list[str] = Field(default_factory=list)
    value: int | None = None
    extract_config: dict[str, Any] | None = None


class WebhookDefinition(_Strict):
    url: str
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)


class NotifyChannel(_Strict):
    recipients: list[str] = Field(default_factory=list)
    when: str = "always"


class TaskDefinition(_Strict):
    task_type: str
    method: TaskMethod | None = None
    description: str | None = None
    script: list[str] = Field(default_factory=list)
    before_script: list[str] = Field(default_factory=list)
    after_script: list[str] = Field(default_factory=list)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, str] = Field(default_factory=dict)
    container: ContainerDefinition | None = None
    services: list[ServiceDefinition] = Field(default_factory=list)
    working_dir: str | None = None
    timeout: Duration | None = None
    retry: int = 0
    delay_between_retries: Duration | None = None
    allow_failure: bool = False
    always_run: bool = False
    except_: str | None = Field(default=None, alias="except")
    on_completed: str | None = None
    on_failed: str | None = None
    on_exit_code: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)
    artifacts: ArtifactsDefinition | None = None
    cache: CacheDefinition | None = None
    resources: ResourcesDefinition | None = None
    webhook: WebhookDefinition | None = None
    report_stdout: bool = False
    fork_job_type: str | None = None
    fork_job_version: str | None = None
    await_forked_tasks: list[str] = Field(default_factory=list)
    # Kubernetes pod settings formicary accepts on a task.
    pod_labels: dict[str, str] = Field(default_factory=dict)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: dict[str, Any] = Field(default_factory=dict)
    host_network: bool = False
    privileged: bool = False
    service_account: str | None = None

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
    job_type: str
    description: str | None = None
    platform: str | None = None
    url: str | None = None
    timeout: Duration | None = None
    retry: int = 0
    delay_between_retries: Duration | None = None
    hard_reset_after_retries: int = 0
    max_concurrency: int = 0
    skip_if: str | None = None
    cron_trigger: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)
    required_params: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    notify: dict[str, NotifyChannel] = Field(default_factory=dict)
    webhook: WebhookDefinition | None = None
    public_plugin: bool = False
    sem_version: str | None = None
    dynamic_template_tasks: bool = False
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
