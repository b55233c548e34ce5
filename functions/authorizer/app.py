"""The REQUEST authorizer Lambda: ``Authorization: Bearer <token>`` -> Allow or 401.

The Allow carries {org, token_id, token_name} as its context (``formica.api.auth.Principal``).

API Gateway caches the answer per Authorization header for
``formica.api.auth.AUTHORIZER_CACHE_TTL_SECONDS`` (30 s): a revoked token stops working within that.
Raising "Unauthorized" is API Gateway's contract for 401. The token is never logged.
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.api.auth import GatewayUnauthorizedError, authorizer_response
from formica.api.errors import UnauthorizedError
from formica.runtime.metrics import handler_metrics

logger = Logger(service="formica")
metrics = handler_metrics()


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.thread_safe_append_keys(correlation_id=context.aws_request_id)
    request = APIGatewayAuthorizerRequestEvent(event)
    try:
        return authorizer_response(request.method_arn, request.headers.get("Authorization"))
    except UnauthorizedError as exc:
        logger.info("request refused", reason=exc.message, path=request.path)
        raise GatewayUnauthorizedError from None
