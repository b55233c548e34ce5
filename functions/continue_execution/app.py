"""ContinueAsNew: starts the request's next execution (named, so a retry starts nothing twice);
the calling execution then ends and the walk goes on in the new one."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime import ContinueEvent, continue_execution, get_runtime, metered
from formica.runtime.metrics import handler_metrics

logger = Logger(service="formica")
metrics = handler_metrics()
tracer = Tracer(service="formica")


@metered("continue_execution")
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ContinueEvent.model_validate(event)
    logger.thread_safe_append_keys(
        correlation_id=context.aws_request_id, request_id=request.request_id, step=request.step
    )
    return continue_execution(request, get_runtime())
