"""What the `formica dev` terminal shows: one readable line per finished job, moto's dumps at debug.

moto's Step Functions interpreter logs every Fail state it enters at ERROR (about a kilobyte of
``Exception=FailureEventException ... at '(StateFail| ...`` per failed or cancelled job), and any
other error of the interpreter the same way; with no logging configured, Python prints those on
stderr. A job that fails is not an error of the server: the console says so in one line, and the
interpreter's records go to the ``formica.local.moto`` logger at DEBUG (shown when the developer
configures logging at that level).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from formica.runtime.deps import Runtime
    from formica.store.requests import JobRequestItem

MOTO_STEPFUNCTIONS_LOGGER = "moto.stepfunctions.parser"
"""The parent of every logger of moto's ASL interpreter (eval_component logs the Fail states)."""
DEBUG_LOGGER = "formica.local.moto"
MESSAGE_MAX_CHARS = 160

logger = logging.getLogger(__name__)


class _AtDebug(logging.Handler):
    """Passes a record on to ``formica.local.moto`` at DEBUG, whatever its level was."""

    def emit(self, record: logging.LogRecord) -> None:
        target = logging.getLogger(DEBUG_LOGGER)
        if target.isEnabledFor(logging.DEBUG):
            target.debug(
                "moto step functions",
                extra={
                    "moto_logger": record.name,
                    "moto_level": record.levelname,
                    "detail": record.getMessage(),
                },
            )


@contextmanager
def moto_interpreter_at_debug() -> Iterator[None]:
    """While active, moto's Step Functions interpreter logs nothing above DEBUG to the console."""
    moto_logger = logging.getLogger(MOTO_STEPFUNCTIONS_LOGGER)
    handler = _AtDebug()
    propagate = moto_logger.propagate
    moto_logger.addHandler(handler)
    moto_logger.propagate = False
    try:
        yield
    finally:
        moto_logger.removeHandler(handler)
        moto_logger.propagate = propagate


def _seconds(started: str | None, ended: str | None) -> str:
    if not started or not ended:
        return "-"
    try:
        delta = datetime.fromisoformat(ended) - datetime.fromisoformat(started)
    except ValueError:
        return "-"
    return f"{max(0.0, delta.total_seconds()):.1f}s"


def finished_job_line(request: JobRequestItem) -> str:
    """One line for a request that reached COMPLETED, FAILED or CANCELLED.

    ``job sensor-job 5c12... FAILED after 3.2s: ERR_TASK_FAILED task second failed with exit code 2``:
    the job type, the request id, the state, the time since it started, and for a job that did not
    complete its error code and the first line of its message (at most ``MESSAGE_MAX_CHARS``).
    """
    line = (
        f"job {request.job_type} {request.request_id} {request.job_state} after "
        f"{_seconds(request.started_at or request.created_at, request.ended_at)}"
    )
    if request.error_code or request.error_message:
        message = (request.error_message or "").strip().splitlines()
        first = message[0] if message else ""
        if len(first) > MESSAGE_MAX_CHARS:
            first = first[: MESSAGE_MAX_CHARS - 3] + "..."
        line += f": {request.error_code or ''} {first}".rstrip()
    return line


@contextmanager
def announce_finished_jobs(write: Callable[[str], Any]) -> Iterator[None]:
    """While active, every request that ends in this process (the walk's final commit, its fatal
    path, a cancel) writes ``finished_job_line`` through ``write``.

    The hook is admission's ``request_finished``, which the runtime calls for every ended request
    (``Runtime.request_ended``); it is looked up when called, so wrapping it here reaches every
    Runtime of the process.
    """
    from formica.runtime import scheduling  # noqa: PLC0415 - formica dev only; keeps local's import light
    from formica.store.requests import RequestStoreError  # noqa: PLC0415 - with the runtime, above

    original = scheduling.request_finished

    def request_finished(runtime: Runtime, request: JobRequestItem, *args: Any, **kwargs: Any) -> Any:
        result = original(runtime, request, *args, **kwargs)
        try:
            ended = runtime.requests.get(request.request_id) or request
        except RequestStoreError as exc:  # a console line never fails the walk's commit
            logger.debug(
                "finished job not announced", extra={"request_id": request.request_id, "error": str(exc)}
            )
            return result
        if ended.is_final:
            write(finished_job_line(ended))
        return result

    scheduling.request_finished = request_finished
    try:
        yield
    finally:
        scheduling.request_finished = original
