"""What every DynamoDB adapter shares: the table name, a lazily built client, error codes."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"


class DynamoTable:
    """Base of the single-table repositories. ``client`` defaults to the process's DynamoDB client,
    built on first use (never at import), so one process can point every adapter at moto or AWS."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client_override = client

    @property
    def table_name(self) -> str:
        return self._table

    @property
    def _client(self) -> Any:
        if self._client_override is not None:
            return self._client_override
        from formica.store.aws import get_client

        return get_client("dynamodb")


def error_code(exc: ClientError) -> str:
    """The AWS error code of a botocore ClientError ("" when absent)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_conditional_failure(exc: ClientError) -> bool:
    """True when a conditional write lost: the state it expected is no longer there."""
    return error_code(exc) == CONDITIONAL_CHECK_FAILED
