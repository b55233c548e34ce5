"""Configs of an organisation and of its job types, and where secret configs' values live.

Item (docs/architecture.md): ``pk=ORG#{org}#CONFIGS``, ``sk=ORG#{name}`` (an organisation's config)
or ``sk=JOB#{job_type}#{name}`` (a job type's), with ``name``, ``secret``, ``created_at``,
``updated_at`` and, for a plain config, its ``value``. A secret config's item keeps only
``secret_ref``: the name of an SSM Parameter Store SecureString parameter
``{prefix}/{org}/org/{name}`` or ``{prefix}/{org}/job/{job_type}/{name}``, encrypted with the
stack's KMS key (docs/decisions.md). Every key starts with the organisation, so nothing of one
organisation is reachable from another's.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.store.dynamo import DynamoTable, error_code, is_conditional_failure

CONFIG_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""A config's name: an environment variable's (configs are exported to every task)."""
CONFIG_NAME_MAX = 100
CONFIG_VALUE_MAX_BYTES = 4096
"""A config's value, as UTF-8 (an SSM standard parameter holds at most 4 KB)."""
_NAME = re.compile(CONFIG_NAME_PATTERN)
_GET_PARAMETERS_MAX = 10
"""GetParameters reads at most this many names per call."""


class ConfigStoreError(RuntimeError):
    """DynamoDB or the parameter store refused or could not be reached."""


class ConfigNotFoundError(ConfigStoreError):
    """No config of this name in this scope."""

    def __init__(self, scope: str, name: str) -> None:
        super().__init__(f"no config {name!r} in {scope}")
        self.name = name


class ConfigExistsError(ConfigStoreError):
    """A config of this name exists in this scope already."""

    def __init__(self, scope: str, name: str) -> None:
        super().__init__(f"config {name!r} exists in {scope} already (PUT changes it)")
        self.name = name


def is_config_name(name: str) -> bool:
    """Whether ``name`` is a valid config name (see ``CONFIG_NAME_PATTERN``)."""
    return len(name) <= CONFIG_NAME_MAX and _NAME.match(name) is not None


def scope_text(org: str, job_type: str | None) -> str:
    """How error messages name a scope."""
    return f"job type {job_type!r}" if job_type else f"organisation {org!r}"


def configs_pk(org: str) -> str:
    return f"ORG#{org}#CONFIGS"


def config_sk_prefix(job_type: str | None) -> str:
    # Job types never hold '#' (formica.jobs.limits), so one job type's prefix is not another's.
    return f"JOB#{job_type}#" if job_type else "ORG#"


@dataclass(frozen=True)
class ConfigItem:
    """A stored config. ``value`` is None for a secret (its value is in the parameter store)."""

    org: str
    job_type: str | None
    name: str
    secret: bool
    value: str | None
    secret_ref: str | None
    created_at: str
    updated_at: str

    @property
    def config_id(self) -> str:
        """The id the API names it by: its name (unique in its scope)."""
        return self.name


def _item(config: ConfigItem) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": configs_pk(config.org)},
        "sk": {"S": config_sk_prefix(config.job_type) + config.name},
        "org": {"S": config.org},
        "name": {"S": config.name},
        "secret": {"BOOL": config.secret},
        "created_at": {"S": config.created_at},
        "updated_at": {"S": config.updated_at},
    }
    if config.job_type:
        item["job_type"] = {"S": config.job_type}
    if config.value is not None:
        item["value"] = {"S": config.value}
    if config.secret_ref is not None:
        item["secret_ref"] = {"S": config.secret_ref}
    return item


def _config(item: dict[str, Any]) -> ConfigItem:
    def text(name: str) -> str | None:
        value = item.get(name)
        return str(value["S"]) if value else None

    return ConfigItem(
        org=str(text("org")),
        job_type=text("job_type"),
        name=str(text("name")),
        secret=bool(item.get("secret", {}).get("BOOL", False)),
        value=text("value"),
        secret_ref=text("secret_ref"),
        created_at=str(text("created_at")),
        updated_at=str(text("updated_at")),
    )


