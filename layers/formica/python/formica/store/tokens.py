"""API tokens: opaque random secrets, of which only the sha256 is stored.

Item (docs/architecture.md): ``pk=TOKEN#{sha256(secret)}``, ``sk=TOKEN``,
``gsi1pk=ORG#{org}#TOKENS``, ``gsi1sk={created_at}#{token_id}``, and the token's ``scopes`` (a
string set; an item written before scopes existed has none and is read as ``admin``). The TTL
attribute ``expires_at`` lets DynamoDB sweep expired tokens; since that sweep may lag by days,
expiry is also checked on every use. A revoked token stays readable (for listings) until its TTL
removes it.

A token's name is unique in its organisation: a second item ``pk=ORG#{org}#TOKNAME#{name}``,
``sk=TOKNAME`` is written in the same transaction as the token, on the condition that no live one
exists, and carries the token's ``expires_at`` so the name is freed when the token is swept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from formica.jobs.limits import NAME_RULE, is_name, shown
from formica.store.dynamo import DynamoTable, error_code, is_conditional_failure
from formica.store.pagination import Page
from formica.store.schema import token_pk

TOKEN_PREFIX = "fmc_"  # noqa: S105 - a public prefix, not a secret
TOKEN_SK = "TOKEN"  # noqa: S105 - a sort-key value
TOKEN_NAME_SK = "TOKNAME"  # noqa: S105 - a sort-key value
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256
TOKEN_NAME_MAX_CHARS = 100
"""A token's name (an attribute of its item; the API and ``formica tokens create`` both check it)."""
# A revoked token without expiry is kept this long for the listing, then swept by TTL.
REVOKED_RETENTION = timedelta(days=30)


class TokenScope(StrEnum):
    """What a token may do (formicary's roles, made concrete). ``admin`` holds every other scope."""

    READ = "read"
    SUBMIT = "submit"
    APPROVE = "approve"
    ADMIN = "admin"
    WORKER = "worker"


LEGACY_SCOPES: tuple[TokenScope, ...] = (TokenScope.ADMIN,)
"""The scopes of a token stored before scopes existed: it could do everything, and still can."""


def held_scopes(scopes: Iterable[str]) -> frozenset[TokenScope]:
    """Every scope these grant: ``admin`` grants all of them; unknown names grant nothing."""
    known = {TokenScope(scope) for scope in scopes if scope in TokenScope.__members__.values()}
    return frozenset(TokenScope) if TokenScope.ADMIN in known else frozenset(known)


def ordered_scopes(scopes: Iterable[str]) -> tuple[TokenScope, ...]:
    """Known scopes without repeats, in the order of ``TokenScope``; ValueError for an unknown one."""
    wanted = set(scopes)
    unknown = sorted(wanted - set(TokenScope.__members__.values()))
    if unknown:
        choices = ", ".join(TokenScope)
        raise ValueError(f"unknown scope {shown(unknown[0])}: use {choices}")
    return tuple(scope for scope in TokenScope if scope in wanted)


class TokenStoreError(RuntimeError):
    """DynamoDB refused or could not be reached while reading or writing tokens."""


class TokenNameTakenError(TokenStoreError):
    """The organisation already has a live token of this name."""

    def __init__(self, org: str, name: str) -> None:
        super().__init__(f"organisation {org!r} already has a token named {name!r}")
        self.org = org
        self.name = name


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


