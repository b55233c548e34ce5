"""EventBridge "ECS Task State Change" (STOPPED, this cluster) -> the waiting Launch state's callback.

The rule may deliver an event twice or late; the container service answers each run's token once.
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime import default_container_service, metered
from formica.runtime.metrics import handler_metrics

logger = Logger(service="formica")
metrics = handler_metrics()


@metered("container_events")
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, bool]:
    logger.thread_safe_append_keys(
        correlation_id=context.aws_request_id, task_arn=(event.get("detail") or {}).get("taskArn")
    )
    return {"answered": default_container_service().complete(event)}
