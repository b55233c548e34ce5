"""The blob store: artifacts and task logs in S3 (port and S3 adapter; the in-memory fake is in tests/fakes).

Keys follow the S3 layout of docs/architecture.md; this module does not build them, it stores bytes.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

DEFAULT_CONTENT_TYPE = "application/octet-stream"
_HASH_CHUNK = 1024 * 1024
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_METADATA_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class BlobStoreError(RuntimeError):
    """The blob store failed (S3 refused or could not be reached)."""


class BlobNotFoundError(BlobStoreError):
    """No blob exists under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no blob under key {key!r}")
        self.key = key


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob as a listing sees it; ``sha256`` is what its uploader recorded ("" if none)."""

    key: str
    size: int
    modified_at: datetime
    sha256: str = ""
    content_type: str = DEFAULT_CONTENT_TYPE


@dataclass(frozen=True)
class DeletedBlobs:
    """What a ``delete_older`` call removed: how many blobs and their bytes."""

    count: int = 0
    size: int = 0


@dataclass(frozen=True)
class PresignedPost:
    """An upload grant without credentials: POST a form of ``fields`` plus ``key`` (starting with
    ``prefix``), ``Content-Type`` and ``file`` to ``url`` until ``expires_at``."""

    url: str
    fields: dict[str, str]
    prefix: str
    max_bytes: int
    expires_at: datetime


def file_digest(path: Path) -> tuple[int, str]:
    """Size in bytes and hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class BlobStore(ABC):
    """Port: where artifacts and logs live."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        """Store ``data`` under ``key`` (replacing any blob there)."""

    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE) -> tuple[int, str]:
        """Upload a local file; returns its (size, sha256 hex)."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The blob's bytes; raises BlobNotFoundError when absent."""

    @abstractmethod
    def download_file(self, key: str, path: Path) -> None:
        """Write the blob to ``path`` (parents created); raises BlobNotFoundError when absent."""

    @abstractmethod
    def presign_get(self, key: str, expires_seconds: int) -> str:
        """A URL that downloads the blob without credentials until it expires."""

    @abstractmethod
    def presign_put(self, key: str, *, size: int, content_type: str, expires_seconds: int) -> str:
        """A URL that stores one blob at ``key`` without credentials until it expires: a PUT of
        exactly ``size`` bytes of ``content_type`` (both are signed, so S3 refuses any other)."""

    @abstractmethod
    def presign_post(
        self, prefix: str, *, max_bytes: int, expires_seconds: int, metadata: Sequence[str] = ()
    ) -> PresignedPost:
        """A grant to upload blobs whose keys start with ``prefix`` (which should end in "/"), each
        at most ``max_bytes``, until it expires; nothing else can be written with it.

        ``metadata`` names user metadata the uploader may set with any value (form fields
        ``x-amz-meta-<name>``, lower case); an upload under such a grant must then send every one
        of them (S3 checks each condition of the policy against the form).
        """

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with ``prefix``; returns how many were deleted."""

    @abstractmethod
    def list_blobs(self, prefix: str, *, modified_since: datetime | None = None) -> list[BlobInfo]:
        """The blobs whose key starts with ``prefix`` (written at or after ``modified_since``, when
        given), with the sha256 and content type stored with each."""

    @abstractmethod
    def delete_older(
        self, prefix: str, *, before: datetime, limit: int, keep: Callable[[str], bool] | None = None
    ) -> DeletedBlobs:
        """Delete, in batches, at most ``limit`` blobs under ``prefix`` last written before
        ``before`` (a blob whose key ``keep`` answers True for stays)."""

    def list_keys(self, prefix: str, *, start_after: str = "") -> list[tuple[str, int]]:
        """The keys starting with ``prefix`` that sort after ``start_after``, in key order, with
        their sizes: a listing without the per-blob metadata reads ``list_blobs`` makes."""
        return [
            (blob.key, blob.size)
            for blob in sorted(self.list_blobs(prefix), key=lambda blob: blob.key)
            if blob.key > start_after
        ]


class S3BlobStore(BlobStore):
    """Adapter: one S3 bucket. ``client`` defaults to the process's cached S3 client."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self._bucket = bucket
        self._client_override = client

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("s3")

    def put_bytes(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreError(f"could not store blob {key!r}: {exc}") from exc

    def put_file(self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE) -> tuple[int, str]:
        size, sha256 = file_digest(path)
        try:
            self._client.upload_file(str(path), self._bucket, key, ExtraArgs={"ContentType": content_type})
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            # boto3's transfer manager wraps client errors in S3UploadFailedError.
            raise BlobStoreError(f"could not upload {path.name!r} to {key!r}: {exc}") from exc
        return size, sha256

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
            body: bytes = response["Body"].read()
        except ClientError as exc:
            raise self._translate(key, exc) from exc
        except BotoCoreError as exc:
            raise BlobStoreError(f"could not read blob {key!r}: {exc}") from exc
        return body

    def download_file(self, key: str, path: Path) -> None:
        # get_object rather than the transfer manager: one request, and a missing key is a clean 404.
        data = self.get_bytes(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def presign_get(self, key: str, expires_seconds: int) -> str:
        try:
            url: str = self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": key},
                ExpiresIn=expires_seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreError(f"could not presign {key!r}: {exc}") from exc
        return url

    def presign_put(self, key: str, *, size: int, content_type: str, expires_seconds: int) -> str:
        try:
            url: str = self._client.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ContentLength": size,
                    "ContentType": content_type,
                },
                ExpiresIn=expires_seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreError(f"could not presign an upload to {key!r}: {exc}") from exc
        return url

    def presign_post(
        self, prefix: str, *, max_bytes: int, expires_seconds: int, metadata: Sequence[str] = ()
    ) -> PresignedPost:
        conditions: list[Any] = [
            ["starts-with", "$key", prefix],
            ["content-length-range", 0, max_bytes],
            ["starts-with", "$Content-Type", ""],
        ]
        for name in metadata:
            if not _METADATA_NAME.match(name):
                raise BlobStoreError(f"{name!r} is not a metadata name (lower-case letters, digits, '-')")
            conditions.append(["starts-with", f"$x-amz-meta-{name}", ""])
        try:
            post = self._client.generate_presigned_post(
                Bucket=self._bucket,
                Key=prefix + "${filename}",
                Conditions=conditions,
                ExpiresIn=expires_seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreError(f"could not presign an upload to {prefix!r}: {exc}") from exc
        fields = {name: str(value) for name, value in post["fields"].items() if name != "key"}
        return PresignedPost(
            url=str(post["url"]),
            fields=fields,
            prefix=prefix,
            max_bytes=max_bytes,
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_seconds),
        )

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if not keys:
                    continue
                # list_objects_v2 pages hold at most 1,000 keys, the most delete_objects accepts.
                self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreError(f"could not delete blobs under {prefix!r}: {exc}") from exc
        return deleted

    def list_blobs(self, prefix: str, *, modified_since: datetime | None = None) -> list[BlobInfo]:
        found: list[BlobInfo] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    modified: datetime = item["LastModified"]
                    if modified_since is not None and modified < modified_since:
                        continue
                    # The uploader's sha256 is object metadata, which listings do not return.
                    head = self._client.head_object(Bucket=self._bucket, Key=item["Key"])
                    found.append(
                        BlobInfo(
                            key=item["Key"],
                            size=int(item["Size"]),
                            modified_at=modified,
                            sha256=str((head.get("Metadata") or {}).get("sha256", "")),
                            content_type=str(head.get("ContentType") or DEFAULT_CONTENT_TYPE),
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreError(f"could not list blobs under {prefix!r}: {exc}") from exc
        return found

    def list_keys(self, prefix: str, *, start_after: str = "") -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        arguments: dict[str, str] = {"Bucket": self._bucket, "Prefix": prefix}
        if start_after:
            arguments["StartAfter"] = start_after
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(**arguments):
                found.extend((item["Key"], int(item["Size"])) for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreError(f"could not list blobs under {prefix!r}: {exc}") from exc
        return found

    def delete_older(
        self, prefix: str, *, before: datetime, limit: int, keep: Callable[[str], bool] | None = None
    ) -> DeletedBlobs:
        count = size = 0
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                batch = [
                    item
                    for item in page.get("Contents", [])
                    if item["LastModified"] < before and not (keep is not None and keep(item["Key"]))
                ][: limit - count]
                if batch:
                    # A listing page holds at most 1,000 keys, the most delete_objects accepts.
                    self._client.delete_objects(
                        Bucket=self._bucket,
                        Delete={"Objects": [{"Key": item["Key"]} for item in batch], "Quiet": True},
                    )
                    count += len(batch)
                    size += sum(int(item["Size"]) for item in batch)
                if count >= limit:
                    break
        except (ClientError, BotoCoreError) as exc:
            raise BlobStoreError(f"could not delete old blobs under {prefix!r}: {exc}") from exc
        return DeletedBlobs(count=count, size=size)

    @staticmethod
    def _translate(key: str, exc: ClientError) -> BlobStoreError:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND_CODES:
            return BlobNotFoundError(key)
        return BlobStoreError(f"could not read blob {key!r}: {exc}")
