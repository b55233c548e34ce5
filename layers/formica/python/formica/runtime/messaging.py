"""MESSAGING tasks (formicary's ``messaging_request_queue`` / ``messaging_reply_queue``): the task's
request goes to a queue, the walk waits on Launch's task token, and the reply carrying the same
correlation id answers it.

- ``send_request`` (Launch, for an AWAIT_MESSAGE decision; the attempt is claimed): renders the task,
  resolves both queues to the organisation's SQS queues (``store.messages.message_queue_name``;
  Formica's own are created on first use and, in AWS, the reply consumer is subscribed to the reply
  queue), records the wait (``MSG#{step}``: reply queue and correlation id) and sends formicary's task
  request JSON with ``correlation_id`` (the attempt's identity, ``{request_id}:{step}``; the task
  token never leaves the table).
- ``handle_reply`` (the messaging_reply function, and `formica dev`'s poller): a reply is counted
  for the attempt its correlation id names only when it arrived on that attempt's reply queue and
  the attempt still waits; the conditional WAITING -> ANSWERED makes one reply count. Its
  ``exit_code`` (else ``status``) routes the walk; ``task_context`` becomes the task's outputs;
  the request and the reply are the attempt's log. A malformed or unmatched reply is dropped with a
  warning, never raised.

A reply that never comes: the state's timeout (the task's deadline plus a grace) ends the attempt
ERR_TASK_TIMED_OUT, and a reply arriving later finds the walk moved on.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from formica.engine.walk import AttemptResult
from formica.jobs.errors import DefinitionError
from formica.jobs.models import RunnerKind, TaskDefinition
from formica.jobs.validation import messaging_queue_problem
from formica.runners.base import TaskOutcome
from formica.runtime.completion import complete_container_attempt
from formica.runtime.deps import Runtime
from formica.runtime.walker import ERR_INVALID_DEFINITION, Walker
from formica.store.messages import (
    LambdaReplySubscriptions,
    MessageStoreError,
    MessageWait,
    MessageWaitRepository,
    ReplySubscriptions,
    SqsMessageQueues,
    message_queue_name,
    owns_queue,
    parse_granted_queues,
)
from formica.store.requests import JobRequestItem
from formica.store.work_queues import WorkQueueError

logger = logging.getLogger(__name__)

ERR_MESSAGING_FAILED = "ERR_MESSAGING_FAILED"
"""The request could not be sent (a queue missing or refused), or the reply said FAILED with no code."""
WAIT_MARGIN_SECONDS = 3600
"""A wait item is kept this long past the attempt's timeout (DynamoDB TTL)."""
NANOSECONDS = 1_000_000_000


@dataclass
class MessagingPorts:
    """The queues, waits and subscriptions MESSAGING tasks use (built from the settings by default)."""

    queues: SqsMessageQueues
    waits: MessageWaitRepository
    subscriptions: ReplySubscriptions | None


_PORTS: MessagingPorts | None = None
_IN_PROCESS_SUBSCRIPTIONS: ReplySubscriptions | None = None


def messaging_ports(runtime: Runtime) -> MessagingPorts:
    """The process's MESSAGING ports (no client is built until one is used). Reply queues are
    subscribed to the reply function where the settings name it (AWS), else to the in-process
    consumer `formica dev` installed (``use_in_process_subscriptions``), else to nothing."""
    global _PORTS  # noqa: PLW0603 - one set per process, like the runtime's own cache
    if _PORTS is None or _PORTS.waits.table_name != runtime.settings.table_name:
        function_arn = runtime.settings.messaging_reply_function_arn
        _PORTS = MessagingPorts(
            queues=SqsMessageQueues(),
            waits=MessageWaitRepository(runtime.settings.table_name),
            subscriptions=LambdaReplySubscriptions(function_arn)
            if function_arn
            else _IN_PROCESS_SUBSCRIPTIONS,
        )
    return _PORTS


def use_in_process_subscriptions(subscriptions: ReplySubscriptions | None) -> None:
    """Subscribe reply queues to ``subscriptions`` (`formica dev`'s poller; None: stop)."""
    global _IN_PROCESS_SUBSCRIPTIONS  # noqa: PLW0603 - the process's consumer, like its ports
    _IN_PROCESS_SUBSCRIPTIONS = subscriptions
    reset_messaging_ports()


def reset_messaging_ports() -> None:
    """Forget the process's MESSAGING ports (tests that switch moto instances)."""
    global _PORTS  # noqa: PLW0603
    _PORTS = None


