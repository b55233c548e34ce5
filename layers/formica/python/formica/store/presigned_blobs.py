"""A blob store that holds no credentials: presigned GETs to read, one presigned POST to write.

What the SHELL sandbox gets for its capability (``formica.runners.grants``): a URL per dependency
it may download, and, asked for when it first uploads, one upload grant limited to the attempt's
artifact prefix and a size. It is a
``BlobStore``, so the artifact code that runs next to a shell (``runners.artifacts``) works on it
unchanged; every other operation is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import httpx

from formica.store.blobs import (
    DEFAULT_CONTENT_TYPE,
    BlobInfo,
    BlobNotFoundError,
    BlobStore,
    BlobStoreError,
    DeletedBlobs,
    PresignedPost,
    file_digest,
)

TRANSFER_TIMEOUT_SECONDS = 120.0


class PresignedBlobStore(BlobStore):
    """Reads the keys of ``downloads`` (key -> presigned GET URL); writes under the prefix of the grant
    ``upload`` answers (asked once, at the first write: a grant signed when it is used)."""

    def __init__(
        self,
        downloads: Mapping[str, str],
        upload: PresignedPost | Callable[[], PresignedPost | None] | None,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        self._downloads = dict(downloads)
        self._upload_source = upload
        self._upload: PresignedPost | None = upload if isinstance(upload, PresignedPost) else None
        # trust_env=False: a proxy setting in the environment must not see the grants.
        self._client = client or httpx.Client(timeout=TRANSFER_TIMEOUT_SECONDS, trust_env=False)

    def put_bytes(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        self._post(key, data, len(data), content_type)

    def put_file(self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE) -> tuple[int, str]:
        size, sha256 = file_digest(path)
        try:
            with path.open("rb") as stream:  # streamed: an artifact may be larger than the memory
                self._post(key, stream, size, content_type)
        except OSError as exc:
            raise BlobStoreError(f"could not read {path.name!r}: {exc}") from exc
        return size, sha256

    def _grant(self) -> PresignedPost | None:
        if self._upload is None and callable(self._upload_source):
            try:
                self._upload = self._upload_source()
            except Exception as exc:  # the source's own errors (the grants route), named in the message
                raise BlobStoreError(f"no upload grant: {exc}") from exc
            self._upload_source = None
        return self._upload

    def _post(self, key: str, data: bytes | BinaryIO, size: int, content_type: str) -> None:
        grant = self._grant()
        if grant is None:
            raise BlobStoreError("this attempt may not upload anything")
        if not key.startswith(grant.prefix) or ".." in key.split("/"):
            raise BlobStoreError(f"{key!r} is outside this attempt's upload prefix")
        if size > grant.max_bytes:
            raise BlobStoreError(f"{key!r} is {size} bytes, more than the {grant.max_bytes} allowed")
        form = {**grant.fields, "key": key, "Content-Type": content_type}
        try:
            response = self._client.post(grant.url, data=form, files={"file": ("blob", data, content_type)})
        except httpx.HTTPError as exc:
            raise BlobStoreError(f"could not upload {key!r}: {exc}") from exc
        if response.status_code >= 300:
            raise BlobStoreError(f"could not upload {key!r}: HTTP {response.status_code}")

    def get_bytes(self, key: str) -> bytes:
        url = self._downloads.get(key)
        if url is None:
            raise BlobNotFoundError(key)
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise BlobStoreError(f"could not download {key!r}: {exc}") from exc
        if response.status_code == 404:
            raise BlobNotFoundError(key)
        if response.status_code >= 300:
            raise BlobStoreError(f"could not download {key!r}: HTTP {response.status_code}")
        return response.content

    def download_file(self, key: str, path: Path) -> None:
        data = self.get_bytes(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def presign_get(self, key: str, expires_seconds: int) -> str:
        raise BlobStoreError("a sandbox cannot grant access to anything")

    def presign_put(self, key: str, *, size: int, content_type: str, expires_seconds: int) -> str:
        raise BlobStoreError("a sandbox cannot grant access to anything")

    def presign_post(
        self, prefix: str, *, max_bytes: int, expires_seconds: int, metadata: Sequence[str] = ()
    ) -> PresignedPost:
        raise BlobStoreError("a sandbox cannot grant access to anything")

    def delete_prefix(self, prefix: str) -> int:
        raise BlobStoreError("a sandbox cannot delete anything")

    def list_blobs(self, prefix: str, *, modified_since: datetime | None = None) -> list[BlobInfo]:
        raise BlobStoreError("a sandbox cannot list anything")

    def delete_older(
        self, prefix: str, *, before: datetime, limit: int, keep: Callable[[str], bool] | None = None
    ) -> DeletedBlobs:
        raise BlobStoreError("a sandbox cannot delete anything")

    def close(self) -> None:
        self._client.close()