class ConfigRepository(DynamoTable):
    """The configs' items (values of plain configs, references of secret ones)."""

    def list(self, org: str, job_type: str | None = None) -> list[ConfigItem]:
        """The configs of the organisation (``job_type`` None) or of one of its job types, by name."""
        try:
            items, _ = self._query_prefix_items(configs_pk(org), config_sk_prefix(job_type))
        except (ClientError, BotoCoreError) as exc:
            raise ConfigStoreError(f"could not list configs: {exc}") from exc
        return sorted((_config(item) for item in items), key=lambda config: config.name)

    def get(self, org: str, job_type: str | None, name: str) -> ConfigItem:
        """One config; ConfigNotFoundError when absent."""
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": configs_pk(org)}, "sk": {"S": config_sk_prefix(job_type) + name}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise ConfigStoreError(f"could not read config {name!r}: {exc}") from exc
        item = response.get("Item")
        if not item:
            raise ConfigNotFoundError(scope_text(org, job_type), name)
        return _config(item)

    def create(self, config: ConfigItem) -> None:
        """Store a new config; ConfigExistsError when its name is taken in its scope."""
        try:
            created = self._put_if_absent(_item(config))
        except (ClientError, BotoCoreError) as exc:
            raise ConfigStoreError(f"could not store config {config.name!r}: {exc}") from exc
        if not created:
            raise ConfigExistsError(scope_text(config.org, config.job_type), config.name)

    def replace(self, config: ConfigItem) -> None:
        """Overwrite an existing config; ConfigNotFoundError when it is gone (deleted meanwhile)."""
        try:
            self._client.put_item(
                TableName=self._table, Item=_item(config), ConditionExpression="attribute_exists(pk)"
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise ConfigNotFoundError(scope_text(config.org, config.job_type), config.name) from exc
            raise ConfigStoreError(f"could not store config {config.name!r}: {error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise ConfigStoreError(f"could not store config {config.name!r}: {exc}") from exc

    def delete(self, org: str, job_type: str | None, name: str) -> ConfigItem:
        """Delete a config and return what it was; ConfigNotFoundError when absent."""
        try:
            response = self._client.delete_item(
                TableName=self._table,
                Key={"pk": {"S": configs_pk(org)}, "sk": {"S": config_sk_prefix(job_type) + name}},
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise ConfigNotFoundError(scope_text(org, job_type), name) from exc
            raise ConfigStoreError(f"could not delete config {name!r}: {error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise ConfigStoreError(f"could not delete config {name!r}: {exc}") from exc
        return _config(response["Attributes"])


class ConfigSecretStore(ABC):
    """Port: where secret configs' values are kept, by reference (never in the table)."""

    @abstractmethod
    def reference(self, org: str, job_type: str | None, name: str) -> str:
        """The reference a secret config of this scope and name is stored under."""

    @abstractmethod
    def put(self, reference: str, value: str) -> None:
        """Store (or replace: a rotation) a secret's value; raises ConfigStoreError."""

    @abstractmethod
    def values(self, references: Iterable[str]) -> dict[str, str]:
        """The current values of these references (missing ones left out); raises ConfigStoreError."""

    @abstractmethod
    def delete(self, reference: str) -> None:
        """Forget a secret's value (absent: nothing to do); raises ConfigStoreError."""


class SsmConfigSecretStore(ConfigSecretStore):
    """Adapter: SSM Parameter Store SecureString parameters under ``prefix``, encrypted with
    ``kms_key_id`` (None: the account's ``alias/aws/ssm``). ``client`` defaults to the process's."""

    def __init__(self, prefix: str, kms_key_id: str | None = None, client: Any | None = None) -> None:
        self._prefix = "/" + prefix.strip("/")
        self._kms_key_id = kms_key_id
        self._client_override = client

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("ssm")

    def reference(self, org: str, job_type: str | None, name: str) -> str:
        scope = f"job/{job_type}" if job_type else "org"
        return f"{self._prefix}/{org}/{scope}/{name}"

    def put(self, reference: str, value: str) -> None:
        arguments: dict[str, Any] = {
            "Name": reference,
            "Value": value,
            "Type": "SecureString",
            "Overwrite": True,
            "Tier": "Standard",
        }
        if self._kms_key_id:
            arguments["KeyId"] = self._kms_key_id
        try:
            self._client.put_parameter(**arguments)
        except ClientError as exc:
            # Never the value, nor botocore's text (which could quote the request).
            raise ConfigStoreError(f"could not store secret {reference!r}: {error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise ConfigStoreError(f"could not store secret {reference!r}: {type(exc).__name__}") from exc

    def values(self, references: Iterable[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(references))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), _GET_PARAMETERS_MAX):
            chunk = wanted[start : start + _GET_PARAMETERS_MAX]
            try:
                response = self._client.get_parameters(Names=chunk, WithDecryption=True)
            except ClientError as exc:
                raise ConfigStoreError(f"could not read secrets: {error_code(exc)}") from exc
            except BotoCoreError as exc:
                raise ConfigStoreError(f"could not read secrets: {type(exc).__name__}") from exc
            for parameter in response.get("Parameters", []):
                found[str(parameter["Name"])] = str(parameter["Value"])
        return found

    def delete(self, reference: str) -> None:
        try:
            self._client.delete_parameter(Name=reference)
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return
            raise ConfigStoreError(f"could not delete secret {reference!r}: {error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise ConfigStoreError(f"could not delete secret {reference!r}: {type(exc).__name__}") from exc
