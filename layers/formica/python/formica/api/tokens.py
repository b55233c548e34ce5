"""Route logic for API tokens: create (the secret shown once), list (no secrets), revoke."""

from __future__ import annotations

from formica.api.auth import Principal
from formica.api.errors import ForbiddenError
from formica.api.models import CreatedTokenResponse, CreateTokenRequest, TokenListResponse, TokenResponse
from formica.api.services import ApiServices
from formica.store.tokens import TokenItem, TokenScope


def token_response(item: TokenItem) -> TokenResponse:
    return TokenResponse(
        id=item.token_id,
        name=item.name,
        org=item.org,
        scopes=list(item.scopes),
        created_at=item.created_at,
        expires_at=item.expires_at,
        revoked_at=item.revoked_at,
    )


def check_grantable(principal: Principal, scopes: list[TokenScope]) -> None:
    """ForbiddenError naming the first of ``scopes`` the calling token does not hold itself."""
    held = principal.held
    for scope in scopes:
        if scope not in held:
            raise ForbiddenError(f"this token lacks the {scope!s} scope, so it cannot grant it")


def create_token(
    services: ApiServices, principal: Principal, request: CreateTokenRequest
) -> CreatedTokenResponse:
    """A new token of the caller's organisation, with no scope the caller's token lacks.

    Raises ForbiddenError for a wider token, TokenNameTakenError (409) for a name in use.
    """
    check_grantable(principal, request.scopes)
    item, secret = services.tokens.create(
        principal.org, request.name, scopes=request.scopes, expires_in_days=request.expires_in_days
    )
    return CreatedTokenResponse(**token_response(item).model_dump(), token=secret)


def list_tokens(services: ApiServices, org: str, *, limit: int, next_token: str | None) -> TokenListResponse:
    page = services.tokens.list_for_org(org, limit=limit, next_token=next_token)
    return TokenListResponse(
        records=[token_response(item) for item in page.records], next_token=page.next_token
    )


def revoke_token(services: ApiServices, org: str, token_id: str) -> TokenResponse:
    return token_response(services.tokens.revoke(org, token_id))