def correlation_id(request_id: str, step: int) -> str:
    """The attempt's identity as its request and reply carry it."""
    return f"{request_id}:{step}"


def _attempt_of(correlation: str) -> tuple[str, int] | None:
    request_id, _, step = correlation.rpartition(":")
    if not request_id or not step.isascii() or not step.isdigit():
        return None
    return request_id, int(step)


def _queues(runtime: Runtime, org: str, task: TaskDefinition) -> tuple[str, str]:
    """The task's request and reply queues in SQS, after rendering.

    Raises
    ------
    DefinitionError
        A rendered queue name is missing or not a queue name (the message names the field).
    """
    granted = parse_granted_queues(runtime.settings.messaging_granted_queues)
    names: list[str] = []
    for field in ("messaging_request_queue", "messaging_reply_queue"):
        value = getattr(task, field)
        reason = messaging_queue_problem(field, value) or (
            f"{field} {value!r} is not a queue name" if "{{" in value else None
        )
        if reason:
            raise DefinitionError(f'task "{task.task_type}": {reason}')
        names.append(message_queue_name(org, value, granted))
    return names[0], names[1]


def task_request(
    request: JobRequestItem,
    task: TaskDefinition,
    step: int,
    *,
    variables: dict[str, Any],
    timeout: float,
    reply: str,
) -> dict[str, Any]:
    """formicary's task request JSON (its ``types.TaskRequest``) for the attempt of ``step``, with
    ``correlation_id`` added; ``timeout`` in nanoseconds as Go's ``time.Duration`` marshals."""
    current = request.walk.current
    return {
        "correlation_id": correlation_id(request.request_id, step),
        "user_id": request.user_id,
        "organization_id": request.org,
        "job_request_id": request.request_id,
        "job_type": request.job_type,
        "job_type_version": str(request.job_version),
        "job_execution_id": request.execution_name or request.request_id,
        "task_execution_id": f"{request.request_id}-{task.task_type}",
        "task_type": task.task_type,
        "response_topic": reply,
        "action": "EXECUTE",
        "retry": current.task_retry if current is not None else 0,
        "allow_failure": task.allow_failure,
        "tags": list(task.tags),
        "before_script": list(task.before_script),
        "script": list(task.script),
        "after_script": list(task.after_script),
        "timeout": int(max(timeout, 0) * NANOSECONDS),
        "variables": variables,
        "executor_opts": {
            "method": "MESSAGING",
            "messaging_request_queue": task.messaging_request_queue,
            "messaging_reply_queue": task.messaging_reply_queue,
        },
    }


def send_request(runtime: Runtime, request: JobRequestItem, step: int) -> dict[str, Any]:
    """Launch's part for an AWAIT_MESSAGE decision (the attempt is claimed): send the task's request
    and record the wait. A definition that cannot render, or a queue that cannot be used, ends the
    attempt at once with the reason (ERR_INVALID_DEFINITION, ERR_MESSAGING_FAILED)."""
    current = request.walk.current
    assert current is not None  # noqa: S101 - checked by launch_container
    walker = Walker(runtime)
    now = runtime.now()
    try:
        definition = walker.render(
            request, task_type=current.task_type, task_retry=current.task_retry, now=now
        )
        task = definition.task(current.task_type)
        request_queue, reply_queue = _queues(runtime, request.org, task)
    except DefinitionError as exc:
        failed = AttemptResult(error_code=ERR_INVALID_DEFINITION, error_message=str(exc))
        complete_container_attempt(runtime, request.request_id, step, failed)
        return {"request_id": request.request_id, "step": step, "launched": True}
    ctx = walker.context(request, step, now)
    masker = walker.attempt_configs(request).masker
    variables = {
        name: masker.mask(value) if masker and isinstance(value, str) else value
        for name, value in ctx.params.items()
    }
    body = task_request(
        request, task, step, variables=variables, timeout=ctx.timeout_seconds, reply=reply_queue
    )
    ports = messaging_ports(runtime)
    try:
        ports.queues.ensure(reply_queue, create=owns_queue(reply_queue))
        if ports.subscriptions is not None:
            ports.subscriptions.subscribe(ports.queues.queue_arn(reply_queue))
        ports.queues.ensure(request_queue, create=owns_queue(request_queue))
        expires = int(now.timestamp()) + math.ceil(max(ctx.timeout_seconds, 0)) + WAIT_MARGIN_SECONDS
        wait = MessageWait(
            org=request.org,
            request_id=request.request_id,
            step=step,
            reply_queue=reply_queue,
            correlation_id=body["correlation_id"],
        )
        if ports.waits.wait(wait, expires_at=expires):
            ports.queues.send(request_queue, body)
    except (MessageStoreError, WorkQueueError) as exc:
        logger.warning(
            "messaging request not sent",
            extra={"request_id": request.request_id, "step": step, "error": str(exc)},
        )
        message = f'task "{task.task_type}": the request could not be sent to {request_queue}: {exc}'
        failed = AttemptResult(error_code=ERR_MESSAGING_FAILED, error_message=message[:1000])
        complete_container_attempt(runtime, request.request_id, step, failed)
        return {"request_id": request.request_id, "step": step, "launched": True}
    logger.info("messaging request sent", extra={"request_id": request.request_id, "step": step})
    return {"request_id": request.request_id, "step": step, "launched": True, "queue": request_queue}


