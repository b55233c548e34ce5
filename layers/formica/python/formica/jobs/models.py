"""Typed models of formicary's job-definition language.

Field names are formicary's YAML keys, so a model field and the YAML key are the same word.
User-written YAML is validated with ``extra="forbid"``: a typo is an error that names the key.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from formica.jobs.durations import Duration
from formica.jobs.limits import FAN_OUT_DEFAULT_PARALLEL


def go_str(value: Any) -> Any:
    """Read a YAML scalar into a string field the way Go's yaml.v3 does.

    ``1`` becomes ``"1"``, ``true`` becomes ``"true"`` and a null (for instance a line whose
    template rendered empty) becomes ``""``; anything else is left for pydantic to judge.
    """
    if value is None:
        return ""
    text = getattr(value, "yaml_text", None)  # a number as written in the YAML (yamlload keeps it)
    if isinstance(text, str):
        return text
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

LATEST_VERSION = "latest"
"""``fork_job_version: latest``: the job type's latest version (as when the field is absent)."""
_VERSION_TEXT = re.compile(r"[A-Za-z0-9._+-]+")
VERSION_TEXT_MAX_CHARS = 64
"""The longest ``fork_job_version`` text (a sem_version to match)."""


def fork_version_text(value: Any) -> Any:
    """Read ``fork_job_version``: a stored version number, ``latest`` or a sem_version to match.

    A whole number (``3``) becomes ``"3"``; null or empty means the latest version. A number with
    a fraction (``1.5``), a number below 1, a boolean, or text with characters outside
    ``[A-Za-z0-9._+-]`` or over ``VERSION_TEXT_MAX_CHARS`` characters is refused: ``1.5`` written
    bare could mean neither a stored version (those are whole numbers) nor, safely, a sem_version
    (YAML reads ``1.10`` and ``1.1`` as the same number), so a sem_version is written in quotes.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        raise ValueError(
            "fork_job_version must be a version number (3), latest, or a sem_version such as '1.0-dev'"
        )
    if isinstance(value, float):
        written = getattr(value, "yaml_text", repr(value))
        raise ValueError(
            f"fork_job_version {written} is a number with a fraction: write a version number (3), latest, "
            f"or a sem_version in quotes ('{written}')"
        )
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"fork_job_version {int(value)} is not a version: version numbers start at 1")
        return str(int(value))
    if isinstance(value, str):
        text = value.strip()
        if len(text) > VERSION_TEXT_MAX_CHARS or (text and not _VERSION_TEXT.fullmatch(text)):
            shown = repr(text) if len(text) <= VERSION_TEXT_MAX_CHARS else f"of {len(text)} characters"
            raise ValueError(
                f"fork_job_version {shown} is not a version: use a version number, latest, or a "
                f"sem_version of letters, digits, '.', '_', '+' and '-' (at most {VERSION_TEXT_MAX_CHARS} "
                "characters)"
            )
        return text
    return value


ForkVersion = Annotated[str | None, BeforeValidator(fork_version_text)]
"""``fork_job_version`` as text: ``""`` (latest), ``"latest"``, digits (a version) or a sem_version."""


def wanted_version(text: str | None) -> int | str | None:
    """What a ``fork_job_version`` asks for: None (the latest version), a version number, or the
    sem_version text to match (``DefinitionRepository.resolve_version`` takes it as written)."""
    cleaned = (text or "").strip()
    if not cleaned or cleaned == LATEST_VERSION:
        return None
    if cleaned.isascii() and cleaned.isdigit():
        return int(cleaned)
    return cleaned


class TaskMethod(StrEnum):
    # formicary's HTTP methods are these six (its types.TaskMethod): there is no bare HTTP_PUT or
    # HTTP_POST, so those stay unknown and the message suggests the closest.
    HTTP_GET = "HTTP_GET"
    HTTP_POST_FORM = "HTTP_POST_FORM"
    HTTP_POST_JSON = "HTTP_POST_JSON"
    HTTP_PUT_FORM = "HTTP_PUT_FORM"
    HTTP_PUT_JSON = "HTTP_PUT_JSON"
    HTTP_DELETE = "HTTP_DELETE"
    SHELL = "SHELL"
    DOCKER = "DOCKER"
    KUBERNETES = "KUBERNETES"
    FORK_JOB = "FORK_JOB"
    AWAIT_FORKED_JOB = "AWAIT_FORKED_JOB"
    EXPIRE_ARTIFACTS = "EXPIRE_ARTIFACTS"
    """Delete the organisation's artifacts and logs older than an age (formicary's tasklet)."""
    WEBSOCKET = "WEBSOCKET"
    """Run by a worker of the organisation's own (formicary's ant) whose tags cover the task's."""
    MESSAGING = "MESSAGING"
    """Send formicary's task request to an SQS queue and wait for the reply with its correlation id."""
    # Parsed so that formicary definitions load, refused at validation: Formica does not run it.
    PURGE_JOBS = "PURGE_JOBS"
    MANUAL = "MANUAL"
    """A manual approval: the walk waits (on a task token) for the verdict of approvers."""


