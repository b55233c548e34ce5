"""The audit log: one item per action taken through the API, under the organisation's partition.

Item: ``pk=ORG#{org}#AUDIT``, ``sk={at}#{audit_id}`` (``at`` ISO-8601 UTC with microseconds, so the
sort key orders by time); ``action``, ``actor_token_id``, ``actor_token_name``, ``target``, ``details``
(a map of short strings: ids and names only, never a secret), ``expires_at`` (the table's TTL,
``retention_days`` after the action). Listed newest first, a page at a time, filtered by action,
actor and time, with the store's signed cursors (``formica.store.pagination``).
"""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field

from formica.store.dynamo import DynamoTable
from formica.store.pagination import Page
from formica.store.requests import now_iso
from formica.store.schema import expires_at

__all__ = ["AUDIT_RETENTION_DAYS", "AuditItem", "AuditRepository", "AuditStoreError", "audit_pk"]

AUDIT_RETENTION_DAYS = 365
"""How long an audit item is kept unless the repository is given another retention."""


class AuditStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while writing or reading the audit log."""


def audit_pk(org: str) -> str:
    return f"ORG#{org}#AUDIT"


class AuditItem(BaseModel):
    """One action: who (the token), what, on what, when."""

    audit_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    org: str
    at: str = Field(default_factory=now_iso)
    action: str
    actor_token_id: str
    actor_token_name: str = ""
    target: str = ""
    details: dict[str, str] = Field(default_factory=dict)
    expires_at: int | None = None

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": audit_pk(self.org)},
            "sk": {"S": f"{self.at}#{self.audit_id}"},
            "kind": {"S": "AUDIT"},
            "audit_id": {"S": self.audit_id},
            "org": {"S": self.org},
            "at": {"S": self.at},
            "action": {"S": self.action},
            "actor_token_id": {"S": self.actor_token_id},
            "actor_token_name": {"S": self.actor_token_name},
            "target": {"S": self.target},
            "details": {"M": {name: {"S": value} for name, value in self.details.items()}},
        }
        if self.expires_at is not None:
            item["expires_at"] = {"N": str(self.expires_at)}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> AuditItem:
        return cls(
            audit_id=item["audit_id"]["S"],
            org=item["org"]["S"],
            at=item["at"]["S"],
            action=item["action"]["S"],
            actor_token_id=item["actor_token_id"]["S"],
            actor_token_name=item.get("actor_token_name", {}).get("S", ""),
            target=item.get("target", {}).get("S", ""),
            details={name: value["S"] for name, value in item.get("details", {}).get("M", {}).items()},
            expires_at=int(item["expires_at"]["N"]) if "expires_at" in item else None,
        )


class AuditRepository(DynamoTable):
    """Adapter: the audit items. ``client`` defaults to the process's DynamoDB client."""

    def __init__(
        self, table_name: str, client: Any | None = None, *, retention_days: int = AUDIT_RETENTION_DAYS
    ) -> None:
        super().__init__(table_name, client)
        self._retention_days = retention_days

    def record(self, audit: AuditItem) -> AuditItem:
        """Store one action (its ``expires_at`` set from the retention); the item as stored."""
        stored = audit.model_copy(update={"expires_at": expires_at(self._retention_days)})
        try:
            self._client.put_item(TableName=self._table, Item=stored.to_item())
        except (ClientError, BotoCoreError) as exc:
            raise AuditStoreError(f"could not record {audit.action}: {exc}") from exc
        return stored

    def list_for_org(
        self,
        org: str,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 50,
        next_token: str | None = None,
    ) -> Page[AuditItem]:
        """The organisation's actions, newest first, one page at a time (one Query).

        ``action`` matches exactly; ``actor`` matches the token's id or name; ``since`` / ``until``
        bound ``at`` (ISO-8601, inclusive). A filtered page may hold fewer than ``limit`` records and
        still have a next page. Raises ``InvalidCursorError`` for another partition's cursor.
        """
        values: dict[str, Any] = {}
        sort_condition = None
        if since is not None or until is not None:
            sort_condition = "sk BETWEEN :from AND :to"
            values[":from"] = {"S": since or "0"}
            values[":to"] = {"S": (until or "9999") + "#\uffff"}
        filters = []
        if action is not None:
            filters.append("#action = :action")
            values[":action"] = {"S": action}
        if actor is not None:
            filters.append("(actor_token_id = :actor OR actor_token_name = :actor)")
            values[":actor"] = {"S": actor}
        try:
            items, cursor = self._query_page(
                audit_pk(org),
                limit=limit,
                next_token=next_token,
                sort_condition=sort_condition,
                filter_expression=" AND ".join(filters),
                values=values,
                names={"#action": "action"} if action is not None else None,
                newest_first=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise AuditStoreError(f"could not list the audit log: {exc}") from exc
        return Page(records=[AuditItem.from_item(item) for item in items], next_token=cursor)
