"""The adapters the route logic uses, built once per process from the settings (lazily, never at import)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from formica.settings import get_settings
from formica.store.blobs import BlobStore, S3BlobStore
from formica.store.configs import ConfigRepository, ConfigSecretStore, SsmConfigSecretStore
from formica.store.definitions import DefinitionRepository
from formica.store.deliveries import DeliveryRepository
from formica.store.grants import DynamoGrantRepository, GrantRepository
from formica.store.idempotency import IdempotencyRepository
from formica.store.requests import RequestRepository
from formica.store.tokens import TokenRepository
from formica.store.webhook_secrets import SecretsManagerWebhookSecrets, WebhookSecrets


class RequestRuntime(Protocol):
    """The walk's entry points the API drives (``formica.runtime`` in production)."""

    def start(self, request_id: str) -> Any: ...

    def cancel(self, org: str, request_id: str) -> Any: ...

    def restart(self, org: str, request_id: str, *, hard: bool = False) -> Any: ...

    def trigger(self, org: str, request_id: str) -> Any: ...

    def start_waiting(self, org: str, job_type: str) -> Any: ...

    def answer_verdict(self, outcome: Any) -> Any: ...

    def resume(self, org: str, request_id: str, *, by: str) -> Any: ...


class ModuleRuntime:
    """``RequestRuntime`` backed by the ``formica.runtime`` package, imported on first use (it
    pulls in Step Functions clients the read-only routes never need)."""

    def start(self, request_id: str) -> Any:
        runtime = _runtime()
        return runtime.start_request(request_id, runtime.get_runtime())

    def cancel(self, org: str, request_id: str) -> Any:
        runtime = _runtime()
        return runtime.cancel_request(org, request_id, runtime.get_runtime())

    def restart(self, org: str, request_id: str, *, hard: bool = False) -> Any:
        runtime = _runtime()
        return runtime.restart_request(org, request_id, runtime.get_runtime(), hard=hard)

    def trigger(self, org: str, request_id: str) -> Any:
        # Due now, then admitted (a free max_concurrency slot still decides).
        runtime = _runtime()
        return runtime.trigger_now(org, request_id, runtime.get_runtime())

    def start_waiting(self, org: str, job_type: str) -> Any:
        # A raised max_concurrency lets waiting requests in now, not at the next sweep.
        runtime = _runtime()
        return runtime.start_waiting(org, job_type, runtime.get_runtime())

    def answer_verdict(self, outcome: Any) -> Any:
        # A MANUAL task's verdict (formica.runtime.approvals.VoteOutcome) answers the waiting walk.
        approvals = importlib.import_module("formica.runtime.approvals")
        return approvals.answer_verdict(_runtime().get_runtime(), outcome)

    def resume(self, org: str, request_id: str, *, by: str) -> Any:
        # A PAUSED request goes on (formica.runtime.pauses): the resume answers the waiting walk.
        pauses = importlib.import_module("formica.runtime.pauses")
        return pauses.resume_request(_runtime().get_runtime(), org, request_id, by=by)


def _runtime() -> Any:
    return importlib.import_module("formica.runtime")


@dataclass(frozen=True)
class ApiServices:
    """Everything the API's logic touches; tests build one around moto clients or fakes."""

    definitions: DefinitionRepository
    requests: RequestRepository
    tokens: TokenRepository
    idempotency: IdempotencyRepository
    blobs: BlobStore
    grants: GrantRepository
    runtime: RequestRuntime = field(default_factory=ModuleRuntime)
    presign_seconds: int = 300
    deliveries: DeliveryRepository | None = None
    """Webhook deliveries (``GET .../webhooks``); None: none are listed."""
    webhook_secrets: WebhookSecrets | None = None
    """The organisations' webhook signing secrets (``GET /api/webhooks/secret``)."""
    region: str = "us-east-1"
    """The stack's region: whose list prices a request's cost is given at."""
    configs: ConfigRepository | None = None
    config_secrets: ConfigSecretStore | None = None


_override: ApiServices | None = None


def use_services(services: ApiServices | None) -> None:
    """Make ``get_services`` answer ``services`` (None: back to the settings); tests and hosts."""
    global _override  # noqa: PLW0603 - one process-wide seam, like the cached getter itself
    _override = services


def get_services() -> ApiServices:
    """The process's services: the ones set by ``use_services``, else built from the settings."""
    return _override if _override is not None else _from_settings()


@lru_cache(maxsize=1)
def _from_settings() -> ApiServices:
    settings = get_settings()
    return ApiServices(
        definitions=DefinitionRepository(settings.table_name),
        requests=RequestRepository(settings.table_name, retention_days=settings.retention_days),
        tokens=TokenRepository(settings.table_name),
        idempotency=IdempotencyRepository(settings.table_name),
        blobs=S3BlobStore(settings.bucket_name),
        grants=DynamoGrantRepository(settings.table_name),
        presign_seconds=settings.presign_seconds,
        deliveries=DeliveryRepository(settings.table_name),
        webhook_secrets=SecretsManagerWebhookSecrets(settings.webhook_secret_prefix),
        region=settings.region,
        configs=ConfigRepository(settings.table_name),
        config_secrets=SsmConfigSecretStore(settings.configs_parameter_prefix, settings.configs_kms_key_id),
    )


def reset_services() -> None:
    """Forget the cached services (tests, and the local server when settings change)."""
    _from_settings.cache_clear()
