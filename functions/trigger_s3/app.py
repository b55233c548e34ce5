"""S3 object-created events (EventBridge -> the S3 events queue) -> the s3 triggers of the
organisations the bucket is granted to.

Each SQS record's body is one EventBridge event; only "Object Created" starts anything. Powertools'
batch processing reports a record whose handling raised in ``batchItemFailures`` (redelivered, then
moved to the dead-letter queue).
"""

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime.triggers import granted_orgs, receive_s3_event
from formica.runtime.wiring import get_runtime

logger = Logger(service="formica")
# A batch whose every record failed is answered like any other (each item reported), not raised.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    event = json.loads(record.body)
    bucket = str(event.get("detail", {}).get("bucket", {}).get("name", ""))
    runtime = get_runtime()
    results = receive_s3_event(runtime, event, granted_orgs(runtime, bucket))
    logger.info("s3 event taken", started=sum(1 for r in results if r.request_id), triggers=len(results))


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
