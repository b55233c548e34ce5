"""Job statistics kept as requests end: counts by final state, durations in fixed buckets, usage.

Pure. One ``DayStats`` per (organisation, job type, day of the end, UTC) is added to with atomic
ADDs when a request ends (``formica.store.stats``), so a window's statistics are one Query of at
most a row per job type and day, never a read of every request. Percentiles come from the buckets:
a percentile is the upper bound of the bucket that holds it (the last bucket's lower bound when it
falls in the open-ended one), so p50 and p95 are exact to a bucket, not to the second.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from formica.engine.usage import RequestUsage

__all__ = ["DURATION_BUCKETS", "FINAL_STATES", "DayStats", "bucket_of", "percentile"]

DURATION_BUCKETS: tuple[float, ...] = (
    1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400,
)  # fmt: skip
"""Upper bounds (seconds, inclusive) of the duration buckets; one more bucket holds longer runs."""
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED")


def bucket_of(seconds: float) -> int:
    """The index of the bucket a duration falls in (``len(DURATION_BUCKETS)``: longer than a day)."""
    for index, bound in enumerate(DURATION_BUCKETS):
        if seconds <= bound:
            return index
    return len(DURATION_BUCKETS)


def percentile(histogram: list[int], fraction: float) -> float | None:
    """The ``fraction`` (0.5 for p50) percentile of the durations counted in ``histogram``, in
    seconds: the upper bound of its bucket; None when nothing was counted."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if count and seen >= rank:
            return float(DURATION_BUCKETS[min(index, len(DURATION_BUCKETS) - 1)])
    return float(DURATION_BUCKETS[-1])


def _empty_histogram() -> list[int]:
    return [0] * (len(DURATION_BUCKETS) + 1)


class DayStats(BaseModel):
    """What the requests of one job type that ended on one day add up to (or a sum of such days)."""

    job_type: str
    day: str = ""
    counts: dict[str, int] = Field(default_factory=dict)
    """Requests by final state (COMPLETED, FAILED, CANCELLED)."""
    duration_ms: int = 0
    """Sum of the durations (start to end) of the requests counted in ``histogram``."""
    histogram: list[int] = Field(default_factory=_empty_histogram)
    usage: RequestUsage = Field(default_factory=RequestUsage)

    @property
    def ended(self) -> int:
        return sum(self.counts.values())

    @property
    def success_rate(self) -> float | None:
        """COMPLETED over every request that ended; None when none did."""
        return None if self.ended == 0 else self.counts.get("COMPLETED", 0) / self.ended

    @property
    def mean_seconds(self) -> float | None:
        timed = sum(self.histogram)
        return None if timed == 0 else self.duration_ms / timed / 1000

    def plus(self, other: DayStats) -> DayStats:
        """The sum of two rows (``day`` kept when both are the same day, else cleared)."""
        counts = dict(self.counts)
        for state, count in other.counts.items():
            counts[state] = counts.get(state, 0) + count
        return DayStats(
            job_type=self.job_type,
            day=self.day if self.day == other.day else "",
            counts=counts,
            duration_ms=self.duration_ms + other.duration_ms,
            histogram=[a + b for a, b in zip(self.histogram, other.histogram, strict=True)],
            usage=self.usage.plus(other.usage),
        )

    @classmethod
    def total(cls, job_type: str, rows: Iterable[DayStats]) -> DayStats:
        result = cls(job_type=job_type)
        for row in rows:
            result = result.plus(row)
        return result
