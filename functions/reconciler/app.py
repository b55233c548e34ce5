"""Scheduled (every few minutes): settle container runs whose STOPPED event never came, poll EKS Jobs,
stop containers past their deadline."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime import default_container_service
from formica.runtime.metrics import handler_metrics

logger = Logger(service="formica")
metrics = handler_metrics()


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    logger.thread_safe_append_keys(correlation_id=context.aws_request_id)
    report = default_container_service().reconcile()
    return {"checked": report.checked, "settled": report.settled, "stopped": report.stopped}
