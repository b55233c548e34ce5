"""ShellSandbox: runs one SHELL attempt for the trusted shell-task function, holding no credentials
to Formica's data (its role may write its own logs, nothing else): dependencies in and artifacts out
through the presigned grants it is handed, then every process it left is killed and /tmp emptied."""

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from formica.runners.sandbox import handle

logger = Logger(service="formica")


# log_event=False: the event carries presigned grants, never logged.
@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    context_fields = event.get("context") or {}
    logger.thread_safe_append_keys(
        correlation_id=context.aws_request_id,
        request_id=context_fields.get("request_id"),
        task_type=context_fields.get("task_type"),
    )
    root = os.environ.get("FORMICA_WORK_ROOT")
    return handle(event, work_root=Path(root) if root else None)
