"""``GET /api/jobs/stats``: an organisation's job statistics per job type and day, over a window.

Answered from the aggregates kept as requests end (``formica.store.stats``: one Query of the
organisation's rows for the window), never by reading requests. A request counts on the day (UTC)
it ended; p50 and p95 are exact to a duration bucket (``formica.engine.stats``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, Field

from formica.api.costs import cost_response
from formica.api.errors import ErrorDetail, ValidationApiError
from formica.api.models import RequestCostResponse
from formica.api.services import ApiServices
from formica.engine.pricing import price_usage
from formica.engine.stats import DURATION_BUCKETS, DayStats, percentile
from formica.store.stats import JobStatsRepository

__all__ = ["JobStatsResponse", "JobTypeStatsResponse", "StatsDayResponse", "job_stats"]

DEFAULT_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 92


class StatsDayResponse(BaseModel):
    """One job type's requests that ended on one day (UTC)."""

    day: str
    counts: dict[str, int] = Field(description="requests that ended, by final state")
    ended: int
    success_rate: float | None = Field(description="COMPLETED / ended; null when none ended")
    p50_seconds: float | None = Field(description="median duration, to the upper bound of its bucket")
    p95_seconds: float | None
    mean_seconds: float | None
    cost_dollars: float = Field(description="the day's requests' cost at list prices")


class JobTypeStatsResponse(StatsDayResponse):
    """One job type over the window: the days' sums, and each day."""

    job_type: str
    day: str = Field(default="", description="empty: the whole window")
    cost: RequestCostResponse
    days: list[StatsDayResponse]


class JobStatsResponse(BaseModel):
    since: str
    until: str
    duration_buckets_seconds: list[float] = Field(
        default_factory=lambda: [float(bound) for bound in DURATION_BUCKETS],
        description="upper bounds of the duration buckets p50 and p95 are read from",
    )
    job_types: list[JobTypeStatsResponse]


def _day(text: str | None, name: str, default: date) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationApiError(
            f"{name} must be a day, YYYY-MM-DD", [ErrorDetail(message="not a day (YYYY-MM-DD)", field=name)]
        ) from None


def _window(since: str | None, until: str | None, today: date) -> tuple[date, date]:
    last = _day(until, "until", today)
    first = _day(since, "since", last - timedelta(days=DEFAULT_WINDOW_DAYS - 1))
    if first > last:
        raise ValidationApiError("since is after until", [ErrorDetail(message="after until", field="since")])
    if (last - first).days + 1 > MAX_WINDOW_DAYS:
        raise ValidationApiError(
            f"the window is at most {MAX_WINDOW_DAYS} days",
            [ErrorDetail(message=f"more than {MAX_WINDOW_DAYS} days before until", field="since")],
        )
    return first, last


def _figures(row: DayStats, region: str) -> dict[str, object]:
    return {
        "counts": row.counts,
        "ended": row.ended,
        "success_rate": row.success_rate,
        "p50_seconds": percentile(row.histogram, 0.5),
        "p95_seconds": percentile(row.histogram, 0.95),
        "mean_seconds": row.mean_seconds,
        "cost_dollars": price_usage(row.usage, region).total,
    }


def job_stats(
    services: ApiServices,
    org: str,
    *,
    job_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    today: date | None = None,
) -> JobStatsResponse:
    """The organisation's statistics per job type (and per day) over ``since`` .. ``until``.

    Parameters
    ----------
    services:
        The API's adapters (the statistics live in the requests' table).
    org:
        The caller's organisation: only its rows are read (their partition key starts with it).
    job_type, since, until:
        Filters: one job type; the first and last day (UTC, ``YYYY-MM-DD``, inclusive; default the
        last 7 days to today; at most 92 days). A bad day or window is VALIDATION_ERROR.
    """
    first, last = _window(since, until, today or datetime.now(UTC).date())
    rows = JobStatsRepository(services.requests.table_name).days(
        org, first.isoformat(), last.isoformat(), job_type=job_type
    )
    by_type: dict[str, list[DayStats]] = {}
    for row in rows:
        by_type.setdefault(row.job_type, []).append(row)
    answers = []
    for name in sorted(by_type):
        days = sorted(by_type[name], key=lambda row: row.day)
        total = DayStats.total(name, days)
        answers.append(
            JobTypeStatsResponse(
                job_type=name,
                **_figures(total, services.region),
                cost=cost_response(total.usage, services.region),
                days=[StatsDayResponse(day=row.day, **_figures(row, services.region)) for row in days],
            )
        )
    return JobStatsResponse(since=first.isoformat(), until=last.isoformat(), job_types=answers)
