"""What a container attempt's helper containers may do, granted without credentials.

A tenant's image is untrusted code: the ECS tasks run without a task role (no credentials endpoint
at all) and the EKS pods need no service account access to AWS. The two helper containers, which
move files in and out of the workspace, each get a capability instead (``formica.runners.grants``),
minted here by the launch (trusted code) and exchanged by the helper, when it is about to move
files, at the API's grants route for a curl config of URLs signed at that moment:

- ``dependencies``: right ``download``: a presigned GET per artifact of the task's ``dependencies``
  (listed at exchange time) and the relative path it goes to;
- ``artifacts``: right ``upload``: one presigned POST whose policy allows keys starting with this
  task's artifacts prefix only (``{org}/{request_id}/{task_type}/artifacts/``), at most
  ``ARTIFACT_MAX_BYTES`` per file, any Content-Type and an ``x-amz-meta-sha256`` value;
- ``logs``: right ``live_log``: one presigned PUT per chunk of the attempt's running log, under its
  own live prefix (``logs/live/attempt-{n}/``, ``n`` the task's attempt number), contiguous from
  byte 0, at most one chunk per flush interval of the attempt's longest run (plus two), and never
  past the log cap in all. It also gets ``FORMICA_LOG_MASK``, the sed script that masks the job's
  secrets (their values are in the main container's environment already), and its flush interval.

Each helper gets its capability and the grants endpoint as ``FORMICA_CAPABILITY`` and
``FORMICA_GRANTS_URL``: on EKS in its own container spec, the capability (and the masking
script) by ``secretKeyRef`` from the run's Kubernetes Secret, never written in the Job; on ECS in a
``.env`` file written under ``{org}/{request_id}/{task_type}/grants/attempt-{step}/``, which the
ECS agent reads with the execution role (RunTask then names a fixed S3 object instead of carrying
a secret, so its overrides stay small and identical when a Launch is retried). The main container
is given none of this. The ``logs`` helper's ``.env`` file holds the secrets' masking script, so
the container service deletes it once the run is settled (``log_env_file_key``).

A capability expires at the attempt's deadline plus ``GRANT_MARGIN_SECONDS`` (24 hours plus the
margin for an attempt without a timeout): the URLs it is exchanged for are signed at upload time,
so a long attempt no longer outlives the credentials that signed its grant.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from formica.jobs.models import TaskDefinition
from formica.runners.base import TaskContext
from formica.runners.container_script import (
    CAPABILITY_ENV,
    GRANTS_URL_ENV,
    LOG_FLUSH_ENV,
    LOG_MASK_ENV,
    SHA256_METADATA,
    encoded_mask_script,
)
from formica.runners.grants import mint_capability
from formica.store.blobs import BlobStore, BlobStoreError
from formica.store.grants import GrantRepository, GrantRight, GrantStoreError

GRANTS_ROUTE = "/api/grants"
GRANT_MARGIN_SECONDS = 15 * 60
"""A grant outlives the attempt's deadline by this much: the uploader runs after the main container,
and the deadline is only enforced by the next reconciler sweep."""
NO_TIMEOUT_SECONDS = 24 * 3600
"""How long an attempt without a timeout may run: Launch waits 24 hours for it."""
ARTIFACT_MAX_BYTES = 5 * 1024**3
"""The largest artifact file one POST may upload (S3's single-upload limit, 5 GiB)."""
GRANTS_SEGMENT = "grants"
DEPENDENCIES_ENV_FILE = "dependencies.env"
ARTIFACTS_ENV_FILE = "artifacts.env"
LOGS_ENV_FILE = "logs.env"
MIN_FLUSH_SECONDS = 1.0
"""The capability's chunk count allows one chunk per flush interval, never under a second."""
ENV_FILE_CONTENT_TYPE = "text/plain; charset=utf-8"


class GrantIssueError(RuntimeError):
    """The helpers' capabilities could not be minted or handed over."""


def grants_prefix(org: str, request_id: str, task_type: str, step: int) -> str:
    """Where an attempt's ``.env`` files live: ``{org}/{request_id}/{task_type}/grants/attempt-{step}/``."""
    return f"{org}/{request_id}/{task_type}/{GRANTS_SEGMENT}/attempt-{step}/"


def log_env_file_key(org: str, request_id: str, task_type: str, step: int) -> str:
    """The ``logs`` helper's ``.env`` file of an attempt (deleted when its run is settled)."""
    return grants_prefix(org, request_id, task_type, step) + LOGS_ENV_FILE


def live_chunk_count(seconds: int, flush_seconds: float) -> int:
    """How many live chunks an attempt that may run ``seconds`` may write: one per flush interval
    (never under a second), and two more (the last partial line, a line past the hold)."""
    return math.ceil(seconds / max(flush_seconds, MIN_FLUSH_SECONDS)) + 2


def grant_seconds(timeout_seconds: float) -> int:
    """How long an attempt's capabilities live: its timeout (or 24 h) plus the margin."""
    attempt = math.ceil(timeout_seconds) if timeout_seconds > 0 else NO_TIMEOUT_SECONDS
    return attempt + GRANT_MARGIN_SECONDS


@dataclass(frozen=True)
class GrantIssuer:
    """What minting takes: the store of capabilities' scopes, the bucket the ``.env`` files go to,
    and the API's base URL, where the helpers exchange their capabilities."""

    grants: GrantRepository
    blobs: BlobStore
    api_url: str | None

    @property
    def endpoint(self) -> str:
        if not self.api_url:
            raise GrantIssueError("no API URL (FORMICA_API_URL): the helper containers could not use a grant")
        return self.api_url.rstrip("/") + GRANTS_ROUTE


@dataclass(frozen=True)
class HelperGrant:
    """One helper container's grant: the grants endpoint and its capability, and the S3 key of the
    ``.env`` file that holds both for ECS's ``environmentFiles``."""

    endpoint: str
    capability: str
    env_file_key: str
    extra: tuple[tuple[str, str], ...] = ()
    """More of the helper's settings (the ``logs`` helper's flush interval and masking script)."""

    @property
    def environment(self) -> dict[str, str]:
        """The helper container's environment (EKS: the capability-bearing part in the run's Secret)."""
        return {GRANTS_URL_ENV: self.endpoint, CAPABILITY_ENV: self.capability, **dict(self.extra)}


@dataclass(frozen=True)
class ContainerGrants:
    """An attempt's grants: one per helper container that has something to do (None otherwise)."""

    dependencies: HelperGrant | None
    artifacts: HelperGrant | None
    expires_at: datetime
    logs: HelperGrant | None = None


def _uploads_artifacts(task: TaskDefinition) -> bool:
    spec = task.artifacts
    if spec is None or not any(path.strip() for path in spec.paths):
        return False
    return spec.when.strip().lower() != "never"


def _helper_grant(
    issuer: GrantIssuer, key: str, capability: str, extra: tuple[tuple[str, str], ...] = ()
) -> HelperGrant:
    """Store the ``.env`` file a helper reads (a Docker env-file: everything after the first ``=`` is
    the value, no quoting or escapes) and return the grant."""
    grant = HelperGrant(endpoint=issuer.endpoint, capability=capability, env_file_key=key, extra=extra)
    text = "".join(f"{name}={value}\n" for name, value in grant.environment.items())
    issuer.blobs.put_bytes(key, text.encode("utf-8"), ENV_FILE_CONTENT_TYPE)
    return grant


def issue_grants(
    issuer: GrantIssuer,
    task: TaskDefinition,
    ctx: TaskContext,
    step: int,
    *,
    now: datetime | None = None,
) -> ContainerGrants:
    """Mint the capabilities of the attempt ``step`` of ``task``: one per file helper with work to
    do, and always the ``logs`` helper's (masking ``ctx.secrets``, flushing every
    ``ctx.log_flush_seconds``).

    Raises
    ------
    GrantIssueError
        No API URL is configured, or a capability or ``.env`` file could not be stored.
    """
    moment = now or datetime.now(UTC)
    seconds = grant_seconds(ctx.timeout_seconds)
    expires_at = moment + timedelta(seconds=seconds)
    where = grants_prefix(ctx.org, ctx.request_id, task.task_type, step)
    mint = functools.partial(
        mint_capability,
        issuer.grants,
        org=ctx.org,
        request_id=ctx.request_id,
        task_type=task.task_type,
        step=step,
        expires_at=expires_at,
        now=moment,
    )
    try:
        dependencies = None
        if task.dependencies:
            capability = mint(rights=[GrantRight.DOWNLOAD], dependencies=task.dependencies)
            dependencies = _helper_grant(issuer, where + DEPENDENCIES_ENV_FILE, capability)
        artifacts = None
        if _uploads_artifacts(task):
            capability = mint(
                rights=[GrantRight.UPLOAD], max_bytes=ARTIFACT_MAX_BYTES, metadata=(SHA256_METADATA,)
            )
            artifacts = _helper_grant(issuer, where + ARTIFACTS_ENV_FILE, capability)
        logs = None
        if issuer.api_url:  # without the API the attempt still runs; its log arrives at the end
            capability = mint(
                rights=[GrantRight.LIVE_LOG],
                log_attempt=ctx.log_attempt,
                live_chunks=live_chunk_count(seconds, ctx.log_flush_seconds),
            )
            settings = [(LOG_FLUSH_ENV, f"{ctx.log_flush_seconds:g}")]
            mask = encoded_mask_script(ctx.secrets)
            if mask:
                settings.append((LOG_MASK_ENV, mask))
            logs = _helper_grant(issuer, where + LOGS_ENV_FILE, capability, tuple(settings))
    except (GrantStoreError, BlobStoreError) as exc:
        raise GrantIssueError(f"could not grant the helper containers their files: {exc}") from exc
    return ContainerGrants(dependencies=dependencies, artifacts=artifacts, expires_at=expires_at, logs=logs)
