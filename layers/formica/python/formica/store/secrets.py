"""Secrets: a port and its AWS Secrets Manager adapter (the pagination cursors' signing key).

The stack creates the secret and grants the API function ``secretsmanager:GetSecretValue`` on it
alone; the function finds it through ``FORMICA_CURSOR_KEY_SECRET`` (``formica.store.pagination``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError


class SecretStoreError(RuntimeError):
    """A secret could not be read, or its value is not usable."""


class SecretStore(ABC):
    """Port: read a secret's text by its name or ARN."""

    @abstractmethod
    def secret_string(self, secret_id: str) -> str:
        """The secret's current text; raises SecretStoreError."""


class SecretsManagerStore(SecretStore):
    """Adapter: AWS Secrets Manager. ``client`` defaults to the process's client, built on first use."""

    def __init__(self, client: Any | None = None) -> None:
        self._client_override = client

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("secretsmanager")

    def secret_string(self, secret_id: str) -> str:
        try:
            response = self._client.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise SecretStoreError(f"could not read secret {secret_id!r}: {code}") from exc
        except BotoCoreError as exc:
            raise SecretStoreError(f"could not read secret {secret_id!r}: {exc}") from exc
        value = response.get("SecretString")
        if not isinstance(value, str):
            raise SecretStoreError(f"secret {secret_id!r} holds no text (SecretString)")
        return value
