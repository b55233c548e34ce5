"""The cold-start baseline: a bare aws-lambda-powertools handler that imports only Logger."""

from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="formica")


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"ok": True}
