"""formicary's cron_trigger forms (gorhill/cronexpr rules), next fire times, EventBridge translation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from formica.jobs.cron import (
    CronError,
    EventBridgeCronError,
    eventbridge_expression,
    next_fire_times,
    parse_cron,
)

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "formicary-examples"
# Saturday 28 November 2026, 10:17:03 UTC.
NOW = datetime(2026, 11, 28, 10, 17, 3, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expression: str, count: int = 3, after: datetime = NOW) -> list[str]:
    return [moment.strftime("%Y-%m-%d %H:%M:%S") for moment in next_fire_times(expression, after, count)]


# -- the forms --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # 5 fields: minute hour day-of-month month day-of-week (second 0, any year)
        ("0 * * * *", ["2026-11-28 11:00:00", "2026-11-28 12:00:00", "2026-11-28 13:00:00"]),
        ("0 0 * * *", ["2026-11-29 00:00:00", "2026-11-30 00:00:00", "2026-12-01 00:00:00"]),
        # 6 fields: the sixth is the YEAR, not seconds
        ("0 0 * * * 2030", ["2030-01-01 00:00:00", "2030-01-02 00:00:00", "2030-01-03 00:00:00"]),
        ("30 9 1 1 * 2027-2029", ["2027-01-01 09:30:00", "2028-01-01 09:30:00", "2029-01-01 09:30:00"]),
        # 7 fields: second minute hour day-of-month month day-of-week year
        ("0 0/30 * * * * *", ["2026-11-28 10:30:00", "2026-11-28 11:00:00", "2026-11-28 11:30:00"]),
        ("15 * * * * * *", ["2026-11-28 10:17:15", "2026-11-28 10:18:15", "2026-11-28 10:19:15"]),
        ("*/20 * * * * * *", ["2026-11-28 10:17:20", "2026-11-28 10:17:40", "2026-11-28 10:18:00"]),
        # macros (cronexpr's normalizer)
        ("@hourly", ["2026-11-28 11:00:00", "2026-11-28 12:00:00", "2026-11-28 13:00:00"]),
        ("@daily", ["2026-11-29 00:00:00", "2026-11-30 00:00:00", "2026-12-01 00:00:00"]),
        ("@weekly", ["2026-11-29 00:00:00", "2026-12-06 00:00:00", "2026-12-13 00:00:00"]),
        ("@monthly", ["2026-12-01 00:00:00", "2027-01-01 00:00:00", "2027-02-01 00:00:00"]),
        ("@yearly", ["2027-01-01 00:00:00", "2028-01-01 00:00:00", "2029-01-01 00:00:00"]),
        ("@annually", ["2027-01-01 00:00:00", "2028-01-01 00:00:00", "2029-01-01 00:00:00"]),
    ],
)
def test_forms_fire_as_formicary_reads_them(expression: str, expected: list[str]) -> None:
    assert fires(expression) == expected


def test_the_form_is_reported() -> None:
    assert parse_cron("0 0 * * * 2030").form.endswith("day-of-week year")
    assert parse_cron("0 0 0 * * * *").form.startswith("7 fields: second")
    assert parse_cron("@daily").form == "macro @daily = 0 0 0 * * * *"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 12 * * MON-FRI", ["2026-11-30 12:00:00", "2026-12-01 12:00:00", "2026-12-02 12:00:00"]),
        ("0 12 * * mon,wed", ["2026-11-30 12:00:00", "2026-12-02 12:00:00", "2026-12-07 12:00:00"]),
        ("0 12 * * 7", ["2026-11-29 12:00:00", "2026-12-06 12:00:00", "2026-12-13 12:00:00"]),  # 7 = Sunday
        ("0 12 * JAN,jul *", ["2027-01-01 12:00:00", "2027-01-02 12:00:00", "2027-01-03 12:00:00"]),
        ("0 0 29 2 *", ["2028-02-29 00:00:00", "2032-02-29 00:00:00", "2036-02-29 00:00:00"]),
        # both day fields restricted: EITHER matches (Monday 30 Nov, Tuesday 1 Dec, Monday 7 Dec)
        ("0 0 1 * MON", ["2026-11-30 00:00:00", "2026-12-01 00:00:00", "2026-12-07 00:00:00"]),
        # day-of-month restricted, day-of-week '?': only the day of month
        ("0 0 1 * ?", ["2026-12-01 00:00:00", "2027-01-01 00:00:00", "2027-02-01 00:00:00"]),
        ("0 9 L * *", ["2026-11-30 09:00:00", "2026-12-31 09:00:00", "2027-01-31 09:00:00"]),
        # LW: last weekday (January 2027 ends on a Sunday -> Friday the 29th)
        ("0 9 LW * *", ["2026-11-30 09:00:00", "2026-12-31 09:00:00", "2027-01-29 09:00:00"]),
        # nW: nearest weekday, never leaving the month (1 May 2027 is a Saturday -> Monday the 3rd)
        ("0 9 1W 5 *", ["2027-05-03 09:00:00", "2028-05-01 09:00:00", "2029-05-01 09:00:00"]),
        ("0 9 15W * *", ["2026-12-15 09:00:00", "2027-01-15 09:00:00", "2027-02-15 09:00:00"]),
        ("0 9 * * 5L", ["2026-12-25 09:00:00", "2027-01-29 09:00:00", "2027-02-26 09:00:00"]),
        ("0 9 * * FRI#3", ["2026-12-18 09:00:00", "2027-01-15 09:00:00", "2027-02-19 09:00:00"]),
        ("5-7 0 1 1 *", ["2027-01-01 00:05:00", "2027-01-01 00:06:00", "2027-01-01 00:07:00"]),
        ("10-50/20 0 1 1 *", ["2027-01-01 00:10:00", "2027-01-01 00:30:00", "2027-01-01 00:50:00"]),
        ("50/5 0 1 1 *", ["2027-01-01 00:50:00", "2027-01-01 00:55:00", "2028-01-01 00:50:00"]),
    ],
)
def test_values_lists_ranges_steps_and_day_letters(expression: str, expected: list[str]) -> None:
    assert fires(expression) == expected


def test_next_fire_is_strictly_after_now() -> None:
    on_the_hour = at("2026-11-28 11:00:00")
    assert fires("0 * * * *", 1, after=on_the_hour) == ["2026-11-28 12:00:00"]
    assert fires("0 * * * *", 1, after=on_the_hour + timedelta(microseconds=5)) == ["2026-11-28 12:00:00"]


def test_triggers_that_never_fire() -> None:
    assert parse_cron("0 0 31 2 *").never_fires
    assert fires("0 0 1 1 * 1999") == []  # valid, but only in the past
    assert not parse_cron("0 0 1 1 * 1999").never_fires
    assert fires("0 0 1 1 * 2099", 5) == ["2099-01-01 00:00:00"]


def test_fire_times_between_is_a_half_open_window() -> None:
    expression = parse_cron("0 * * * *")
    window = expression.fire_times_between(at("2026-11-28 10:00:00"), at("2026-11-28 13:00:00"))
    assert [m.hour for m in window] == [11, 12, 13]
    assert [m.hour for m in expression.fire_times_between(at("2026-11-28 10:00:00"), NOW, limit=5)] == []
    latest = expression.fire_times_between(at("2026-11-28 00:00:00"), at("2026-11-28 10:00:00"), limit=2)
    assert [m.hour for m in latest] == [9, 10]


def _brute_force(
    second: set[int], minute: set[int], hour: set[int], days: set[int], after: datetime
) -> datetime:
    moment = after.replace(microsecond=0) + timedelta(seconds=1)
    while not (
        moment.second in second
        and moment.minute in minute
        and moment.hour in hour
        and (moment.weekday() + 1) % 7 in days
    ):
        moment += timedelta(seconds=1)
    return moment


def test_next_agrees_with_a_brute_force_search() -> None:
    expression = parse_cron("*/15 5,35 */7 * * 1-3,6 *")
    moment = NOW
    for _ in range(20):
        expected = _brute_force({0, 15, 30, 45}, {5, 35}, {0, 7, 14, 21}, {1, 2, 3, 6}, moment)
        found = expression.next_after(moment)
        assert found == expected
        moment = expected


# -- errors name the field ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "field", "words"),
    [
        ("", None, "empty"),
        ("* * * *", None, "has 4 fields"),
        ("* * * * * * * *", None, "has 8 fields"),
        ("@reboot", None, "not a known macro"),
        ("61 * * * *", "minute", "'61' is not a valid entry (values 0-59"),
        ("0 24 * * *", "hour", "'24' is not a valid entry (values 0-23"),
        ("0 0 0 * *", "day-of-month", "'0' is not a valid entry (values 1-31"),
        ("0 0 * 13 *", "month", "'13' is not a valid entry (values 1-12 or JAN-DEC"),
        ("0 0 * * FUN", "day-of-week", "'FUN' is not a valid entry (values 0-7 or SUN-SAT"),
        ("0 0 * * 1-7", "day-of-week", "ends in 7"),
        ("0 0 * * * 1969", "year", "'1969' is not a valid entry (values 1970-2099"),
        ("60 * * * * * *", "second", "'60' is not a valid entry"),
        ("50-10 * * * *", "minute", "backwards range"),
        ("*/0 * * * *", "minute", "invalid step '0'"),
        ("*/60 * * * *", "minute", "invalid step '60'"),
        ("0 */24 * * *", "hour", "invalid step '24' (1 to 23)"),
        ("1,,2 * * * *", "minute", "empty list entry"),
        ("0 0 L * 5L,", "day-of-week", "empty list entry"),
        ("0 0 * * 5#6", "day-of-week", "'5#6' is not a valid entry"),
        ("0 0 32W * *", "day-of-month", "'32W' is not a valid entry"),
        ("0 0 * * L", "day-of-week", "'L' is not a valid entry"),
    ],
)
def test_invalid_triggers_name_the_field(expression: str, field: str | None, words: str) -> None:
    with pytest.raises(CronError) as raised:
        parse_cron(expression)
    assert raised.value.field == field
    assert words in str(raised.value)
    if field is not None:
        assert str(raised.value).startswith(f"{field} field ")


# -- EventBridge Scheduler ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 * * * *", "cron(0 * * * ? *)"),
        ("0 0 * * *", "cron(0 0 * * ? *)"),
        ("0 0/30 * * * * *", "cron(0,30 * * * ? *)"),
        ("*/5 * * * *", "cron(0/5 * * * ? *)"),
        ("0 */6 * * *", "cron(0 0/6 * * ? *)"),
        ("0 12 * * MON-FRI", "cron(0 12 ? * MON-FRI *)"),
        ("0 12 * * 0,6", "cron(0 12 ? * SUN,SAT *)"),
        ("0 12 * * 7", "cron(0 12 ? * SUN *)"),
        ("0 0 1,15 * *", "cron(0 0 1,15 * ? *)"),
        ("0 0 1 1-3,6 *", "cron(0 0 1 1-3,6 ? *)"),
        ("0 9 L * *", "cron(0 9 L * ? *)"),
        ("0 9 15W * *", "cron(0 9 15W * ? *)"),
        ("0 9 * * 5L", "cron(0 9 ? * 6L *)"),
        ("0 9 * * FRI#3", "cron(0 9 ? * 6#3 *)"),
        ("0 0 * * * 2030", "cron(0 0 * * ? 2030)"),
        ("@weekly", "cron(0 0 ? * SUN *)"),
        ("@monthly", "cron(0 0 1 * ? *)"),
    ],
)
def test_eventbridge_translation(expression: str, expected: str) -> None:
    assert eventbridge_expression(expression) == expected


@pytest.mark.parametrize(
    ("expression", "field", "reason"),
    [
        ("*/10 * * * * * *", "second", "at most once a minute, at second 0"),
        ("30 0 * * * * *", "second", "the second field must be 0"),
        ("0 0 1 * MON", "day-of-week", "EITHER day-of-month or day-of-week"),
        ("0 0 LW * *", "day-of-month", "no LW"),
        ("0 0 1,L * *", "day-of-month", "L or nW only alone"),
        ("0 0 * * 1,5L", "day-of-week", "dL or d#k only alone"),
    ],
)
def test_eventbridge_refuses_with_the_reason(expression: str, field: str, reason: str) -> None:
    with pytest.raises(EventBridgeCronError) as raised:
        eventbridge_expression(expression)
    assert raised.value.field == field
    assert reason in str(raised.value)
    assert "cannot run on EventBridge Scheduler" in str(raised.value)


def test_eventbridge_fires_when_formicary_does() -> None:
    """The translation's fire times, read back as a 6-field formicary trigger, are the same."""
    for expression in ("0 12 * * MON-FRI", "*/5 3 * * *", "0 0 1,15 * *", "0 */6 * 2-4 *", "@weekly"):
        translated = eventbridge_expression(expression)[len("cron(") : -1].split()
        minute, hour, dom, month, dow, year = translated
        back = " ".join(
            (
                minute,
                hour,
                "*" if dom == "?" else dom,
                month,
                "*" if dow == "?" else dow,
                "*" if year == "*" else year,
            )
        )
        assert fires(back, 10) == fires(expression, 10), (expression, translated)


# -- the formicary examples ---------------------------------------------------------------------------


def _corpus_triggers() -> list[tuple[str, str]]:
    if not CORPUS.is_dir():
        return []
    found: list[tuple[str, str]] = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^cron_trigger:\s*(.+?)\s*$", line)
            if match:
                found.append((path.name, match.group(1).strip("'\"")))
    return found


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/formicary-examples is absent (shared corpus)")
def test_every_cron_trigger_of_the_formicary_examples_parses_and_runs_on_eventbridge() -> None:
    triggers = _corpus_triggers()
    assert len(triggers) >= 3
    for name, expression in triggers:
        parsed = parse_cron(expression)
        assert parsed.fire_times(NOW, 2), name
        assert eventbridge_expression(parsed).startswith("cron("), name
