"""What every DynamoDB adapter shares: the table name, a lazily built client, error codes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from formica.store.pagination import decode_cursor, encode_cursor
from formica.store.schema import GSI1, GSI2

CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"
MAX_LIST_LIMIT = 100
"""The most records one listing page returns, whatever ``limit`` asks for."""


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
        from formica.store.aws import get_client  # noqa: PLC0415 - cold start: boto3 loads with the first client, not at import

        return get_client("dynamodb")

    def _query_page(
        self,
        partition: str,
        *,
        limit: int,
        next_token: str | None,
        index: str | None = None,
        sort_condition: str | None = None,
        filter_expression: str | None = None,
        values: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
        newest_first: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a partition of the table (or of ``index``): (raw items, the next page's cursor).

        ``sort_condition`` narrows the sort key (its placeholders in ``values``); ``filter_expression``
        filters the page (a filtered page may hold fewer than ``limit`` items and still have a next
        page), with ``values`` and ``names`` for its placeholders. The cursor is signed and bound to
        the partition: one of another partition raises ``InvalidCursorError``. Botocore errors pass
        through for the caller to wrap in its own ``...Error``.
        """
        key = f"{index}pk" if index is not None else "pk"
        start = decode_cursor(next_token, partition_attribute=key, partition_value=partition)
        condition = f"{key} = :pk" + (f" AND {sort_condition}" if sort_condition else "")
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": {":pk": {"S": partition}, **(values or {})},
            "ScanIndexForward": not newest_first,
            "Limit": max(1, min(limit, MAX_LIST_LIMIT)),
        }
        if index is not None:
            query["IndexName"] = index
        if filter_expression:
            query["FilterExpression"] = filter_expression
        if names:
            query["ExpressionAttributeNames"] = dict(names)
        if start is not None:
            query["ExclusiveStartKey"] = start
        response = self._client.query(**query)
        return list(response.get("Items", [])), encode_cursor(response.get("LastEvaluatedKey"))

    def _gsi1_page(
        self,
        partition: str,
        *,
        limit: int,
        next_token: str | None,
        newest_first: bool = False,
        equals: Mapping[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a gsi1 partition (``_query_page``), filtered on attributes equal to ``equals``."""
        filters: list[str] = []
        values: dict[str, Any] = {}
        names: dict[str, str] = {}
        for position, (attribute, value) in enumerate((equals or {}).items()):
            filters.append(f"#f{position} = :f{position}")
            names[f"#f{position}"] = attribute
            values[f":f{position}"] = {"S": value}
        return self._query_page(
            partition,
            limit=limit,
            next_token=next_token,
            index=GSI1,
            filter_expression=" AND ".join(filters),
            values=values,
            names=names,
            newest_first=newest_first,
        )

    def _query_prefix_items(
        self, partition: str, prefix: str, *, count: bool = False
    ) -> tuple[list[dict[str, Any]], int]:
        """Every item of ``partition`` whose sort key starts with ``prefix`` (consistent), all pages;
        with ``count`` only how many (Select=COUNT). Botocore errors pass through to be wrapped."""
        items: list[dict[str, Any]] = []
        total = 0
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": partition}, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
        }
        if count:
            query["Select"] = "COUNT"
        for page in self._client.get_paginator("query").paginate(**query):
            items.extend(page.get("Items", []))
            total += int(page.get("Count", 0))
        return items, total

    def _gsi2_items(
        self, partition: str, *, max_items: int, sort_below: str | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``max_items`` items of a (sparse) gsi2 partition, in its sort order (eventually
        consistent); with ``sort_below``, only those whose gsi2sk sorts before it. Botocore errors
        pass through to be wrapped."""
        items: list[dict[str, Any]] = []
        condition = "gsi2pk = :pk"
        values: dict[str, Any] = {":pk": {"S": partition}}
        if sort_below is not None:
            condition += " AND gsi2sk < :below"
            values[":below"] = {"S": sort_below}
        for page in self._client.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=GSI2,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
        ):
            items.extend(page.get("Items", []))
            if len(items) >= max_items:
                break
        return items[:max_items]

    def _update_if(self, **update: Any) -> bool:
        """UpdateItem with its ConditionExpression; False when the condition failed (the state it
        expected is gone). Botocore errors pass through to be wrapped."""
        try:
            self._client.update_item(TableName=self._table, **update)
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def _put_if_absent(self, item: dict[str, Any]) -> bool:
        """Put a new item; False when one with its key exists. Botocore errors pass through."""
        try:
            self._client.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True


def error_code(exc: ClientError) -> str:
    """The AWS error code of a botocore ClientError ("" when absent)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_conditional_failure(exc: ClientError) -> bool:
    """True when a conditional write lost: the state it expected is no longer there."""
    return error_code(exc) == CONDITIONAL_CHECK_FAILED
