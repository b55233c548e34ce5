"""An attempt's capability, minted by trusted code and exchanged for URLs signed at the moment of use.

The runners that move an untrusted attempt's files (the SHELL sandbox, a container's
``dependencies`` and ``artifacts`` helpers) hold no AWS credentials. They hold a capability
(``formica.store.grants``): a secret scoped to one attempt and expiring at its deadline plus a
margin. When they download or upload, they POST it to the API's grants route (``POST
/api/grants``, no token: the capability is the credential) and get back:

- ``downloads``: a presigned GET per artifact of the task's dependencies, listed at that moment
  (right ``download``), each with the workspace-relative path it goes to;
- ``upload``: one presigned POST whose policy allows keys under the task's own artifact prefix
  (trailing slash included; a task fan-out instance's: its own ``instance-{index}/`` below it), up
  to the capability's size, with the metadata it names (right ``upload``);
- ``cancel_url``: a presigned GET of the request's cancel marker (right ``cancel``);
- ``live_chunk``: asked for one chunk at a time (``exchange_live_chunk``), a presigned PUT of
  exactly that chunk of the attempt's running log, at its key under the attempt's own live prefix
  (a task fan-out instance's: that instance's own; right ``live_log``; ``store.logs``). The chunk
  must continue the last one taken, be at most the capability's chunk size, end within the log
  cap, and the capability's chunk count must not be spent: checked and counted by one conditional
  write, so whoever holds the secret writes at most that many chunks and at most the log cap in
  all. A container's ``logs`` helper asks for it
  as a curl config (``url`` and ``header`` lines; it adds the chunk's file with ``-T``).

Each URL is signed at exchange time with the API function's current credentials and lives
``GRANT_URL_SECONDS`` at most (never past the capability's own expiry), so an attempt that runs for
a day uploads with a URL minutes old. The same grant is served as JSON or, for the helpers, which
have only sh and curl, as a curl config file (``curl_config``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from formica.runners.base import LOG_CAP_BYTES
from formica.store.blobs import BlobStore, PresignedPost
from formica.store.grants import (
    AttemptGrantItem,
    GrantRepository,
    GrantRight,
    hash_capability,
    new_capability,
)
from formica.store.logs import LOG_CONTENT_TYPE, chunk_key, instance_live_prefix, live_prefix
from formica.store.schema import artifact_key, cancel_marker_key, instance_artifact_dir

logger = logging.getLogger(__name__)

GRANT_URL_SECONDS = 3600
"""How long an exchanged URL lives: long enough to start a large upload, short enough that a leaked
URL is soon worthless."""
MIN_URL_SECONDS = 1
LIVE_CHUNK_URL_SECONDS = 300
"""How long a live chunk's PUT lives: it is used at once, for one chunk."""
LIVE_CHUNK_MAX_BYTES = LOG_CAP_BYTES
"""The largest live chunk: only the first ``LOG_CAP_BYTES`` of a log ever reach its live prefix."""


class CapabilityRefusedError(RuntimeError):
    """The capability is unknown, malformed or expired, or does not hold the right asked for."""


class LiveChunkRefusedError(RuntimeError):
    """The capability may write live chunks, but not this one: it does not continue the last chunk,
    is empty or too large, or the capability's chunks are spent."""


class GrantDownload(BaseModel):
    """One file a download right may fetch: its key, where it goes, and a presigned GET."""

    model_config = ConfigDict(extra="forbid")

    key: str
    path: str
    url: str


class GrantUpload(BaseModel):
    """A presigned POST (``store.blobs.PresignedPost``) as JSON."""

    model_config = ConfigDict(extra="forbid")

    url: str
    fields: dict[str, str]
    prefix: str
    max_bytes: int
    expires_at: datetime

    @classmethod
    def of(cls, post: PresignedPost) -> GrantUpload:
        return cls(
            url=post.url,
            fields=post.fields,
            prefix=post.prefix,
            max_bytes=post.max_bytes,
            expires_at=post.expires_at,
        )

    def post(self) -> PresignedPost:
        return PresignedPost(
            url=self.url,
            fields=self.fields,
            prefix=self.prefix,
            max_bytes=self.max_bytes,
            expires_at=self.expires_at,
        )


class LiveChunkRange(BaseModel):
    """The bytes ``[start, end)`` of the attempt's log one live chunk holds."""

    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0, description="offset of the chunk's first byte in the attempt's log")
    end: int = Field(gt=0, description="offset just past the chunk's last byte")


