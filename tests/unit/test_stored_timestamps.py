"""Stored timestamps: one format (ISO-8601 UTC with microseconds), whatever clock gave the moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from formica.store.requests import iso, now_iso


def test_a_moment_in_another_zone_is_stored_as_the_same_instant_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    assert iso(datetime(2026, 6, 1, 14, 0, 0, 5, tzinfo=paris)) == "2026-06-01T12:00:00.000005+00:00"


def test_a_utc_moment_keeps_its_microseconds_even_when_they_are_zero() -> None:
    assert iso(datetime(2026, 6, 1, 12, 0, tzinfo=UTC)) == "2026-06-01T12:00:00.000000+00:00"


def test_a_naive_moment_is_refused_rather_than_read_as_the_hosts_local_time() -> None:
    with pytest.raises(ValueError, match="naive 2026-06-01T12:00:00"):
        iso(datetime(2026, 6, 1, 12, 0))  # the naive moment under test


def test_the_wall_clocks_now_has_the_same_format() -> None:
    stamp = now_iso()
    assert stamp.endswith("+00:00") and len(stamp) == len("2026-06-01T12:00:00.000000+00:00")
