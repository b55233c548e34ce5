"""API tokens: opaque random secrets, of which only the sha256 is stored.

Item (docs/architecture.md): ``pk=TOKEN#{sha256(secret)}``, ``sk=TOKEN``,
``gsi1pk=ORG#{org}#TOKENS``, ``gsi1sk={created_at}#{token_id}``. The TTL attribute ``expires_at``
lets DynamoDB sweep expired tokens; since that sweep may lag by days, expiry is also checked on
every use. A revoked token stays readable (for listings) until its TTL removes it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from formica.jobs.limits import NAME_RULE, is_name, shown
from formica.store.dynamo import DynamoTable, is_conditional_failure
from formica.store.pagination import Page
from formica.store.schema import token_pk

TOKEN_PREFIX = "fmc_"  # noqa: S105 - a public prefix, not a secret
TOKEN_SK = "TOKEN"  # noqa: S105 - a sort-key value
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256
TOKEN_NAME_MAX_CHARS = 100
"""A token's name (an attribute of its item; the API and ``formica tokens create`` both check it)."""
# A revoked token without expiry is kept this long for the listing, then swept by TTL.
REVOKED_RETENTION = timedelta(days=30)


class TokenStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while reading or writing tokens."""


class TokenNotFoundError(TokenStoreError):
    """No token with this id exists in the organisation."""

    def __init__(self, token_id: str) -> None:
        super().__init__(f"token {token_id!r} does not exist")
        self.token_id = token_id


def hash_secret(secret: str) -> str:
    """The stored form of a token: hex sha256 of its text."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh token: the recognisable prefix and 256 bits of randomness, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def tokens_gsi1pk(org: str) -> str:
    return f"ORG#{org}#TOKENS"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class TokenItem(BaseModel):
    """A stored token: everything but the secret."""

    token_id: str
    org: str
    name: str
    secret_hash: str
    created_at: str
    expires_at: str | None = None
    revoked_at: str | None = None

    def is_active(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or datetime.fromisoformat(self.expires_at) > now

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": token_pk(self.secret_hash)},
            "sk": {"S": TOKEN_SK},
            "gsi1pk": {"S": tokens_gsi1pk(self.org)},
            "gsi1sk": {"S": f"{self.created_at}#{self.token_id}"},
            "kind": {"S": "TOKEN"},
            "token_id": {"S": self.token_id},
            "org": {"S": self.org},
            "name": {"S": self.name},
            "created_at": {"S": self.created_at},
        }
        if self.expires_at is not None:
            item["expires_at_iso"] = {"S": self.expires_at}
            item["expires_at"] = {"N": str(int(datetime.fromisoformat(self.expires_at).timestamp()))}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> TokenItem:
        return cls(
            token_id=item["token_id"]["S"],
            org=item["org"]["S"],
            name=item["name"]["S"],
            secret_hash=item["pk"]["S"].removeprefix("TOKEN#"),
            created_at=item["created_at"]["S"],
            expires_at=item["expires_at_iso"]["S"] if "expires_at_iso" in item else None,
            revoked_at=item["revoked_at"]["S"] if "revoked_at" in item else None,
        )


