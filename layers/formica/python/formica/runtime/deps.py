"""What the runtime works with: the stores, the state machine client and the clock, built lazily.

``get_runtime()`` builds one ``Runtime`` from the settings on first use (never at import time);
tests build their own with fakes or moto-backed adapters and pass it explicitly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from formica.settings import FormicaSettings, get_settings
from formica.store.blobs import BlobStore
from formica.store.requests import RequestRepository


class DefinitionVersion(Protocol):
    """The parts of a stored definition version the walk reads."""

    @property
    def raw_yaml(self) -> str: ...


class DefinitionSource(Protocol):
    """Port: where definition versions come from (``formica.store.definitions.DefinitionRepository``)."""

    def get_version(
        self, org: str, job_type: str, version: int | None = None
    ) -> DefinitionVersion | None: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """The runtime's collaborators. ``sfn`` is a boto3 Step Functions client (lazily built)."""

    settings: FormicaSettings
    requests: RequestRepository
    definitions: DefinitionSource
    blobs: BlobStore
    sfn_factory: Callable[[], Any]
    now: Callable[[], datetime] = _utc_now
    _raw_yaml: dict[tuple[str, str, int], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sfn(self) -> Any:
        return self.sfn_factory()

    def raw_yaml(self, org: str, job_type: str, version: int) -> str | None:
        """The definition text of a version; versions never change, so it is cached per process."""
        key = (org, job_type, version)
        with self._lock:
            cached = self._raw_yaml.get(key)
        if cached is not None:
            return cached
        item = self.definitions.get_version(org, job_type, version)
        if item is None:
            return None
        with self._lock:
            self._raw_yaml[key] = item.raw_yaml
        return item.raw_yaml


def build_runtime(settings: FormicaSettings | None = None) -> Runtime:
    """A Runtime on the settings' table, bucket and endpoint (the process's cached clients)."""
    from formica.store.aws import get_client
    from formica.store.blobs import S3BlobStore
    from formica.store.definitions import DefinitionRepository

    resolved = settings or get_settings()
    return Runtime(
        settings=resolved,
        requests=RequestRepository(resolved.table_name),
        definitions=DefinitionRepository(resolved.table_name),
        blobs=S3BlobStore(resolved.bucket_name),
        sfn_factory=lambda: get_client("stepfunctions"),
    )


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    """The process's Runtime, built from the settings on first use."""
    return build_runtime()


def reset_runtime() -> None:
    """Forget the cached Runtime (tests and the local server change settings)."""
    get_runtime.cache_clear()
