"""Who is calling: a Bearer token in, a ``Principal`` (organisation, token id, name, scopes) out.

In AWS the REQUEST authorizer (functions/authorizer) runs ``authorize`` and hands the principal to
the API Lambda in ``requestContext.authorizer`` under the keys below; the API Lambda reads them with
``principal_from_authorizer_context``. The secret itself never reaches the API Lambda's code paths
beyond the header API Gateway forwards, and is never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from formica.api.errors import ForbiddenError, UnauthorizedError
from formica.store.tokens import LEGACY_SCOPES, TokenRepository, TokenScope, held_scopes

# requestContext.authorizer keys (contract between the authorizer, API Gateway and the API Lambda).
CONTEXT_ORG = "org"
CONTEXT_TOKEN_ID = "token_id"  # noqa: S105 - a context key name
CONTEXT_TOKEN_NAME = "token_name"  # noqa: S105 - a context key name
CONTEXT_SCOPES = "scopes"  # the token's scopes, comma-separated (context values are strings)

# API Gateway caches an Allow per Authorization header for this long: a revoked token keeps working
# at most this many seconds. 30 s keeps revocation well inside a minute and saves most lookups.
AUTHORIZER_CACHE_TTL_SECONDS = 30

BEARER = "bearer"

# The scope each route needs, by (method, route as functions/api/app.py declares it); None: public,
# no token at all. The API Lambda refuses (500) a route missing here, and a test lists every route
# of the app against this table: a new route names its scope here or fails the build.
ROUTE_SCOPES: dict[tuple[str, str], TokenScope | None] = {
    ("GET", "/api/health"): None,
    ("GET", "/api/openapi.json"): None,
    ("GET", "/api/docs"): None,
    ("POST", "/api/grants"): None,  # the body's capability is the credential
    ("POST", "/api/triggers/<org>/<job_type>/<name>"): None,  # the webhook's signature is the credential
    ("GET", "/api/jobs/definitions/<job_type>/triggers/dropped"): TokenScope.READ,
    ("GET", "/"): None,  # the dashboard's page and files: no data, the page calls the API with its token
    ("GET", "/ui/<name>"): None,
    ("POST", "/api/jobs/definitions"): TokenScope.ADMIN,
    ("GET", "/api/jobs/definitions"): TokenScope.READ,
    ("GET", "/api/jobs/definitions/<job_type>"): TokenScope.READ,
    ("GET", "/api/jobs/definitions/<job_type>/yaml"): TokenScope.READ,
    ("GET", "/api/jobs/definitions/<job_type>/graph"): TokenScope.READ,
    ("GET", "/api/jobs/definitions/<job_type>/versions"): TokenScope.READ,
    ("DELETE", "/api/jobs/definitions/<job_type>"): TokenScope.ADMIN,
    ("POST", "/api/jobs/definitions/<job_type>/disable"): TokenScope.ADMIN,
    ("POST", "/api/jobs/definitions/<job_type>/enable"): TokenScope.ADMIN,
    ("PUT", "/api/jobs/definitions/<job_type>/concurrency"): TokenScope.ADMIN,
    ("POST", "/api/jobs/requests"): TokenScope.SUBMIT,
    ("POST", "/jobs/requests"): TokenScope.SUBMIT,
    ("GET", "/api/jobs/requests"): TokenScope.READ,
    ("GET", "/api/jobs/requests/<request_id>"): TokenScope.READ,
    ("POST", "/api/jobs/requests/<request_id>/cancel"): TokenScope.SUBMIT,
    ("POST", "/api/jobs/requests/<request_id>/restart"): TokenScope.SUBMIT,
    ("POST", "/api/jobs/requests/<request_id>/resume"): TokenScope.SUBMIT,
    ("POST", "/api/jobs/requests/<request_id>/trigger"): TokenScope.SUBMIT,
    ("GET", "/api/jobs/requests/<request_id>/graph"): TokenScope.READ,
    ("GET", "/api/jobs/requests/<request_id>/artifacts"): TokenScope.READ,
    ("GET", "/api/jobs/requests/<request_id>/artifacts/<artifact_id>/download"): TokenScope.READ,
    ("GET", "/api/jobs/requests/<request_id>/artifacts/<artifact_id>/link"): TokenScope.READ,
    ("GET", "/api/jobs/requests/<request_id>/tasks/<task_type>/logs"): TokenScope.READ,
    ("GET", "/api/jobs/requests/<request_id>/webhooks"): TokenScope.READ,
    ("GET", "/api/webhooks/secret"): TokenScope.ADMIN,
    ("POST", "/api/jobs/requests/<request_id>/tasks/<task_type>/approve"): TokenScope.APPROVE,
    ("POST", "/api/jobs/requests/<request_id>/tasks/<task_type>/reject"): TokenScope.APPROVE,
    ("GET", "/api/approvals/pending"): TokenScope.READ,
    ("POST", "/api/workers/poll"): TokenScope.WORKER,
    ("POST", "/api/workers/heartbeat"): TokenScope.WORKER,
    ("POST", "/api/workers/report"): TokenScope.WORKER,
    ("GET", "/api/jobs/stats"): TokenScope.READ,
    ("GET", "/api/audits"): TokenScope.ADMIN,
    ("POST", "/api/auth/tokens"): TokenScope.ADMIN,
    ("GET", "/api/auth/tokens"): TokenScope.ADMIN,
    ("DELETE", "/api/auth/tokens/<token_id>"): TokenScope.ADMIN,
    ("GET", "/api/orgs/<org>/configs"): TokenScope.READ,
    ("POST", "/api/orgs/<org>/configs"): TokenScope.ADMIN,
    ("GET", "/api/orgs/<org>/configs/<config_id>"): TokenScope.READ,
    ("PUT", "/api/orgs/<org>/configs/<config_id>"): TokenScope.ADMIN,
    ("DELETE", "/api/orgs/<org>/configs/<config_id>"): TokenScope.ADMIN,
    ("GET", "/api/jobs/definitions/<job_type>/configs"): TokenScope.READ,
    ("POST", "/api/jobs/definitions/<job_type>/configs"): TokenScope.ADMIN,
    ("GET", "/api/jobs/definitions/<job_type>/configs/<config_id>"): TokenScope.READ,
    ("PUT", "/api/jobs/definitions/<job_type>/configs/<config_id>"): TokenScope.ADMIN,
    ("DELETE", "/api/jobs/definitions/<job_type>/configs/<config_id>"): TokenScope.ADMIN,
}


class RouteScopeMissingError(LookupError):
    """A route of the API has no line in ``ROUTE_SCOPES``: a bug, refused rather than let through."""

    def __init__(self, method: str, route: str) -> None:
        super().__init__(f"route {method} {route} has no scope in ROUTE_SCOPES")
        self.method = method
        self.route = route


def route_scope(method: str, route: str) -> TokenScope | None:
    """The scope a route needs (None for a public route); RouteScopeMissingError for an unknown one."""
    key = (method.upper(), route)
    if key not in ROUTE_SCOPES:
        raise RouteScopeMissingError(key[0], route)
    return ROUTE_SCOPES[key]


@dataclass(frozen=True)
class Principal:
    """The caller: the organisation every read and write is scoped to, and the token used (its id;
    its name: who submitted a request, templates' ``UserID``; its scopes: what it may do)."""

    org: str
    token_id: str
    token_name: str = ""
    scopes: tuple[TokenScope, ...] = LEGACY_SCOPES

    @property
    def held(self) -> frozenset[TokenScope]:
        """Every scope the token holds (``admin`` holds them all)."""
        return held_scopes(self.scopes)

    def require(self, scope: TokenScope) -> None:
        """ForbiddenError naming ``scope`` unless the token holds it."""
        if scope not in self.held:
            raise ForbiddenError(f"this token lacks the {scope!s} scope")

    def as_context(self) -> dict[str, str]:
        """The authorizer context API Gateway passes on (string values only)."""
        return {
            CONTEXT_ORG: self.org,
            CONTEXT_TOKEN_ID: self.token_id,
            CONTEXT_TOKEN_NAME: self.token_name,
            CONTEXT_SCOPES: ",".join(self.scopes),
        }


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; UnauthorizedError otherwise."""
    if not authorization:
        raise UnauthorizedError("missing Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != BEARER or not token:
        raise UnauthorizedError("Authorization must be 'Bearer <token>'")
    return token


def authorize(token: str, tokens: TokenRepository | None = None) -> Principal:
    """The principal of an active token; UnauthorizedError for a missing, unknown, expired or revoked one."""
    if tokens is None:
        # Cold start: the authorizer builds no services but the token store.
        from formica.api.services import get_services  # noqa: PLC0415

        tokens = get_services().tokens
    item = tokens.find_active(token)
    if item is None:
        raise UnauthorizedError("missing, unknown, expired or revoked token")
    return Principal(org=item.org, token_id=item.token_id, token_name=item.name, scopes=item.scopes)


def principal_from_authorizer_context(context: Mapping[str, Any] | None) -> Principal:
    """The principal the authorizer put in ``requestContext.authorizer``; UnauthorizedError if absent.

    Only routes behind the authorizer call this, so an absent context means a misconfigured
    gateway: refusing is the safe answer.
    """
    if not context:
        raise UnauthorizedError("no authorized principal on this request")
    org = context.get(CONTEXT_ORG)
    token_id = context.get(CONTEXT_TOKEN_ID)
    if not isinstance(org, str) or not org or not isinstance(token_id, str) or not token_id:
        raise UnauthorizedError("no authorized principal on this request")
    token_name = context.get(CONTEXT_TOKEN_NAME)  # absent from an answer cached before it existed
    return Principal(
        org=org,
        token_id=token_id,
        token_name=token_name if isinstance(token_name, str) else "",
        scopes=_context_scopes(context.get(CONTEXT_SCOPES)),
    )


def _context_scopes(value: Any) -> tuple[TokenScope, ...]:
    # Absent: an answer the authorizer gave (and API Gateway cached, 30 s) before scopes existed,
    # when every token was what is now admin; a token made since was made by an admin. Present:
    # exactly the names it lists that this version knows (an empty string grants nothing).
    if value is None:
        return LEGACY_SCOPES
    names = set(str(value).split(","))
    return tuple(scope for scope in TokenScope if scope in names)


class GatewayUnauthorizedError(Exception):
    """Raised by the authorizer Lambda: API Gateway answers 401 for exactly the message "Unauthorized"."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def authorizer_response(
    method_arn: str, authorization: str | None, tokens: TokenRepository | None = None
) -> dict[str, Any]:
    """The REQUEST authorizer's answer: an Allow on every route of the stage, with the principal as context.

    The policy covers all routes, not just ``method_arn``, because API Gateway caches it per
    Authorization header for ``AUTHORIZER_CACHE_TTL_SECONDS`` and reuses it on other routes.
    Raises ``UnauthorizedError`` for a missing, malformed, unknown, expired or revoked token.
    """
    # Cold start: only the authorizer builds a policy; the API function imports this module too.
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (  # noqa: PLC0415
        APIGatewayAuthorizerResponse,
        parse_api_gateway_arn,
    )

    principal = authorize(bearer_token(authorization), tokens)
    arn = parse_api_gateway_arn(method_arn)
    policy = APIGatewayAuthorizerResponse(
        principal_id=principal.token_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context=principal.as_context(),
        partition=arn.partition,
    )
    policy.allow_all_routes()
    return policy.asdict()