class MessagingReply(BaseModel):
    """formicary's task response (``types.TaskResponse``), the fields Formica reads, plus the
    correlation id of the request it answers."""

    model_config = ConfigDict(extra="ignore")

    correlation_id: str
    exit_code: str | int | None = None
    status: str | None = None
    exit_message: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    task_context: dict[str, Any] = {}


def reply_result(reply: MessagingReply) -> TaskOutcome:
    """The attempt's outcome: the reply's exit code routes (on_exit_code); without one, ``status``
    FAILED fails the task with the reply's error code (ERR_MESSAGING_FAILED when it has none) and
    anything else completes it (exit code 0)."""
    message = reply.error_message or reply.exit_message or None
    outputs = {
        str(name): value if isinstance(value, str) else json.dumps(value)
        for name, value in reply.task_context.items()
    }
    code = str(reply.exit_code).strip() if reply.exit_code is not None else ""
    if code:
        error = reply.error_code if (reply.status or "").upper() == "FAILED" else None
        return TaskOutcome(exit_code=code, error_code=error, error_message=message, outputs=outputs)
    if (reply.status or "").upper() == "FAILED":
        return TaskOutcome(
            error_code=reply.error_code or ERR_MESSAGING_FAILED,
            error_message=message or "the reply's status is FAILED",
            outputs=outputs,
        )
    return TaskOutcome(exit_code="0", error_message=message, outputs=outputs)


def _drop(reason: str, queue: str, **extra: Any) -> str:
    logger.warning("messaging reply dropped", extra={"reason": reason, "queue": queue, **extra})
    return "dropped"


def handle_reply(runtime: Runtime, queue: str, body: str) -> str:
    """Count one reply that arrived on ``queue`` (its SQS name); returns ``answered``, ``dropped``
    (malformed, unmatched or already answered) or ``late`` (the walk moved on). Never raises for
    what a replier wrote; a store failure raises (the message is retried)."""
    try:
        reply = MessagingReply.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        return _drop("not a reply with a correlation_id", queue)
    attempt = _attempt_of(reply.correlation_id)
    if attempt is None:
        return _drop("unknown correlation id", queue)
    request_id, step = attempt
    ports = messaging_ports(runtime)
    wait = ports.waits.get(request_id, step)
    if wait is None or wait.reply_queue != queue or wait.correlation_id != reply.correlation_id:
        return _drop("no attempt waits for this reply on this queue", queue)
    request = runtime.requests.get(request_id)
    if request is None or request.org != wait.org:
        return _drop("no attempt waits for this reply on this queue", queue)
    current = request.walk.current
    if request.is_final or request.step != step or current is None or current.runner != RunnerKind.MESSAGING:
        logger.info("messaging reply after the walk moved on", extra={"request_id": request_id, "step": step})
        return "late"
    if not ports.waits.answer(request_id, step):
        return _drop("the attempt was answered already", queue, request_id=request_id, step=step)
    outcome = reply_result(reply)
    outcome.log = f"request sent; reply received on {queue}:\n{json.dumps(json.loads(body), indent=2)}\n"
    walker = Walker(runtime)
    walker.mask_outcome(request, outcome)
    result = walker.keep_reported_attempt(request, step, current.task_type, outcome)
    if not complete_container_attempt(runtime, request_id, step, result):
        return "late"
    logger.info("messaging reply counted", extra={"request_id": request_id, "step": step})
    return "answered"
