"""An organisation's trigger queue (SQS) -> the queue triggers naming its topic.

Powertools' batch processing: a record whose handling raised (a body that is not JSON, a template
failing on it, the table unreachable) is reported in ``batchItemFailures``, so SQS delivers it again
and, after maxReceiveCount, moves it to the queue's dead-letter queue; the others are done.
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime.triggers import TriggerError, receive_queue_message
from formica.runtime.wiring import get_runtime
from formica.store.triggers import TriggerQueueDirectory

logger = Logger(service="formica")
# A batch whose every record failed is answered like any other (each item reported), not raised.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
queues = TriggerQueueDirectory()


def record_handler(record: SQSRecord) -> None:
    queue = queues.by_arn(record.event_source_arn)
    if queue is None:
        raise TriggerError("the message's queue carries no formica:org and formica:topic tags")
    results = receive_queue_message(get_runtime(), queue.org, queue.topic, record.body)
    logger.info("queue message taken", started=sum(1 for r in results if r.request_id), triggers=len(results))


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
