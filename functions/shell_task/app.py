"""ShellTask: runs one attempt of a SHELL task in a fresh working directory (claimed, so never
twice), records it, advances the walk and returns the next decision; or, with ``index``, one
instance of a task fan-out (its own name passed on: the instance's look invokes the next ones here)."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runtime import TaskEvent, get_runtime, metered, run_shell_task
from formica.runtime.metrics import handler_metrics

logger = Logger(service="formica")
metrics = handler_metrics()
tracer = Tracer(service="formica")


@metered("shell_task")
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = TaskEvent.model_validate(event)
    logger.thread_safe_append_keys(
        correlation_id=context.aws_request_id, request_id=task.request_id, step=task.step
    )
    return run_shell_task(
        task,
        get_runtime(),
        time_left_seconds=context.get_remaining_time_in_millis() / 1000,
        function_name=context.function_name,
    )
