"""An in-memory ``BlobStore`` for tests of the modules that use one (never shipped in the layer)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from formica.store.blobs import (
    DEFAULT_CONTENT_TYPE,
    BlobInfo,
    BlobNotFoundError,
    BlobStore,
    DeletedBlobs,
    PresignedPost,
)


class InMemoryBlobStore(BlobStore):
    """Fake for tests of other modules: a dict of key -> (bytes, content type). Thread-safe."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, str]] = {}
        self.modified: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def put_bytes(self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        with self._lock:
            self.blobs[key] = (bytes(data), content_type)
            self.modified[key] = datetime.now(UTC)

    def put_file(self, key: str, path: Path, content_type: str = DEFAULT_CONTENT_TYPE) -> tuple[int, str]:
        data = path.read_bytes()
        self.put_bytes(key, data, content_type)
        return len(data), hashlib.sha256(data).hexdigest()

    def get_bytes(self, key: str) -> bytes:
        with self._lock:
            entry = self.blobs.get(key)
        if entry is None:
            raise BlobNotFoundError(key)
        return entry[0]

    def download_file(self, key: str, path: Path) -> None:
        data = self.get_bytes(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def presign_get(self, key: str, expires_seconds: int) -> str:
        # Like S3, presigning does not check that the key exists.
        return f"memory://blobs/{key}?expires={expires_seconds}"

    def presign_put(self, key: str, *, size: int, content_type: str, expires_seconds: int) -> str:
        return f"memory://blobs/{key}?size={size}&expires={expires_seconds}"

    def presign_post(
        self, prefix: str, *, max_bytes: int, expires_seconds: int, metadata: Sequence[str] = ()
    ) -> PresignedPost:
        return PresignedPost(
            url=f"memory://blobs/{prefix}",
            fields={"policy": "memory", **{f"x-memory-allows-meta-{name}": "" for name in metadata}},
            prefix=prefix,
            max_bytes=max_bytes,
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_seconds),
        )

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [key for key in self.blobs if key.startswith(prefix)]
            for key in doomed:
                del self.blobs[key]
                self.modified.pop(key, None)
        return len(doomed)

    def delete_older(
        self, prefix: str, *, before: datetime, limit: int, keep: Callable[[str], bool] | None = None
    ) -> DeletedBlobs:
        with self._lock:
            doomed = [
                key
                for key in sorted(self.blobs)
                if key.startswith(prefix)
                and self.modified[key] < before
                and not (keep is not None and keep(key))
            ][:limit]
            size = sum(len(self.blobs[key][0]) for key in doomed)
            for key in doomed:
                del self.blobs[key]
                self.modified.pop(key, None)
        return DeletedBlobs(count=len(doomed), size=size)

    def list_blobs(self, prefix: str, *, modified_since: datetime | None = None) -> list[BlobInfo]:
        with self._lock:
            return [
                BlobInfo(
                    key=key,
                    size=len(data),
                    modified_at=self.modified[key],
                    sha256=hashlib.sha256(data).hexdigest(),
                    content_type=content_type,
                )
                for key, (data, content_type) in sorted(self.blobs.items())
                if key.startswith(prefix) and (modified_since is None or self.modified[key] >= modified_since)
            ]

    def content_type(self, key: str) -> str:
        """The content type stored with ``key`` (tests check what uploaders chose)."""
        return self.blobs[key][1]
