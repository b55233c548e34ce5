"""Each organisation's webhook signing secret: a Secrets Manager secret created on first use.

The secret ``{prefix}{org}`` holds 32 random bytes as hex. Two processes creating it at once race
on CreateSecret: the loser (ResourceExistsException) reads the winner's value, so every delivery of
an organisation is signed with one key.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from formica.store.dynamo import error_code
from formica.store.secrets import SecretStoreError


class WebhookSecrets(ABC):
    """Port: the organisation's webhook signing secret, created when first asked for."""

    @abstractmethod
    def secret_for(self, org: str) -> str:
        """The organisation's secret text; raises SecretStoreError."""


class SecretsManagerWebhookSecrets(WebhookSecrets):
    """Adapter: one Secrets Manager secret per organisation, named ``{prefix}{org}``."""

    def __init__(self, prefix: str, client: Any | None = None) -> None:
        self._prefix = prefix
        self._client_override = client

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("secretsmanager")

    def name(self, org: str) -> str:
        """The secret's name for ``org`` (organisation names hold no '/' or '#': formica.jobs.limits)."""
        return f"{self._prefix}{org}"

    def _read(self, name: str) -> str | None:
        try:
            value = self._client.get_secret_value(SecretId=name).get("SecretString")
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise SecretStoreError(f"could not read secret {name!r}: {error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise SecretStoreError(f"could not read secret {name!r}: {exc}") from exc
        if not isinstance(value, str) or not value:
            raise SecretStoreError(f"secret {name!r} holds no text (SecretString)")
        return value

    def secret_for(self, org: str) -> str:
        name = self.name(org)
        found = self._read(name)
        if found is not None:
            return found
        value = secrets.token_hex(32)
        try:
            self._client.create_secret(
                Name=name,
                SecretString=value,
                Description="Formica: signs this organisation's webhook deliveries",
            )
        except ClientError as exc:
            if error_code(exc) != "ResourceExistsException":
                raise SecretStoreError(f"could not create secret {name!r}: {error_code(exc)}") from exc
            raced = self._read(name)
            if raced is None:
                raise SecretStoreError(f"secret {name!r} exists but cannot be read") from exc
            return raced
        except BotoCoreError as exc:
            raise SecretStoreError(f"could not create secret {name!r}: {exc}") from exc
        return value
