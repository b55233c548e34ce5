"""MESSAGING reply queues (SQS) -> the waiting attempts their replies' correlation ids name.

Each record is handled on its own: a malformed or unmatched reply is dropped (logged), a record
whose handling raised (the table or the walk did not answer) is reported in ``batchItemFailures``
so SQS delivers it again.
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime.messaging import handle_reply
from formica.runtime.wiring import get_runtime

logger = Logger(service="formica")


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    logger.thread_safe_append_keys(correlation_id=context.aws_request_id)
    failures: list[dict[str, str]] = []
    for record in event.get("Records", []):
        queue = str(record.get("eventSourceARN", "")).rpartition(":")[2]
        try:
            handle_reply(get_runtime(), queue, str(record.get("body", "")))
        except Exception:  # reported to SQS for redelivery (batchItemFailures), never swallowed
            logger.exception("messaging reply failed", extra={"message_id": record.get("messageId")})
            failures.append({"itemIdentifier": str(record.get("messageId", ""))})
    return {"batchItemFailures": failures}
