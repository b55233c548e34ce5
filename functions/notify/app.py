"""The delivery queue (SQS) -> webhooks of lifecycle events, and the retries this function queued.

Each record is handled on its own; a record whose handling raised is reported in
``batchItemFailures`` so SQS delivers it again (after maxReceiveCount, to the dead-letter queue).
"""

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime.notify import handle_message
from formica.runtime.wiring import get_notify_services, get_runtime

logger = Logger(service="formica")


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    logger.thread_safe_append_keys(correlation_id=context.aws_request_id)
    failures: list[dict[str, str]] = []
    for record in event.get("Records", []):
        try:
            handle_message(get_runtime(), get_notify_services(), json.loads(record["body"]))
        except Exception:  # reported to SQS for redelivery (batchItemFailures), never swallowed
            logger.exception("delivery message failed", extra={"message_id": record.get("messageId")})
            failures.append({"itemIdentifier": str(record.get("messageId", ""))})
    return {"batchItemFailures": failures}