HTTP_METHODS = frozenset(
    {
        TaskMethod.HTTP_GET,
        TaskMethod.HTTP_POST_FORM,
        TaskMethod.HTTP_POST_JSON,
        TaskMethod.HTTP_PUT_FORM,
        TaskMethod.HTTP_PUT_JSON,
        TaskMethod.HTTP_DELETE,
    }
)
CONTAINER_METHODS = frozenset({TaskMethod.DOCKER, TaskMethod.KUBERNETES})
UNSUPPORTED_METHODS = frozenset(
    {
        TaskMethod.PURGE_JOBS,
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
    PAUSE_JOB = "PAUSE_JOB"
    """The job pauses after this task (PAUSED) until resumed, by hand or after the task's pause_time."""
    WAIT_FOR_APPROVAL = "WAIT_FOR_APPROVAL"
    """The task waits for approvers (as a MANUAL task does); its verdict then routes it."""


ERROR_CODE_PATTERN = re.compile(r"ERR_[A-Za-z0-9_]+")
"""A target such as ``ERR_BLAH``: fail the task with that error code."""
EXIT_CODE_STATE_KEYS = frozenset({"COMPLETED", "FAILED"})
"""on_exit_code keys that are states, not numbers: the same as on_completed / on_failed."""
EXIT_APPROVED = "APPROVED"
EXIT_REJECTED = "REJECTED"
VERDICT_KEYS = frozenset({EXIT_APPROVED, EXIT_REJECTED})
"""on_exit_code keys of a task that waits for approvers (MANUAL, or routed to WAIT_FOR_APPROVAL): its
verdict is its exit code (validation refuses them elsewhere)."""


def is_action(target: str) -> bool:
    """True when a routing target is an ExitCodeAction or an ERR_* error code, not a task."""
    return target in ExitCodeAction.__members__ or ERROR_CODE_PATTERN.fullmatch(target) is not None


class RunnerKind(StrEnum):
    """Which Lambda / runner executes a task: derived from method and container."""

    HTTP = "HTTP"
    SHELL = "SHELL"
    CONTAINER = "CONTAINER"
    FORK = "FORK"
    MANUAL = "MANUAL"
    EXPIRE = "EXPIRE"
    WORKER = "WORKER"
    MESSAGING = "MESSAGING"


class _Strict(BaseModel):
    # The attribute docstrings below are the fields' descriptions, but pydantic's
    # use_attribute_docstrings reads this file's source when the classes are built (~20 ms of every
    # Lambda's cold start for text only the schema and the docs show): formica.jobs.schema attaches
    # them when it generates those.
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
    """Volume name."""
    mount_path: GoStr
    """Where the volume appears in the container."""
    host_path: OptGoStr = None
    """Host directory (host_path volumes)."""
    read_only: bool = False
    """Mount read-only."""
    sources: list[dict[str, Any]] = Field(default_factory=list)
    """Projected volume sources (Kubernetes projected volumes), kept as written."""


class Volumes(_Strict):
    host_path: list[VolumeMount] = Field(default_factory=list)
    """Host directories to mount."""
    empty_dir: list[VolumeMount] = Field(default_factory=list)
    """Scratch directories shared by the task's containers."""
    projected: list[VolumeMount] = Field(default_factory=list)
    """Kubernetes projected volumes (service-account tokens, ...)."""
    secret: list[VolumeMount] = Field(default_factory=list)
    """Kubernetes secrets to mount."""
    config_map: list[VolumeMount] = Field(default_factory=list)
    """Kubernetes config maps to mount."""
    persistent_volume_claim: list[VolumeMount] = Field(default_factory=list)
    """Kubernetes persistent volume claims to mount."""


class ContainerDefinition(_Strict):
    image: GoStr
    """Container image (required, non-empty)."""
    image_definition: dict[GoStr, Any] | None = None
    """formicary's extra image settings, kept as written."""
    cpu_limit: OptGoStr = None
    """CPU limit (Kubernetes quantity, e.g. \"1\", \"500m\")."""
    cpu_request: OptGoStr = None
    """CPU request."""
    memory_limit: OptGoStr = None
    """Memory limit (e.g. 2Gi)."""
    memory_request: OptGoStr = None
    """Memory request."""
    ephemeral_storage_limit: OptGoStr = None
    """Ephemeral storage limit."""
    ephemeral_storage_request: OptGoStr = None
    """Ephemeral storage request."""
    volumes: Volumes | None = None
    """Volumes to mount."""
    entrypoint: list[GoStr] | None = None
    """Overrides the image entrypoint."""
    command: list[GoStr] | None = None
    """Overrides the image command."""


class ServicePort(_Strict):
    number: int
    """Port the service listens on."""


class ServiceDefinition(_Strict):
    name: GoStr
    """Service container name."""
    alias: OptGoStr = None
    """Host name the task reaches the service by."""
    image: GoStr
    """Service image."""
    command: list[GoStr] | None = None
    """Service command."""
    entrypoint: list[GoStr] | None = None
    """Service entrypoint."""
    ports: list[ServicePort] = Field(default_factory=list)
    """Ports the service exposes."""
    cpu_limit: OptGoStr = None
    """CPU limit."""
    cpu_request: OptGoStr = None
    """CPU request."""
    memory_limit: OptGoStr = None
    """Memory limit."""
    memory_request: OptGoStr = None
    """Memory request."""
    volumes: Volumes | None = None
    """Volumes to mount in the service."""


class ArtifactsDefinition(_Strict):
    paths: list[GoStr] = Field(default_factory=list)
    """Files or directories (relative to working_dir) uploaded as artifacts after the task."""
    when: GoStr = "onSuccess"  # onSuccess | onFailed | always (formicary's spelling)
    """When to upload: onSuccess, onFailed or always."""
    expires_after: Duration | None = None
    """Artifact lifetime (Go duration)."""


class CacheDefinition(_Strict):
    key: OptGoStr = None
    """Cache key."""
    keys: list[GoStr] = Field(default_factory=list)
    """Files whose content forms the key (formicary spelling)."""
    key_paths: list[GoStr] = Field(default_factory=list)
    """Files whose content forms the key."""
    paths: list[GoStr] = Field(default_factory=list)
    """Directories cached between runs."""
    expires_after: Duration | None = None
    """Cache lifetime (Go duration)."""


class ResourcesDefinition(_Strict):
    resource_type: OptGoStr = None
    """Kind of shared resource to reserve (formicary resources)."""
    platform: OptGoStr = None
    """Platform of the resource."""
    tags: list[GoStr] = Field(default_factory=list)
    """Tags selecting the resource."""
    value: int | None = None
    """Units to reserve."""
    extract_config: dict[GoStr, Any] | None = None
    """How to pass the reserved resource to the task."""


class WebhookDefinition(_Strict):
    url: GoStr
    """Where the lifecycle events are sent (http or https)."""
    method: GoStr = "POST"
    """HTTP method of the call: POST (default), PUT, PATCH, GET or DELETE."""
    headers: dict[GoStr, GoStr] = Field(default_factory=dict)
    """HTTP headers of the call."""
    query: dict[GoStr, GoStr] = Field(default_factory=dict)
    """Query parameters of the call."""


class TriggerType(StrEnum):
    """What starts a job by itself: a signed HTTP call, an object put in a bucket, a queue message."""

    WEBHOOK = "webhook"
    S3 = "s3"
    QUEUE = "queue"


class TriggerAuthMethod(StrEnum):
    HMAC_SHA256 = "hmac_sha256"
    """The raw body signed with a secret config's value, hex HMAC-SHA256 (``sha256=`` prefix optional)."""
    NONE = "none"
    """No signature: anyone who knows the URL starts the job (refused in AWS unless written)."""


class TriggerAuth(_Strict):
    method: TriggerAuthMethod
    """hmac_sha256, or none (an unsigned webhook, written explicitly)."""
    secret_config: OptGoStr = None
    """hmac_sha256: the name of the secret config (organisation's or job type's) holding the key."""
    header: GoStr = "X-Hub-Signature-256"
    """hmac_sha256: the header carrying the signature."""


class TriggerRateLimit(_Strict):
    max: int
    """At most this many starts per window; the rest are recorded as dropped."""
    window: Duration
    """The window (a fixed interval from the epoch, such as 1m or 1h)."""


class TriggerDefinition(_Strict):
    type: TriggerType
    """webhook, s3 or queue."""
    name: GoStr
    """The trigger's name, unique in the job (the webhook's path segment)."""
    filter: OptGoStr = None
    """Rendered with the event: the job starts only when it renders to text containing "true"."""
    params: dict[GoStr, GoStr] = Field(default_factory=dict)
    """The request's params: each rendered with the event."""
    dedup_key: OptGoStr = None
    """Rendered with the event: a second event with the same key within dedup_window starts nothing."""
    dedup_window: Duration | None = None
    """How long a dedup_key is remembered (default 24h)."""
    rate_limit: TriggerRateLimit | None = None
    """At most max starts per window; the rest are dropped (listed by the API)."""
    auth: TriggerAuth | None = None
    """webhook: how a call proves it is genuine."""
    bucket: OptGoStr = None
    """s3: the bucket (one the operator lists and grants to the organisation)."""
    prefix: OptGoStr = None
    """s3: only keys starting with this."""
    suffix: OptGoStr = None
    """s3: only keys ending with this."""
    mode: OptGoStr = None
    """s3: formicary's mode; poll is accepted and served by S3's event notifications."""
    topic: OptGoStr = None
    """queue: the topic (a queue the stack creates for the organisation, or one the operator grants)."""
    group: OptGoStr = None
    """queue: formicary's consumer group (accepted; each message starts at most one request)."""


class NotifyChannel(_Strict):
    recipients: list[GoStr] = Field(default_factory=list)
    """Who to notify: email addresses, or Slack channels (#builds) and users (@ana)."""
    when: GoStr = "always"
    """always (any end), onSuccess (COMPLETED), onFailure (FAILED) or never."""

    @model_validator(mode="before")
    @classmethod
    def _null_is_empty(cls, data: Any) -> Any:
        return {} if data is None else data


def source_text(value: Any) -> Any:
    """Read ``fan_out.source``: text, or the array itself when a template rendered it bare.

    ``source: {{ .Items }}`` renders to ``source: ["a", "b"]``, which YAML reads as a list: it is
    kept as its JSON text, so a source always reaches ``formica.jobs.fanout`` as text.
    """
    if isinstance(value, list | dict):
        return json.dumps(value)
    return go_str(value)


class FanOutDefinition(_Strict):
    source: Annotated[str, BeforeValidator(source_text)]
    """Template rendering to a JSON array (e.g. {{ .Items }}): one child job per item."""
    item_var: GoStr = "item"
    """Name of the item in the child's params, and the prefix of the results ({item_var}_{i}_status)."""
    max_parallel: int = FAN_OUT_DEFAULT_PARALLEL
    """Most children running at once (1 to 100)."""
    fail_fast: bool = False
    """On the first failed child, cancel the rest and fail the task."""
    fork_job_type: OptGoStr = None
    """The job type each child runs (a job type of the same organisation); none: the task itself
    (SHELL or HTTP) runs once per item, the item under item_var in its templates."""
    fork_job_version: ForkVersion = None
    """Its version: a version number, latest (the default), or a sem_version to match."""

    @property
    def forks_jobs(self) -> bool:
        """Job fan-out (a child request per item), rather than task fan-out (the task per item)."""
        return self.fork_job_type is not None


class SubWorkflowParam(_Strict):
    name: GoStr
    """The child's param name (letters, digits and '_', not starting with a digit)."""
    value: GoStr
    """Its value: rendered with the parent's context; a secret config renders as ****."""


class SubWorkflowDefinition(_Strict):
    input_params: list[SubWorkflowParam] = Field(default_factory=list)
    """The child's params ({name, value} each): the only params it receives besides its lineage."""
    output_variables: dict[GoStr, GoStr] = Field(default_factory=dict)
    """Child's context name (a param, <task>_<Name>, an output) -> the name the fork task publishes it as."""
    wait_for_completion: bool = False
    """Fork and wait for the child's end in this one task (needed by output_variables)."""


class RetryBackoffPolicy(_Strict):
    min: Duration
    """The delay before the first retry."""
    max: Duration | None = None
    """The longest delay the growth reaches (absent: it stops growing at one day)."""
    factor: float = 2.0
    """Each retry's delay is the one before times this (1 to 100)."""
    jitter: Duration | None = None
    """Up to this much is added to each delay, at random (deterministic for a given clock)."""


class TimeoutAction(StrEnum):
    """What a MANUAL task's ``sla_deadline`` does when it passes with no verdict."""

    AUTO_REJECT = "AUTO_REJECT"
    AUTO_APPROVE = "AUTO_APPROVE"
    FAIL = "FAIL"


class ApprovalPolicy(_Strict):
    min_approvals: int = Field(default=1, ge=1, le=100)
    """How many approvals approve the task (as many rejections reject it)."""
    allowed_users: list[GoStr] = Field(default_factory=list)
    """Token names of the organisation that may vote (they also need the approve scope); empty: any."""
    require_unanimous: bool = False
    """One rejection rejects; with allowed_users, every one of them must approve."""
    sla_deadline: Duration | None = None
    """How long the task waits for a verdict; then timeout_action."""
    timeout_action: TimeoutAction = TimeoutAction.FAIL
    """When sla_deadline passes: AUTO_REJECT, AUTO_APPROVE, or FAIL (ERR_APPROVAL_TIMED_OUT)."""

    @property
    def approvals_needed(self) -> int:
        """Approvals that approve: min_approvals, or every allowed user when unanimity is required."""
        if self.require_unanimous and self.allowed_users:
            return max(self.min_approvals, len(set(self.allowed_users)))
        return self.min_approvals


class TaskDefinition(_Strict):
    task_type: GoStr
    """The task's name, unique in the job; other tasks route to it by this name."""
    method: TaskMethod | None = None
    """How the task runs (see Methods). A task with container and no method runs as a container."""
    description: OptGoStr = None
    """Free text."""
    script: list[GoStr] = Field(default_factory=list)
    """Commands to run (SHELL, containers); for HTTP methods the first entry is the URL if url is unset."""
    before_script: list[GoStr] = Field(default_factory=list)
    """Commands run before script."""
    after_script: list[GoStr] = Field(default_factory=list)
    """Commands run after script, even when it failed."""
    url: OptGoStr = None
    """URL of an HTTP task."""
    headers: dict[GoStr, GoStr] = Field(default_factory=dict)
    """HTTP headers of an HTTP task."""
    query: dict[GoStr, GoStr] = Field(default_factory=dict)
    """Query parameters of an HTTP task."""
    variables: dict[GoStr, Any] = Field(default_factory=dict)
    """Task variables: seen by the task's templates (over params and job_variables), passed to the task."""
    environment: dict[GoStr, GoStr] = Field(default_factory=dict)
    """Environment variables of the task's process or container."""
    container: ContainerDefinition | None = None
    """The container to run in (image and resources)."""
    services: list[ServiceDefinition] = Field(default_factory=list)
    """Sidecar service containers."""
    working_dir: OptGoStr = None
    """Working directory of the commands."""
    timeout: Duration | None = None
    """Longest time one attempt (or an EXECUTING poll) may take; then ERR_TASK_TIMED_OUT."""
    retry: int = 0
    """How many times the task is retried after a failure."""
    delay_between_retries: Duration | None = None
    """Wait before a retry and between EXECUTING polls."""
    retry_backoff_policy: RetryBackoffPolicy | None = None
    """Exponential delays before retries (min, max, factor, jitter), instead of delay_between_retries."""
    allow_failure: bool = False
    """A failure of this task does not fail the job."""
    always_run: bool = False
    """Run this task even when the job is failing (cleanup)."""
    except_: OptGoStr = Field(default=None, alias="except")
    """Skip the task when this renders to text containing \"true\"."""
    on_completed: OptGoStr = None
    """Next task (or action) when the task completes (exit code 0, HTTP 2xx)."""
    on_failed: OptGoStr = None
    """Next task (or action) when the task fails."""
    on_exit_code: dict[GoStr, GoStr] = Field(default_factory=dict)
    """Exit code (or HTTP status) -> next task or action.

    Keys become decimal strings; COMPLETED / FAILED keys move to on_completed / on_failed.
    """
    tags: list[GoStr] = Field(default_factory=list)
    """Worker pool tags: a WEBSOCKET task, or a SHELL task tagged with one of the job's worker_pools,
    runs on a worker (formica worker --tags) whose tags cover all of them; other tasks keep them."""
    dependencies: list[GoStr] = Field(default_factory=list)
    """Tasks of this job whose artifacts this task downloads first."""
    artifacts: ArtifactsDefinition | None = None
    """Files uploaded after the task."""
    cache: CacheDefinition | None = None
    """Directories kept between runs."""
    resources: ResourcesDefinition | None = None
    """Shared resources to reserve."""
    webhook: WebhookDefinition | None = None
    """Webhook sent this task's lifecycle events (each state change), signed."""
    report_stdout: bool = False
    """Keep the task's stdout as its report."""
    fork_job_type: OptGoStr = None
    """FORK_JOB: the job type to start."""
    fork_job_version: ForkVersion = None
    """FORK_JOB: its version: a version number, latest (the default), or a sem_version to match."""
    await_forked_tasks: list[GoStr] = Field(default_factory=list)
    """AWAIT_FORKED_JOB: the FORK_JOB tasks of this job to wait for."""
    approval_policy: ApprovalPolicy | None = None
    """MANUAL (or WAIT_FOR_APPROVAL): who approves, how many, and until when."""
    pause_time: Duration | None = None
    """PAUSE_JOB: resume by itself this long after the pause (none: wait for POST .../resume)."""
    fan_out: FanOutDefinition | None = None
    """Run the task (SHELL or HTTP), or fork a child job, per item of a JSON array; wait for them all."""
    sub_workflow: SubWorkflowDefinition | None = None
    """FORK_JOB: the child's params, the values it hands back, and whether the task waits for its end."""
    # Kubernetes pod settings formicary accepts on a task.
    pod_labels: dict[GoStr, GoStr] = Field(default_factory=dict)
    """Kubernetes pod labels."""
    pod_annotations: dict[GoStr, GoStr] = Field(default_factory=dict)
    """Kubernetes pod annotations."""
    node_selector: dict[GoStr, GoStr] = Field(default_factory=dict)
    """Kubernetes node selector."""
    tolerations: dict[GoStr, Any] = Field(default_factory=dict)
    """Kubernetes tolerations."""
    host_network: bool = False
    """Use the host network."""
    privileged: bool = False
    """Run the container privileged."""
    service_account: OptGoStr = None
    """Kubernetes service account."""
    # More of formicary's task keys (its TaskDefinition and ExecutorOptions), accepted so that its
    # definitions load; Formica's runners use what applies to them and ignore the rest.
    node_tolerations: dict[GoStr, GoStr] = Field(default_factory=dict)
    """formicary's name for Kubernetes tolerations (key[=value] -> effect)."""
    affinity: dict[GoStr, Any] | None = None
    """Kubernetes node affinity, kept as written."""
    network_mode: OptGoStr = None
    """Docker network mode."""
    allow_start_if_completed: bool = False
    """On a job retry, run this task again even if it completed."""
    job_version: OptGoStr = None
    """formicary's task-level job version, kept as written."""
    artifact_ids: list[GoStr] = Field(default_factory=list)
    """Artifact ids to download before the task."""
    cost_factor: float = 0.0
    """formicary's cost accounting factor."""
    execute_command_without_shell: bool = False
    """Run commands directly, not through a shell."""
    debug: bool = False
    """Verbose logs for this task."""
    messaging_request_queue: OptGoStr = None
    """MESSAGING tasks: the SQS queue the task's request is sent to (the organisation's own)."""
    messaging_reply_queue: OptGoStr = None
    """MESSAGING tasks: the SQS queue the reply carrying the request's correlation id comes back on."""
    # Set by the job (``JobDefinition.worker_pools``), never written in YAML: see ``runner``.
    _in_worker_pool: bool = PrivateAttr(default=False)

    @field_validator("on_exit_code", mode="after")
    @classmethod
    def _canonical_exit_codes(cls, value: dict[str, str]) -> dict[str, str]:
        canonical: dict[str, str] = {}
        for key, target in value.items():
            text = key.strip()
            if re.fullmatch(r"\+?\d+", text):
                name = str(int(text))
            elif text.upper() in EXIT_CODE_STATE_KEYS | VERDICT_KEYS:
                name = text.upper()
            else:
                raise ValueError(
                    f"on_exit_code key {key!r} is not an exit code: use a number (exit code or HTTP "
                    "status), COMPLETED / FAILED, or APPROVED / REJECTED (MANUAL tasks)"
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

    @property
    def fork_version(self) -> int | str | None:
        """What ``fork_job_version`` asks for (``wanted_version``): None for the latest version."""
        return wanted_version(self.fork_job_version)

    def exit_code_target(self, code: int) -> str | None:
        """The on_exit_code target for an exit code (or HTTP status), if one is mapped."""
        return self.on_exit_code.get(str(code))

    @property
    def runner(self) -> RunnerKind:
        """The runner that executes this task (a task with ``container`` and no method is a container).

        A fan_out task's step runs on the fork runner (it waits for its children or instances);
        ``method_runner`` is what runs each instance of a task fan-out."""
        if self.fan_out is not None:
            return RunnerKind.FORK
        return self.method_runner

    @property
    def method_runner(self) -> RunnerKind:
        """The runner of the task's method, whether or not it fans out."""
        if self.method in HTTP_METHODS:
            return RunnerKind.HTTP
        if self.method is TaskMethod.MANUAL:
            return RunnerKind.MANUAL
        if self.method is TaskMethod.EXPIRE_ARTIFACTS:
            return RunnerKind.EXPIRE
        if self.method is TaskMethod.WEBSOCKET or self.in_worker_pool:
            return RunnerKind.WORKER
        if self.method is TaskMethod.MESSAGING:
            return RunnerKind.MESSAGING
        if self.method in (TaskMethod.FORK_JOB, TaskMethod.AWAIT_FORKED_JOB):
            return RunnerKind.FORK
        if self.method in CONTAINER_METHODS or (self.method is None and self.container is not None):
            return RunnerKind.CONTAINER
        return RunnerKind.SHELL

    @property
    def in_worker_pool(self) -> bool:
        """A SHELL task tagged with one of its job's ``worker_pools``: a worker runs it (D55)."""
        return self._in_worker_pool

    @property
    def method_name(self) -> str:
        """The method as shown to users: as written, or ``CONTAINER`` for a task written with only a
        container (it runs as one; formicary would call it KUBERNETES), ``SHELL`` otherwise."""
        if self.method is not None:
            return self.method.value
        return RunnerKind.CONTAINER.value if self.container is not None else TaskMethod.SHELL.value

    def next_tasks(self) -> list[str]:
        """Every target named by on_completed / on_failed / on_exit_code, in order, without duplicates."""
        targets = [self.on_completed, self.on_failed, *self.on_exit_code.values()]
        seen: dict[str, None] = {}
        for target in targets:
            if target:
                seen.setdefault(target, None)
        return list(seen)

    @property
    def awaits_children(self) -> bool:
        """It waits for forked jobs to end (AWAIT_FORKED_JOB, a fan_out, a sub_workflow that waits
        for completion): the walk waits on a task token for it."""
        waits = self.sub_workflow is not None and self.sub_workflow.wait_for_completion
        return self.method is TaskMethod.AWAIT_FORKED_JOB or self.fan_out is not None or waits

    @property
    def waits_for_approval(self) -> bool:
        """A MANUAL task, or one whose routing names WAIT_FOR_APPROVAL: approvers' verdicts reach it."""
        return self.method is TaskMethod.MANUAL or ExitCodeAction.WAIT_FOR_APPROVAL in self.next_tasks()

    @property
    def pauses(self) -> bool:
        """Its routing names PAUSE_JOB."""
        return ExitCodeAction.PAUSE_JOB in self.next_tasks()

    @property
    def excepted(self) -> bool:
        """formicary's ``except``: the task is skipped when it rendered to text containing "true"."""
        return "true" in (self.except_ or "").lower()


class JobDefinition(_Strict):
    job_type: GoStr
    """The job's name, unique in the organisation (required)."""
    description: OptGoStr = None
    """Free text."""
    platform: OptGoStr = None
    """Target platform, for filtering."""
    url: OptGoStr = None
    """Link to the project or docs."""
    timeout: Duration | None = None
    """Longest time the whole job may take; then ERR_JOB_TIMED_OUT."""
    retry: int = 0
    """How many times a failed job is restarted (RESTART_JOB, failures)."""
    delay_between_retries: Duration | None = None
    """Wait before a job retry."""
    retry_backoff_policy: RetryBackoffPolicy | None = None
    """Exponential delays before job retries, and the default of tasks that set none."""
    hard_reset_after_retries: int = 0
    """After this many retries, a retry reruns every task, not only failed ones."""
    max_concurrency: int = 0
    """Most requests of this job type running at once."""
    skip_if: OptGoStr = None
    """Skip the request when this renders to text containing \"true\"."""
    cron_trigger: OptGoStr = None
    """Cron expression that submits the job periodically."""
    job_variables: dict[GoStr, Any] = Field(default_factory=dict)
    """Variables visible to every template of the job (lowest precedence)."""
    required_params: list[GoStr] = Field(default_factory=list)
    """Request params that must be given when submitting."""
    tags: list[GoStr] = Field(default_factory=list)
    """Free tags."""
    notify: dict[str, NotifyChannel] = Field(default_factory=dict)
    """Notification channels (email, slack) -> recipients and when: one message when the request ends."""
    webhook: WebhookDefinition | None = None
    """Webhook sent the request's lifecycle events (each state change), signed."""
    public_plugin: bool = False
    """formicary's plugin flag: checked (bundle-id job_type, sem_version); forks stay in the organisation."""
    sem_version: OptGoStr = None
    """Semantic version (required for plugins): what a fork's fork_job_version text matches."""
    dynamic_template_tasks: bool = False
    """The task list itself is generated by templates."""
    resources: ResourcesDefinition | None = None
    """Shared resources to reserve for the job."""
    triggers: list[TriggerDefinition] = Field(default_factory=list)
    """Events that start the job by themselves (webhook, s3, queue); their templates see the event."""
    methods: list[GoStr] = Field(default_factory=list)
    """formicary's list of the methods the job's tasks use (accepted; the tasks' methods decide)."""
    worker_pools: list[GoStr] = Field(default_factory=list)
    """Tags that name the organisation's worker pools: a SHELL task tagged with one runs on a worker
    (formica worker --tags) whose tags cover all the task's tags, not on Formica's runners."""
    tasks: list[TaskDefinition]
    """The tasks (at least one, at most 100)."""

    @model_validator(mode="after")
    def _tasks_into_worker_pools(self) -> JobDefinition:
        # formicary's ants take every task by its tags; Formica runs SHELL on its own sandbox unless
        # the job names the tag as a pool, so a job's placement is read from the job alone (D55).
        pools = set(self.worker_pools)
        for task in self.tasks:
            task._in_worker_pool = (
                bool(pools & set(task.tags)) and task.method is TaskMethod.SHELL and task.fan_out is None
            )
        return self

    @property
    def skipped(self) -> bool:
        """formicary's ``skip_if``: the request is skipped when it rendered to text containing "true"."""
        return "true" in (self.skip_if or "").lower()

    def task(self, task_type: str) -> TaskDefinition:
        for task in self.tasks:
            if task.task_type == task_type:
                return task
        raise KeyError(task_type)

    @property
    def root_task(self) -> TaskDefinition:
        """The task no other task names as a next task (validation guarantees exactly one)."""
        named = {target for task in self.tasks for target in task.next_tasks() if target != task.task_type}
        for task in self.tasks:
            if task.task_type not in named:
                return task
        return self.tasks[0]
