"""A request's end counted in its organisation's statistics (``formica.store.stats``)."""

from __future__ import annotations

import logging

from formica.runtime.deps import Runtime
from formica.store.requests import JobRequestItem, RequestStoreError
from formica.store.stats import StatsStoreError

logger = logging.getLogger(__name__)

__all__ = ["record_request_end"]


def record_request_end(runtime: Runtime, request: JobRequestItem) -> None:
    """Count ``request``'s end in its job type's day, once (``JobStatsRepository.record_end``).

    Reads the request as it ended (final state, ``ended_at``, usage with its last step's); nothing
    without ``runtime.stats``. Never raises: a count that fails is logged and missing from the
    statistics, the request is unharmed.
    """
    if runtime.stats is None:
        return
    try:
        ended = runtime.requests.get(request.request_id)
        if ended is not None:
            runtime.stats.record_end(ended)
    except (StatsStoreError, RequestStoreError) as exc:
        logger.warning("request end not counted", extra={"request_id": request.request_id, "error": str(exc)})
