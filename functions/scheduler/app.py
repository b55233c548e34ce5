"""The scheduler function: the minute sweep (EventBridge rule, a "Scheduled Event") starts PENDING
requests that are due and have a free slot; a cron fire (EventBridge Scheduler, input from
formica.store.schedules) submits the job's request for that slot, once."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime import get_runtime, handle_event
from formica.runtime.metrics import handler_metrics

logger = Logger(service="formica")
metrics = handler_metrics()


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.thread_safe_append_keys(
        correlation_id=context.aws_request_id,
        job_type=event.get("job_type"),
        scheduled_time=event.get("scheduled_time"),
    )
    return handle_event(event, get_runtime())