def token_name_pk(org: str, name: str) -> str:
    # The name is the last segment and an organisation holds no '#': no name reaches another key.
    return f"ORG#{org}#TOKNAME#{name}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class TokenItem(BaseModel):
    """A stored token: everything but the secret."""

    token_id: str
    org: str
    name: str
    secret_hash: str
    created_at: str
    scopes: tuple[TokenScope, ...] = LEGACY_SCOPES
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
            "scopes": {"SS": [str(scope) for scope in self.scopes]},
            "created_at": {"S": self.created_at},
        }
        if self.expires_at is not None:
            item["expires_at_iso"] = {"S": self.expires_at}
            item["expires_at"] = {"N": str(int(datetime.fromisoformat(self.expires_at).timestamp()))}
        return item

    def name_item(self) -> dict[str, Any]:
        """The item that reserves the token's name in its organisation (swept with the token)."""
        item: dict[str, Any] = {
            "pk": {"S": token_name_pk(self.org, self.name)},
            "sk": {"S": TOKEN_NAME_SK},
            "kind": {"S": "TOKEN_NAME"},
            "token_id": {"S": self.token_id},
            "org": {"S": self.org},
        }
        if self.expires_at is not None:
            item["expires_at"] = {"N": str(int(datetime.fromisoformat(self.expires_at).timestamp()))}
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> TokenItem:
        return cls(
            token_id=item["token_id"]["S"],
            org=item["org"]["S"],
            name=item["name"]["S"],
            # An item written before scopes existed: its token did everything, so it is admin.
            # A scope this version does not know (written by a newer one) grants nothing here.
            scopes=(
                tuple(scope for scope in TokenScope if scope in item["scopes"]["SS"])
                if "scopes" in item
                else LEGACY_SCOPES
            ),
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
        scopes: Iterable[str] = LEGACY_SCOPES,
        expires_in_days: int | None = None,
        secret: str | None = None,
        now: datetime | None = None,
    ) -> tuple[TokenItem, str]:
        """Store a new token for ``org``; returns (item, secret). The secret is never stored.

        Parameters
        ----------
        org
            The organisation (the name rule of ``formica.jobs.limits``: it is part of keys).
        name
            Unique among the organisation's live tokens (1 to ``TOKEN_NAME_MAX_CHARS`` characters).
        scopes
            What the token may do (at least one ``TokenScope``); by default ``admin``, an
            organisation's first token. Whether the caller may grant them is the API's check.
        expires_in_days
            Days until the token stops working; by default it never expires.
        secret
            The token's text (``formica dev --token``); by default a fresh one is drawn.
        now
            The clock.

        Raises
        ------
        ValueError
            An invalid organisation, name, scope, expiry or secret.
        TokenNameTakenError
            A live token of the organisation already has this name.
        TokenStoreError
            DynamoDB refused or could not be reached.
        """
        if not is_name(org):
            raise ValueError(f"organisation {shown(org)} is not a valid name: use {NAME_RULE}")
        if not 1 <= len(name) <= TOKEN_NAME_MAX_CHARS:
            raise ValueError(f"a token name has 1 to {TOKEN_NAME_MAX_CHARS} characters, not {len(name)}")
        granted = ordered_scopes(scopes)
        if not granted:
            raise ValueError("a token needs at least one scope")
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
            scopes=granted,
            secret_hash=hash_secret(secret),
            created_at=_iso(moment),
            expires_at=expires_at,
        )
        token_put = {
            "Put": {
                "TableName": self._table,
                "Item": item.to_item(),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        # A name item whose token has expired may outlive it until TTL sweeps it: it frees the name.
        name_put = {
            "Put": {
                "TableName": self._table,
                "Item": item.name_item(),
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                "ExpressionAttributeValues": {":now": {"N": str(int(moment.timestamp()))}},
            }
        }
        try:
            self._client.transact_write_items(TransactItems=[token_put, name_put])
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                reasons = [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons") or []]
                if reasons[1:2] == ["ConditionalCheckFailed"]:
                    raise TokenNameTakenError(org, name) from exc
                if reasons[:1] == ["ConditionalCheckFailed"]:
                    raise ValueError("this token text is already in use") from exc
            raise TokenStoreError(f"could not store token: {error_code(exc)}") from exc
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
        sweep = {"N": str(int(sweep_at.timestamp()))}
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": token_pk(item.secret_hash)}, "sk": {"S": TOKEN_SK}},
                UpdateExpression="SET revoked_at = :revoked, expires_at = :sweep",
                ConditionExpression="attribute_exists(pk) AND org = :org",
                ExpressionAttributeValues={
                    ":revoked": {"S": revoked_at},
                    ":sweep": sweep,
                    ":org": {"S": org},
                },
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                raise TokenNotFoundError(token_id) from exc
            raise TokenStoreError("could not revoke token") from exc
        except BotoCoreError as exc:
            raise TokenStoreError("could not revoke token") from exc
        self._release_name(item, sweep)
        return item.model_copy(update={"revoked_at": revoked_at})

    def _release_name(self, item: TokenItem, sweep: dict[str, str]) -> None:
        """Free a revoked token's name when the token itself is swept (it stays listed until then)."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": token_name_pk(item.org, item.name)}, "sk": {"S": TOKEN_NAME_SK}},
                UpdateExpression="SET expires_at = :sweep",
                # Only this token's own reservation: a token older than name items has none.
                ConditionExpression="token_id = :id",
                ExpressionAttributeValues={":sweep": sweep, ":id": {"S": item.token_id}},
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise TokenStoreError("could not release the token's name") from exc
        except BotoCoreError as exc:
            raise TokenStoreError("could not release the token's name") from exc
