"""What a container attempt's helper containers may do, granted without credentials.

A tenant's image is untrusted code: the ECS tasks run without a task role (no credentials endpoint
at all) and the EKS pods need no service account access to AWS. The two helper containers, which
move files in and out of the workspace, get presigned URLs instead, issued here by the launch
(trusted code holding the Launch function's role):

- ``dependencies``: a presigned GET of a curl config listing one presigned GET per artifact of the
  task's ``dependencies`` (listed now, under each dependency's artifacts prefix) and the relative path
  it goes to;
- ``artifacts``: a presigned GET of a curl config holding one presigned POST whose policy allows keys
  starting with this task's artifacts prefix only (``{org}/{request_id}/{task_type}/artifacts/``), at
  most ``ARTIFACT_MAX_BYTES`` per file, any Content-Type and an ``x-amz-meta-sha256`` value.

Both config files are written under ``{org}/{request_id}/{task_type}/grants/attempt-{step}/``
(beside them, for ECS, a ``.env`` file per helper holding only ``FORMICA_GRANTS_URL=<that URL>``,
which the ECS agent reads with the execution role: RunTask then names a fixed S3 object instead of
carrying a URL, so its overrides stay small and identical when a Launch is retried). The main
container is given none of this.

Every URL expires at the attempt's deadline plus ``GRANT_MARGIN_SECONDS`` (24 hours plus the margin
for an attempt without a timeout), never later than SigV4's 7 days. A URL signed with a Lambda's
temporary credentials stops working when those credentials expire, whatever its own expiry says:
see docs/decisions.md (D19) for what that means for long attempts and what would fix it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from formica.jobs.models import TaskDefinition
from formica.runners.base import TaskContext
from formica.runners.container_script import (
    GRANTS_URL_ENV,
    SHA256_METADATA,
    artifacts_prefix,
    build_downloads_config,
    build_upload_config,
    dependency_path,
)
from formica.store.blobs import BlobStore

logger = logging.getLogger(__name__)

GRANT_MARGIN_SECONDS = 15 * 60
"""A grant outlives the attempt's deadline by this much: the uploader runs after the main container,
and the deadline is only enforced by the next reconciler sweep."""
NO_TIMEOUT_SECONDS = 24 * 3600
"""How long an attempt without a timeout may run: Launch waits 24 hours for it."""
SIGV4_MAX_SECONDS = 7 * 24 * 3600
"""SigV4 presigned URLs live at most 7 days."""
ARTIFACT_MAX_BYTES = 5 * 1024**3
"""The largest artifact file one POST may upload (S3's single-upload limit, 5 GiB)."""
GRANTS_SEGMENT = "grants"
DEPENDENCIES_CONFIG = "dependencies.curl"
ARTIFACTS_CONFIG = "artifacts.curl"
CONFIG_CONTENT_TYPE = "text/plain; charset=utf-8"


def grants_prefix(org: str, request_id: str, task_type: str, step: int) -> str:
    """Where an attempt's grant files live: ``{org}/{request_id}/{task_type}/grants/attempt-{step}/``."""
    return f"{org}/{request_id}/{task_type}/{GRANTS_SEGMENT}/attempt-{step}/"


def grant_seconds(timeout_seconds: float) -> int:
    """How long an attempt's URLs are valid: its timeout (or 24 h) plus the margin, at most 7 days."""
    attempt = math.ceil(timeout_seconds) if timeout_seconds > 0 else NO_TIMEOUT_SECONDS
    return min(attempt + GRANT_MARGIN_SECONDS, SIGV4_MAX_SECONDS)


@dataclass(frozen=True)
class HelperGrant:
    """One helper container's grant: the presigned GET of its curl config (``url``), and the S3 key
    of the ``.env`` file that holds ``FORMICA_GRANTS_URL=<url>`` for ECS's ``environmentFiles``."""

    url: str
    env_file_key: str

    @property
    def environment(self) -> dict[str, str]:
        """The helper container's environment (EKS puts it in the container spec)."""
        return {GRANTS_URL_ENV: self.url}


@dataclass(frozen=True)
class ContainerGrants:
    """An attempt's grants: one per helper container that has something to do (None otherwise)."""

    dependencies: HelperGrant | None
    artifacts: HelperGrant | None
    expires_at: datetime
    downloads: int = 0
    """How many files the dependencies container will download."""


def _uploads_artifacts(task: TaskDefinition) -> bool:
    spec = task.artifacts
    if spec is None or not any(path.strip() for path in spec.paths):
        return False
    return spec.when.strip().lower() != "never"


def _helper_grant(blobs: BlobStore, key: str, text: str, expires_seconds: int) -> HelperGrant:
    """Store a curl config and the ``.env`` file naming it; the grant is the config's presigned GET."""
    blobs.put_bytes(key, text.encode("utf-8"), CONFIG_CONTENT_TYPE)
    url = blobs.presign_get(key, expires_seconds)
    env_file_key = key.rsplit(".", 1)[0] + ".env"
    # A Docker env-file: everything after the first "=" is the value, no quoting or escapes.
    blobs.put_bytes(env_file_key, f"{GRANTS_URL_ENV}={url}\n".encode(), CONFIG_CONTENT_TYPE)
    return HelperGrant(url=url, env_file_key=env_file_key)


def issue_grants(
    blobs: BlobStore,
    task: TaskDefinition,
    ctx: TaskContext,
    step: int,
    *,
    now: datetime | None = None,
) -> ContainerGrants:
    """Presign what the attempt ``step`` of ``task`` may download and upload, and store the grants.

    Raises
    ------
    BlobStoreError
        A dependency could not be listed, or a grant file could not be stored or presigned.
    """
    expires_seconds = grant_seconds(ctx.timeout_seconds)
    expires_at = (now or datetime.now(UTC)) + timedelta(seconds=expires_seconds)
    where = grants_prefix(ctx.org, ctx.request_id, task.task_type, step)

    downloads: list[tuple[str, str]] = []
    for dependency in task.dependencies:
        prefix = artifacts_prefix(ctx.org, ctx.request_id, dependency)
        for blob in blobs.list_blobs(prefix):
            path = dependency_path(blob.key, prefix)
            if path is None:
                logger.warning(
                    "dependency artifact skipped: its key is not a plain relative path",
                    extra={"request_id": ctx.request_id, "key": blob.key},
                )
                continue
            downloads.append((path, blobs.presign_get(blob.key, expires_seconds)))
    dependencies = (
        _helper_grant(blobs, where + DEPENDENCIES_CONFIG, build_downloads_config(downloads), expires_seconds)
        if downloads
        else None
    )

    artifacts = None
    if _uploads_artifacts(task):
        post = blobs.presign_post(
            artifacts_prefix(ctx.org, ctx.request_id, task.task_type),
            max_bytes=ARTIFACT_MAX_BYTES,
            expires_seconds=expires_seconds,
            metadata=(SHA256_METADATA,),
        )
        artifacts = _helper_grant(blobs, where + ARTIFACTS_CONFIG, build_upload_config(post), expires_seconds)
    return ContainerGrants(
        dependencies=dependencies, artifacts=artifacts, expires_at=expires_at, downloads=len(downloads)
    )