class LiveChunkUpload(BaseModel):
    """A presigned PUT of one live chunk: exactly ``end - start`` bytes of ``content_type`` at ``key``."""

    model_config = ConfigDict(extra="forbid")

    url: str
    key: str
    start: int
    end: int
    content_type: str
    expires_at: datetime


class AttemptGrant(BaseModel):
    """What a capability is exchanged for (each part present only with its right)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    task_type: str
    expires_at: datetime = Field(description="when the capability itself expires")
    downloads: list[GrantDownload] = Field(default_factory=list)
    upload: GrantUpload | None = None
    cancel_url: str | None = None
    live_chunk: LiveChunkUpload | None = None


def mint_capability(
    grants: GrantRepository,
    *,
    org: str,
    request_id: str,
    task_type: str,
    step: int,
    rights: Sequence[GrantRight],
    expires_at: datetime,
    now: datetime,
    execution: str | None = None,
    dependencies: Sequence[str] = (),
    max_bytes: int = 0,
    metadata: Sequence[str] = (),
    log_attempt: int = 0,
    live_chunks: int = 0,
    instance: int | None = None,
) -> str:
    """Store the scope of a new capability and return its secret (shown only to the runner).

    The upload prefix is always the task's own artifact prefix, and the live log's the prefix of
    the attempt's own log (``log_attempt``, the task's attempt number, with ``LIVE_LOG``, at most
    ``live_chunks`` chunks): nothing the attempt says can widen them. An ``instance`` of a task
    fan-out (its item's index at ``step``) streams under its own instance's live prefix instead, and
    uploads only under its own ``instance-{index}/`` below the task's artifact prefix.

    Raises
    ------
    GrantStoreError
        The scope could not be stored.
    """
    capability = new_capability()
    grants.create(
        AttemptGrantItem(
            secret_hash=hash_capability(capability),
            org=org,
            request_id=request_id,
            task_type=task_type,
            step=step,
            rights=tuple(dict.fromkeys(rights)),
            expires_at=expires_at,
            created_at=now,
            execution=execution,
            dependencies=tuple(dependencies),
            upload_prefix=artifact_key(
                org, request_id, task_type, instance_artifact_dir(instance) if instance is not None else ""
            )
            if GrantRight.UPLOAD in rights
            else None,
            max_bytes=max_bytes,
            metadata=tuple(metadata),
            live_prefix=_live_prefix(
                org, request_id, task_type, log_attempt=log_attempt, step=step, instance=instance
            )
            if GrantRight.LIVE_LOG in rights
            else None,
            live_chunks=live_chunks,
            live_chunk_max_bytes=LIVE_CHUNK_MAX_BYTES,
            live_max_bytes=LOG_CAP_BYTES if GrantRight.LIVE_LOG in rights else 0,
        )
    )
    return capability


def _live_prefix(
    org: str, request_id: str, task_type: str, *, log_attempt: int, step: int, instance: int | None
) -> str:
    if instance is not None:
        return instance_live_prefix(org, request_id, task_type, step, instance)
    return live_prefix(org, request_id, task_type, log_attempt)


def _url_seconds(scope: AttemptGrantItem, now: datetime) -> int:
    left = math.floor((scope.expires_at - now).total_seconds())
    return max(MIN_URL_SECONDS, min(GRANT_URL_SECONDS, left))


def _downloads(blobs: BlobStore, scope: AttemptGrantItem, seconds: int) -> list[GrantDownload]:
    # Cold start: the API imports this module for its models; the helpers' text builders (and the
    # shell runner they share code with) load when a grant is exchanged, not with every API call.
    from formica.runners.container_script import dependency_path  # noqa: PLC0415

    downloads: list[GrantDownload] = []
    for dependency in scope.dependencies:
        prefix = artifact_key(scope.org, scope.request_id, dependency, "")
        for blob in blobs.list_blobs(prefix):
            path = dependency_path(blob.key, prefix)
            if path is None:
                logger.warning(
                    "dependency artifact skipped: its key is not a plain relative path",
                    extra={"request_id": scope.request_id, "key": blob.key},
                )
                continue
            downloads.append(GrantDownload(key=blob.key, path=path, url=blobs.presign_get(blob.key, seconds)))
    return downloads


def exchange_capability(
    grants: GrantRepository,
    blobs: BlobStore,
    capability: str,
    *,
    now: datetime,
) -> AttemptGrant:
    """The URLs ``capability`` entitles its holder to, signed now.

    Raises
    ------
    CapabilityRefusedError
        Unknown, malformed or expired capability.
    GrantStoreError, BlobStoreError
        The scope could not be read, a dependency listed or a URL signed.
    """
    scope = grants.find_active(capability, now=now)
    if scope is None:
        raise CapabilityRefusedError("the capability is unknown or has expired")
    seconds = _url_seconds(scope, now)
    grant = AttemptGrant(request_id=scope.request_id, task_type=scope.task_type, expires_at=scope.expires_at)
    if scope.allows(GrantRight.DOWNLOAD):
        grant.downloads = _downloads(blobs, scope, seconds)
    if scope.allows(GrantRight.UPLOAD) and scope.upload_prefix:
        post = blobs.presign_post(
            scope.upload_prefix, max_bytes=scope.max_bytes, expires_seconds=seconds, metadata=scope.metadata
        )
        grant.upload = GrantUpload.of(post)
    if scope.allows(GrantRight.CANCEL):
        grant.cancel_url = blobs.presign_get(
            cancel_marker_key(scope.org, scope.request_id, scope.execution), seconds
        )
    logger.info(
        "capability exchanged",
        extra={
            "request_id": scope.request_id,
            "task_type": scope.task_type,
            "step": scope.step,
            "downloads": len(grant.downloads),
            "upload": grant.upload is not None,
        },
    )
    return grant


def exchange_live_chunk(
    grants: GrantRepository,
    blobs: BlobStore,
    capability: str,
    chunk: LiveChunkRange,
    *,
    now: datetime,
) -> AttemptGrant:
    """A presigned PUT of one chunk of the attempt's running log, counted against ``capability``.

    Raises
    ------
    CapabilityRefusedError
        Unknown, malformed or expired capability, or one without the ``live_log`` right.
    LiveChunkRefusedError
        The chunk is empty, too large, does not continue the last one, or the chunks are spent.
    GrantStoreError, BlobStoreError
        The count could not be written or the URL signed.
    """
    scope = grants.find_active(capability, now=now)
    if scope is None:
        raise CapabilityRefusedError("the capability is unknown or has expired")
    if not scope.allows(GrantRight.LIVE_LOG) or not scope.live_prefix:
        raise CapabilityRefusedError("the capability may not write a live log")
    size = chunk.end - chunk.start
    if size <= 0 or size > scope.live_chunk_max_bytes:
        raise LiveChunkRefusedError(
            f"a live chunk holds 1 to {scope.live_chunk_max_bytes} bytes, not {max(size, 0)}"
        )
    if scope.live_max_bytes and chunk.end > scope.live_max_bytes:
        raise LiveChunkRefusedError(
            f"a live log holds at most {scope.live_max_bytes} bytes: the chunk ends at byte {chunk.end}"
        )
    if not grants.take_live_chunk(scope, start=chunk.start, end=chunk.end):
        raise LiveChunkRefusedError(
            f"the chunk at byte {chunk.start} does not continue the log, "
            f"or its {scope.live_chunks} chunks are spent"
        )
    key = chunk_key(scope.live_prefix, chunk.start, chunk.end)
    seconds = min(LIVE_CHUNK_URL_SECONDS, _url_seconds(scope, now))
    url = blobs.presign_put(key, size=size, content_type=LOG_CONTENT_TYPE, expires_seconds=seconds)
    return AttemptGrant(
        request_id=scope.request_id,
        task_type=scope.task_type,
        expires_at=scope.expires_at,
        live_chunk=LiveChunkUpload(
            url=url,
            key=key,
            start=chunk.start,
            end=chunk.end,
            content_type=LOG_CONTENT_TYPE,
            expires_at=now + timedelta(seconds=seconds),
        ),
    )


def curl_config(grant: AttemptGrant) -> str:
    """The grant as the helper containers read it (``curl --config``): the downloads' url/output
    pairs, the upload's URL and policy fields, or a live chunk's PUT (its URL and content type).

    Raises
    ------
    CapabilityRefusedError
        The grant holds both or neither (a curl config can carry only one of them).
    """
    from formica.runners.container_script import (  # noqa: PLC0415 - cold start, see _downloads
        build_downloads_config,
        build_live_chunk_config,
        build_upload_config,
    )

    if grant.live_chunk is not None:
        return build_live_chunk_config(grant.live_chunk.url, grant.live_chunk.content_type)
    if grant.upload is not None and not grant.downloads:
        return build_upload_config(grant.upload.post())
    if grant.upload is None:
        return build_downloads_config((download.path, download.url) for download in grant.downloads)
    raise CapabilityRefusedError("a curl config carries downloads or an upload, not both")
