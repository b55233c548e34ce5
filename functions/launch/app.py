"""Launch (``lambda:invoke.waitForTaskToken``): records the task token, claims the container attempt
and starts it on the configured container runtime; the runner answers the token when it stops."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime import LaunchEvent, get_runtime, launch_container, metered
from formica.runtime.metrics import handler_metrics

logger = Logger(service="formica")
metrics = handler_metrics()
tracer = Tracer(service="formica")


@metered("launch")
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    launch = LaunchEvent.model_validate(event)
    logger.thread_safe_append_keys(
        correlation_id=context.aws_request_id, request_id=launch.request_id, step=launch.step
    )
    return launch_container(launch, get_runtime())
