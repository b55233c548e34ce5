"""Route logic for API tokens: create (the secret shown once), list (no secrets), revoke."""

from __future__ import annotations

from formica.api.models import CreatedTokenResponse, CreateTokenRequest, TokenListResponse, TokenResponse
from formica.api.services import ApiServices
from formica.store.tokens import TokenItem


def token_response(item: TokenItem) -> TokenResponse:
    return TokenResponse(
        id=item.token_id,
        name=item.name,
        org=item.org,
        created_at=item.created_at,
        expires_at=item.expires_at,
        revoked_at=item.revoked_at,
    )


def create_token(services: ApiServices, org: str, request: CreateTokenRequest) -> CreatedTokenResponse:
    item, secret = services.tokens.create(org, request.name, expires_in_days=request.expires_in_days)
    return CreatedTokenResponse(**token_response(item).model_dump(), token=secret)


def list_tokens(services: ApiServices, org: str, *, limit: int, next_token: str | None) -> TokenListResponse:
    page = services.tokens.list_for_org(org, limit=limit, next_token=next_token)
    return TokenListResponse(
        records=[token_response(item) for item in page.records], next_token=page.next_token
    )


def revoke_token(services: ApiServices, org: str, token_id: str) -> TokenResponse:
    return token_response(services.tokens.revoke(org, token_id))
