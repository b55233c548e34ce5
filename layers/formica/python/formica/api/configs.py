"""The config routes: an organisation's configs and a job type's, plain or secret.

``/api/orgs/{org}/configs[/{id}]`` and ``/api/jobs/definitions/{job_type}/configs[/{id}]``
(formicary's routes). A config's id is its name, unique in its scope. A secret's value goes to the
parameter store (``ConfigSecretStore``) and is never answered: a secret config reads as
``"secret": true`` with no value. Every read and write is keyed by the caller's organisation: a
path naming another organisation, or a job type it does not have, answers 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from formica.api.errors import ErrorDetail, ResourceNotFoundError, ServiceUnavailableError, ValidationApiError
from formica.api.models import RequestModel
from formica.api.services import ApiServices
from formica.engine.masking import SECRET_MIN_LENGTH
from formica.store.configs import (
    CONFIG_NAME_MAX,
    CONFIG_NAME_PATTERN,
    CONFIG_VALUE_MAX_BYTES,
    ConfigItem,
    ConfigRepository,
    ConfigSecretStore,
    ConfigStoreError,
    is_config_name,
)
from formica.store.requests import now_iso


class CreateConfigRequest(RequestModel):
    """A new config."""

    name: str = Field(description=f"An environment variable's name ({CONFIG_NAME_PATTERN}).")
    value: str = Field(description=f"At most {CONFIG_VALUE_MAX_BYTES} bytes as UTF-8.")
    secret: bool = Field(
        default=False,
        description=f"Kept in the parameter store, never answered, masked in logs (at least "
        f"{SECRET_MIN_LENGTH} characters).",
    )


class UpdateConfigRequest(RequestModel):
    """A config's new value (a secret's new value takes effect from the next attempt on)."""

    name: str | None = Field(default=None, description="The config's name, if given (renaming is refused).")
    value: str
    secret: bool = False


class ConfigResponse(BaseModel):
    id: str = Field(description="The config's name: its id in its scope.")
    name: str
    value: str | None = Field(description="The value; null for a secret, whose value is never answered.")
    secret: bool
    job_type: str | None = Field(default=None, description="Set on a job type's config.")
    created_at: str
    updated_at: str


class ConfigListResponse(BaseModel):
    records: list[ConfigResponse]


def config_response(item: ConfigItem) -> ConfigResponse:
    return ConfigResponse(
        id=item.config_id,
        name=item.name,
        value=None if item.secret else item.value,
        secret=item.secret,
        job_type=item.job_type,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


@dataclass(frozen=True)
class _Scope:
    """The stores and the scope (the organisation, or one of its job types) a config route uses."""

    configs: ConfigRepository
    secrets: ConfigSecretStore
    org: str
    job_type: str | None

    def item(self, name: str, value: str, *, secret: bool, created_at: str, updated_at: str) -> ConfigItem:
        """The config item of ``name`` in this scope: a secret's holds its parameter's name, not its value."""
        return ConfigItem(
            org=self.org,
            job_type=self.job_type,
            name=name,
            secret=secret,
            value=None if secret else value,
            secret_ref=self.secrets.reference(self.org, self.job_type, name) if secret else None,
            created_at=created_at,
            updated_at=updated_at,
        )


def _scope(services: ApiServices, org: str, path_org: str | None, job_type: str | None) -> _Scope:
    """The scope a config route works in, with its stores; every config route starts here.

    404 for an organisation other than the caller's, or a job type it does not have; 503 when this
    API was built without a config store (no request could succeed here, whatever it holds).
    """
    if path_org is not None and path_org != org:
        raise ResourceNotFoundError(f"organisation {path_org!r} not found")
    if job_type is not None and services.definitions.get_head(org, job_type) is None:
        raise ResourceNotFoundError(f"job type {job_type!r} not found")
    if services.configs is None or services.config_secrets is None:
        raise ServiceUnavailableError("configs are not available: this API was built without a config store")
    return _Scope(services.configs, services.config_secrets, org, job_type)


def _check_value(value: str, *, secret: bool) -> None:
    if len(value.encode("utf-8")) > CONFIG_VALUE_MAX_BYTES:
        message = f"a config's value is at most {CONFIG_VALUE_MAX_BYTES} bytes"
        raise ValidationApiError(message, [ErrorDetail(message=message, field="value")])
    if secret and len(value) < SECRET_MIN_LENGTH:
        message = (
            f"a secret is at least {SECRET_MIN_LENGTH} characters long: a shorter one could not be "
            "masked in logs without mangling them"
        )
        raise ValidationApiError(message, [ErrorDetail(message=message, field="value")])


def _check_name(name: str) -> None:
    if not is_config_name(name):
        message = (
            f"a config's name matches {CONFIG_NAME_PATTERN} and has at most {CONFIG_NAME_MAX} characters"
        )
        raise ValidationApiError(message, [ErrorDetail(message=message, field="name")])


def list_configs(
    services: ApiServices, org: str, *, path_org: str | None = None, job_type: str | None = None
) -> ConfigListResponse:
    """The configs of the organisation, or of one of its job types, by name."""
    scope = _scope(services, org, path_org, job_type)
    return ConfigListResponse(
        records=[config_response(item) for item in scope.configs.list(scope.org, scope.job_type)]
    )


def get_config(
    services: ApiServices,
    org: str,
    config_id: str,
    *,
    path_org: str | None = None,
    job_type: str | None = None,
) -> ConfigResponse:
    """One config (a secret without its value); ConfigNotFoundError (404) when absent."""
    scope = _scope(services, org, path_org, job_type)
    return config_response(scope.configs.get(scope.org, scope.job_type, config_id))


def create_config(
    services: ApiServices,
    org: str,
    body: CreateConfigRequest,
    *,
    path_org: str | None = None,
    job_type: str | None = None,
) -> ConfigResponse:
    """A new config; 409 (ConfigExistsError) when its name is taken in its scope.

    A secret's item is written first (the conditional put that settles a race on the name), then
    its value in the parameter store; when that fails the item is removed again.
    """
    scope = _scope(services, org, path_org, job_type)
    _check_name(body.name)
    _check_value(body.value, secret=body.secret)
    now = now_iso()
    item = scope.item(body.name, body.value, secret=body.secret, created_at=now, updated_at=now)
    scope.configs.create(item)
    if item.secret_ref is not None:
        try:
            scope.secrets.put(item.secret_ref, body.value)
        except ConfigStoreError:
            scope.configs.delete(scope.org, scope.job_type, body.name)
            raise
    return config_response(item)


def update_config(
    services: ApiServices,
    org: str,
    config_id: str,
    body: UpdateConfigRequest,
    *,
    path_org: str | None = None,
    job_type: str | None = None,
) -> ConfigResponse:
    """A config's new value (and secrecy); 404 when absent. A secret's new value is written to the
    parameter store before its item, so the next attempt reads it (rotation)."""
    scope = _scope(services, org, path_org, job_type)
    if body.name is not None and body.name != config_id:
        message = "a config cannot be renamed: create one of the new name and delete this one"
        raise ValidationApiError(message, [ErrorDetail(message=message, field="name")])
    _check_value(body.value, secret=body.secret)
    current = scope.configs.get(scope.org, scope.job_type, config_id)
    item = scope.item(
        config_id, body.value, secret=body.secret, created_at=current.created_at, updated_at=now_iso()
    )
    if item.secret_ref is not None:
        scope.secrets.put(item.secret_ref, body.value)
    scope.configs.replace(item)
    if current.secret_ref is not None and current.secret_ref != item.secret_ref:
        scope.secrets.delete(current.secret_ref)
    return config_response(item)


def delete_config(
    services: ApiServices,
    org: str,
    config_id: str,
    *,
    path_org: str | None = None,
    job_type: str | None = None,
) -> ConfigResponse:
    """Delete a config (and a secret's value); 404 when absent. Answers what was deleted."""
    scope = _scope(services, org, path_org, job_type)
    item = scope.configs.delete(scope.org, scope.job_type, config_id)
    if item.secret_ref is not None:
        scope.secrets.delete(item.secret_ref)
    return config_response(item)
