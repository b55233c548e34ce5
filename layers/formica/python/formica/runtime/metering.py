"""The walk's Lambda handlers, metered: each invocation's time and AWS requests added to its request.

``@metered("http_task")`` opens a ``store.usage.InvocationMeter`` around the handler. The walk's
commit takes what the meter counted so far into the step's conditional write
(``Walker.step_usage``); whatever the invocation used after that, or without committing (Launch
recording its token, a replayed call), is added when it ends with one more UpdateItem (counted too).
Accounting never fails an invocation: a write that fails is logged and the usage dropped.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from formica.engine.usage import RequestUsage
from formica.runtime.wiring import get_runtime
from formica.store.requests import RequestStoreError
from formica.store.usage import InvocationMeter, metering

logger = logging.getLogger(__name__)

Handler = TypeVar("Handler", bound=Callable[..., Any])

__all__ = ["add_remaining_usage", "metered"]


def add_remaining_usage(meter: InvocationMeter) -> None:
    """Add what ``meter`` still holds to its request (no request known: nothing to add it to)."""
    if meter.request_id is None:
        return
    usage = meter.take().plus(RequestUsage(dynamodb_write_units=1))  # this write itself
    try:
        get_runtime().requests.add_usage(meter.request_id, usage)
    except RequestStoreError as exc:
        logger.warning(
            "invocation usage not recorded", extra={"request_id": meter.request_id, "error": str(exc)}
        )


def metered(function: str) -> Callable[[Handler], Handler]:
    """Decorate the Lambda handler of functions/``function`` so its usage is counted.

    Parameters
    ----------
    function:
        The functions/ folder name (the name the cost answer lists it under).
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            with metering(function) as meter:
                if isinstance(event, dict) and isinstance(event.get("request_id"), str):
                    meter.request_id = event["request_id"]
                try:
                    return handler(event, context)
                finally:
                    add_remaining_usage(meter)

        return run  # type: ignore[return-value]

    return decorate
