"""Advance: records the reported attempt (a failed task Lambda's error, a container attempt that
timed out or whose completion could not commit) and decides the next action; as Begin (an execution
started without its first decision) it starts or resumes the walk; with ``fatal`` it marks the
request FAILED. Returns the flat decision the state machine's Choice reads."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime import AdvanceEvent, advance, get_runtime, metered
from formica.runtime.metrics import handler_metrics

logger = Logger(service="formica")
metrics = handler_metrics()
tracer = Tracer(service="formica")


@metered("advance")
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = AdvanceEvent.model_validate(event)
    logger.thread_safe_append_keys(
        correlation_id=context.aws_request_id, request_id=request.request_id, step=request.step
    )
    return advance(request.model_dump(), get_runtime())
