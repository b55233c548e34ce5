"""Durations in fixed buckets, and percentiles read from them."""

from __future__ import annotations

from formica.engine.stats import DURATION_BUCKETS, DayStats, bucket_of, percentile


def test_a_duration_falls_in_the_first_bucket_whose_bound_holds_it() -> None:
    assert [bucket_of(s) for s in (0, 1, 1.001, 5, 86_400)] == [0, 0, 1, 2, len(DURATION_BUCKETS) - 1]
    assert bucket_of(86_401) == len(DURATION_BUCKETS)


def test_percentiles_are_the_upper_bound_of_their_bucket() -> None:
    histogram = [0] * (len(DURATION_BUCKETS) + 1)
    for seconds in [0.5] * 50 + [20] * 45 + [100_000] * 5:
        histogram[bucket_of(seconds)] += 1
    assert percentile(histogram, 0.5) == 1.0
    assert percentile(histogram, 0.95) == 30.0
    assert percentile(histogram, 0.99) == 86_400.0  # the open-ended bucket reads as its lower bound
    assert percentile([0] * len(histogram), 0.5) is None


def test_rows_add_up() -> None:
    one = DayStats(job_type="j", day="2026-11-20", counts={"COMPLETED": 2}, duration_ms=3000)
    two = DayStats(job_type="j", day="2026-11-21", counts={"COMPLETED": 1, "FAILED": 1}, duration_ms=1000)
    total = DayStats.total("j", [one, two])
    assert total.counts == {"COMPLETED": 3, "FAILED": 1}
    assert total.success_rate == 0.75
    assert total.day == ""