class TokenRepository(DynamoTable):
    """Adapter: tokens in the single table. ``client`` defaults to the process's DynamoDB client."""

    def create(
        self,
        org: str,
        name: str,
        *,
        expires_in_days: int | None = None,
        secret: str | None = None,
        now: datetime | None = None,
    ) -> tuple[TokenItem, str]:
        """Store a new token for ``org``; returns (item, secret). The secret is never stored.

        ``secret`` fixes the token's text (``formica dev --token``); by default a fresh one is drawn.
        Raises ValueError for an organisation outside the name rule (``formica.jobs.limits``: it is
        part of keys) or a token name longer than ``TOKEN_NAME_MAX_CHARS``.
        """
        if not is_name(org):
            raise ValueError(f"organisation {shown(org)} is not a valid name: use {NAME_RULE}")
        if not 1 <= len(name) <= TOKEN_NAME_MAX_CHARS:
            raise ValueError(f"a token name has 1 to {TOKEN_NAME_MAX_CHARS} characters, not {len(name)}")
        if secret is None:
            secret = new_secret()
        elif not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS:
            raise ValueError(f"a token must have {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters")
        moment = now or datetime.now(UTC)
        expires_at = None
        if expires_in_days is not None:
            if expires_in_days < 1:
                raise ValueError("expires_in_days must be >= 1")
            expires_at = _iso(moment + timedelta(days=expires_in_days))
        item = TokenItem(
            token_id="tok_" + secrets.token_hex(8),
            org=org,
            name=name,
            secret_hash=hash_secret(secret),
            created_at=_iso(moment),
            expires_at=expires_at,
        )
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item.to_item(),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise ValueError("this token text is already in use") from exc
            raise TokenStoreError(
                f"could not store token: {exc.response.get('Error', {}).get('Code')}"
            ) from exc
        except BotoCoreError as exc:
            raise TokenStoreError("could not store token") from exc
        return item, secret

    def find_active(self, secret: str, *, now: datetime | None = None) -> TokenItem | None:
        """The active (known, unexpired, unrevoked) token with this text, or None."""
        if not secret or len(secret) > MAX_SECRET_CHARS:
            return None
        secret_hash = hash_secret(secret)
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": token_pk(secret_hash)}, "sk": {"S": TOKEN_SK}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise TokenStoreError("could not read token") from exc
        raw = response.get("Item")
        if raw is None:
            return None
        item = TokenItem.from_item(raw)
        # The key lookup already matched; the constant-time compare is belt and braces.
        if not hmac.compare_digest(item.secret_hash, secret_hash):
            return None
        return item if item.is_active(now or datetime.now(UTC)) else None

    def list_for_org(self, org: str, *, limit: int = 50, next_token: str | None = None) -> Page[TokenItem]:
        """The organisation's tokens, oldest first, one page at a time (gsi1)."""
        try:
            items, cursor = self._gsi1_page(tokens_gsi1pk(org), limit=limit, next_token=next_token)
        except (ClientError, BotoCoreError) as exc:
            raise TokenStoreError("could not list tokens") from exc
        return Page(records=[TokenItem.from_item(item) for item in items], next_token=cursor)

    def get_by_id(self, org: str, token_id: str) -> TokenItem | None:
        """The organisation's token with this id (a Query of the org's tokens), or None."""
        partition = tokens_gsi1pk(org)
        try:
            paginator = self._client.get_paginator("query")
            for page in paginator.paginate(
                TableName=self._table,
                IndexName="gsi1",
                KeyConditionExpression="gsi1pk = :pk",
                FilterExpression="token_id = :id",
                ExpressionAttributeValues={":pk": {"S": partition}, ":id": {"S": token_id}},
            ):
                for raw in page.get("Items", []):
                    return TokenItem.from_item(raw)
        except (ClientError, BotoCoreError) as exc:
            raise TokenStoreError("could not read token") from exc
        return None

    def revoke(self, org: str, token_id: str, *, now: datetime | None = None) -> TokenItem:
        """Revoke the organisation's token ``token_id`` (idempotent); raises TokenNotFoundError."""
        item = self.get_by_id(org, token_id)
        if item is None:
            raise TokenNotFoundError(token_id)
        if item.revoked_at is not None:
            return item
        moment = now or datetime.now(UTC)
        revoked_at = _iso(moment)
        sweep_at = moment + REVOKED_RETENTION
        if item.expires_at is not None:
            sweep_at = min(sweep_at, max(moment, datetime.fromisoformat(item.expires_at)))
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": token_pk(item.secret_hash)}, "sk": {"S": TOKEN_SK}},
                UpdateExpression="SET revoked_at = :revoked, expires_at = :sweep",
                ConditionExpression="attribute_exists(pk) AND org = :org",
                ExpressionAttributeValues={
                    ":revoked": {"S": revoked_at},
                    ":sweep": {"N": str(int(sweep_at.timestamp()))},
                    ":org": {"S": org},
                },
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise TokenNotFoundError(token_id) from exc
            raise TokenStoreError("could not revoke token") from exc
        except BotoCoreError as exc:
            raise TokenStoreError("could not revoke token") from exc
        return item.model_copy(update={"revoked_at": revoked_at})
