"""The cold-start floor of a Formica task handler: what any thin handler of this design must import.

Logger and Tracer (the handlers' decorators), boto3 (DynamoDB on every invocation; no client is
made here) and pydantic (the event model). What a real handler imports beyond this is what lazy
imports could at most take off its cold start.
"""

from typing import Any

import boto3  # noqa: F401 (imported for its cost, as every handler's first DynamoDB call needs it)
from aws_lambda_powertools import Logger, Tracer
from pydantic import BaseModel

logger = Logger(service="formica")
tracer = Tracer(service="formica")


class Event(BaseModel):
    request_id: str
    step: int = 0


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return Event.model_validate(event).model_dump()
