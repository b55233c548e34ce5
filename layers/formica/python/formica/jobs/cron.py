"""formicary's ``cron_trigger``: parse it, list its next fire times, translate it for EventBridge.

Pure: no AWS, no clock (callers pass "now"). formicary parses ``cron_trigger`` with the Go library
github.com/gorhill/cronexpr; this module follows that library's rules so that a definition means
the same thing in both products.

The forms (fields are separated by blanks; times are UTC in Formica):

======== ================================================================ =======================
fields   meaning                                                          example
======== ================================================================ =======================
5        ``minute hour day-of-month month day-of-week``; second 0, any     ``0 * * * *`` hourly
         year
6        ``minute hour day-of-month month day-of-week year``: the sixth    ``0 0 * * * 2030``
         field is the YEAR (not seconds, as in some other crons); second 0
7        ``second minute hour day-of-month month day-of-week year``        ``0 0/30 * * * * *``
macro    ``@yearly`` / ``@annually`` (``0 0 0 1 1 * *``), ``@monthly``,     ``@daily``
         ``@weekly`` (Sunday), ``@daily``, ``@hourly``
======== ================================================================ =======================

Values: second and minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC (full names
too), day-of-week 0-7 or SUN-SAT (0 and 7 are Sunday), year 1970-2099. Each field is a
comma-separated list of ``*`` or ``?`` (any), ``v``, ``a-b``, ``*/n``, ``v/n`` (v to the field's
maximum, every n), ``a-b/n``. Day-of-month also takes ``L`` (last day), ``LW`` (last weekday) and
``nW`` (the weekday nearest day n, within the month); day-of-week takes ``dL`` (the last d of the
month) and ``d#k`` (the k-th d of the month, k 1-5). Names and letters are case-insensitive. When
both day-of-month and day-of-week are restricted (neither is ``*``), a day matches when EITHER
matches, as in Vixie cron.

Formica is stricter than cronexpr in a few places, each reported with the field it concerns
instead of being silently misread: more than 7 fields (cronexpr ignores the rest), an empty list
entry, a backwards range (``50-10`` matches nothing), and a day-of-week range ending in 7
(cronexpr reads 7 as 0, so ``1-7`` would match nothing and ``0-7`` only Sunday).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = [
    "CronError",
    "CronExpression",
    "EventBridgeCronError",
    "eventbridge_expression",
    "next_fire_times",
    "parse_cron",
]

MACROS = {
    "@yearly": "0 0 0 1 1 * *",
    "@annually": "0 0 0 1 1 * *",
    "@monthly": "0 0 0 1 * * *",
    "@weekly": "0 0 0 * * 0 *",
    "@daily": "0 0 0 * * * *",
    "@hourly": "0 0 * * * * *",
}
FIRST_YEAR = 1970
LAST_YEAR = 2099

_NUMBERS = {**{str(n): n for n in range(60)}, **{f"{n:02d}": n for n in range(10)}}
_NUMBERS.update({str(year): year for year in range(FIRST_YEAR, LAST_YEAR + 1)})
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_DAYS = {
    name: number
    for number, names in enumerate(
        (
            ("sun", "sunday"),
            ("mon", "monday"),
            ("tue", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
        )
    )
    for name in names
}
_EVENTBRIDGE_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


class CronError(ValueError):
    """A ``cron_trigger`` that formicary's cron library would not accept (``field`` names where)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class EventBridgeCronError(CronError):
    """A valid ``cron_trigger`` that EventBridge Scheduler cannot express (the message says why)."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    value: str  # the regex of one value (lowercase), as cronexpr's valuePattern
    names: dict[str, int] = field(default_factory=dict)

    def number(self, token: str) -> int:
        if token in self.names:
            return self.names[token]
        number = _NUMBERS[token]
        return 0 if self.name == "day-of-week" and number == 7 else number


SECOND = _Field("second", 0, 59, r"0?[0-9]|[1-5][0-9]")
MINUTE = _Field("minute", 0, 59, r"0?[0-9]|[1-5][0-9]")
HOUR = _Field("hour", 0, 23, r"0?[0-9]|1[0-9]|2[0-3]")
DAY_OF_MONTH = _Field("day-of-month", 1, 31, r"0?[1-9]|[12][0-9]|3[01]")
MONTH = _Field("month", 1, 12, r"0?[1-9]|1[012]|" + "|".join(sorted(_MONTHS, key=len, reverse=True)), _MONTHS)
DAY_OF_WEEK = _Field("day-of-week", 0, 6, r"0?[0-7]|" + "|".join(sorted(_DAYS, key=len, reverse=True)), _DAYS)
YEAR = _Field("year", FIRST_YEAR, LAST_YEAR, r"19[789][0-9]|20[0-9]{2}")

_SEVEN_FIELDS = (SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR)
_FORMS = {
    5: (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK),
    6: (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR),
    7: _SEVEN_FIELDS,
}
_FORM_TEXT = {
    5: "5 fields: minute hour day-of-month month day-of-week",
    6: "6 fields: minute hour day-of-month month day-of-week year",
    7: "7 fields: second minute hour day-of-month month day-of-week year",
}


def _describe(spec: _Field) -> str:
    if spec is MONTH:
        return "1-12 or JAN-DEC"
    if spec is DAY_OF_WEEK:
        return "0-7 or SUN-SAT"
    return f"{spec.low}-{spec.high}"


@dataclass(frozen=True)
class _Entries:
    """One field's values; day fields also keep their special forms."""

    values: frozenset[int]
    every: bool  # a ``*`` / ``?`` entry: the field does not restrict
    last: bool = False  # L (day-of-month)
    last_workday: bool = False  # LW
    workdays: frozenset[int] = frozenset()  # nW
    last_weekdays: frozenset[int] = frozenset()  # dL
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()  # d#k -> (d, k)

    @property
    def special(self) -> bool:
        return bool(
            self.last or self.last_workday or self.workdays or self.last_weekdays or self.nth_weekdays
        )


def _fail(spec: _Field, text: str, entry: str, reason: str) -> CronError:
    return CronError(f"{spec.name} field {text!r}: {entry!r} {reason}", spec.name)


def _step(spec: _Field, text: str, entry: str, token: str) -> int:
    # cronexpr reads the step through its number table (0-59, 00-09, 1970-2099), then bounds it.
    step = _NUMBERS.get(token, 0)
    if step < 1 or step > spec.high:
        raise _fail(spec, text, entry, f"has an invalid step {token!r} (1 to {spec.high})")
    return step


def _span(spec: _Field, text: str, entry: str, *, first: int, last: int, step: int) -> set[int]:
    if first > last:
        raise _fail(spec, text, entry, "is a backwards range: it matches nothing")
    return set(range(first, last + 1, step))


def _parse_field(spec: _Field, text: str) -> _Entries:
    value = spec.value
    single = re.compile(rf"({value})")
    ranged = re.compile(rf"({value})-({value})")
    every_step = re.compile(r"\*/(\d+)")
    value_step = re.compile(rf"({value})/(\d+)")
    range_step = re.compile(rf"({value})-({value})/(\d+)")
    values: set[int] = set()
    every = last = last_workday = False
    workdays: set[int] = set()
    last_weekdays: set[int] = set()
    nth_weekdays: set[tuple[int, int]] = set()
    for entry in text.split(","):
        item = entry.lower()
        if not item:
            raise CronError(f"{spec.name} field {text!r} has an empty list entry", spec.name)
        if item in ("*", "?"):
            every = True
            values.update(range(spec.low, spec.high + 1))
        elif single.fullmatch(item):
            values.add(spec.number(item))
        elif match := ranged.fullmatch(item):
            _check_range_end(spec, text, entry, match.group(2))
            values |= _span(
                spec, text, entry, first=spec.number(match.group(1)), last=spec.number(match.group(2)), step=1
            )
        elif match := every_step.fullmatch(item):
            step = _step(spec, text, entry, match.group(1))
            values |= _span(spec, text, entry, first=spec.low, last=spec.high, step=step)
        elif match := value_step.fullmatch(item):
            first = spec.number(match.group(1))
            step = _step(spec, text, entry, match.group(2))
            values |= _span(spec, text, entry, first=first, last=spec.high, step=step)
        elif match := range_step.fullmatch(item):
            _check_range_end(spec, text, entry, match.group(2))
            first, end = spec.number(match.group(1)), spec.number(match.group(2))
            step = _step(spec, text, entry, match.group(3))
            values |= _span(spec, text, entry, first=first, last=end, step=step)
        elif spec is DAY_OF_MONTH and item == "l":
            last = True
        elif spec is DAY_OF_MONTH and item == "lw":
            last_workday = True
        elif spec is DAY_OF_MONTH and (match := re.fullmatch(rf"({value})w", item)):
            workdays.add(spec.number(match.group(1)))
        elif spec is DAY_OF_WEEK and (match := re.fullmatch(rf"({value})l", item)):
            last_weekdays.add(spec.number(match.group(1)))
        elif spec is DAY_OF_WEEK and (match := re.fullmatch(rf"({value})#([1-5])", item)):
            nth_weekdays.add((spec.number(match.group(1)), int(match.group(2))))
        else:
            raise _fail(spec, text, entry, _why_not(spec))
    return _Entries(
        values=frozenset(values),
        every=every,
        last=last,
        last_workday=last_workday,
        workdays=frozenset(workdays),
        last_weekdays=frozenset(last_weekdays),
        nth_weekdays=frozenset(nth_weekdays),
    )


def _check_range_end(spec: _Field, text: str, entry: str, end: str) -> None:
    if spec is DAY_OF_WEEK and _NUMBERS.get(end) == 7:
        raise _fail(
            spec,
            text,
            entry,
            "ends in 7: formicary's cron reads 7 as Sunday (0), so the range would not reach "
            "Sunday; write it as a list such as 1-6,0",
        )


def _why_not(spec: _Field) -> str:
    extra = ""
    if spec is DAY_OF_MONTH:
        extra = ", L, LW or nW"
    elif spec is DAY_OF_WEEK:
        extra = ", dL or d#k (k 1-5)"
    return f"is not a valid entry (values {_describe(spec)}; forms *, ?, v, a-b, */n, v/n, a-b/n{extra})"


@dataclass(frozen=True)
class CronExpression:
    """A parsed ``cron_trigger`` (always as the 7 fields, whatever form it was written in)."""

    text: str
    form: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: _Entries
    months: tuple[int, ...]
    days_of_week: _Entries
    years: tuple[int, ...]

    @property
    def dom_restricted(self) -> bool:
        return not self.days_of_month.every

    @property
    def dow_restricted(self) -> bool:
        return not self.days_of_week.every

    def days_in(self, year: int, month: int) -> list[int]:
        """The days of ``month`` on which it fires (cronexpr's calculateActualDaysOfMonth)."""
        last_day = calendar.monthrange(year, month)[1]
        if not self.dom_restricted and not self.dow_restricted:
            return list(range(1, last_day + 1))
        days: set[int] = set()
        if self.dom_restricted:
            dom = self.days_of_month
            if dom.last:
                days.add(last_day)
            if dom.last_workday:
                days.add(_workday(year, month, last_day, last_day))
            days.update(day for day in dom.values if day <= last_day)
            days.update(_workday(year, month, day, last_day) for day in dom.workdays if day <= last_day)
        if self.dow_restricted:
            dow = self.days_of_week
            first_weekday = _go_weekday(year, month, 1)
            for weekday in dow.values:
                first = 1 + (weekday - first_weekday) % 7
                days.update(range(first, last_day + 1, 7))
            for weekday, nth in dow.nth_weekdays:
                day = 1 + (weekday - first_weekday) % 7 + 7 * (nth - 1)
                if day <= last_day:
                    days.add(day)
            origin = last_day - 6
            origin_weekday = _go_weekday(year, month, origin)
            days.update(origin + (weekday - origin_weekday) % 7 for weekday in dow.last_weekdays)
        return sorted(days)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after ``moment`` (whole seconds, UTC), or None."""
        start = _utc(moment).replace(microsecond=0) + timedelta(seconds=1)
        for year in self.years:
            if year < start.year:
                continue
            y_bound = year == start.year
            for month in self.months:
                if y_bound and month < start.month:
                    continue
                m_bound = y_bound and month == start.month
                for day in self.days_in(year, month):
                    if m_bound and day < start.day:
                        continue
                    found = self._time_of_day(
                        year, month, day, start if m_bound and day == start.day else None
                    )
                    if found is not None:
                        return found
        return None

    def _time_of_day(self, year: int, month: int, day: int, start: datetime | None) -> datetime | None:
        for hour in self.hours:
            if start is not None and hour < start.hour:
                continue
            h_bound = start is not None and hour == start.hour
            for minute in self.minutes:
                if h_bound and start is not None and minute < start.minute:
                    continue
                mi_bound = h_bound and start is not None and minute == start.minute
                for second in self.seconds:
                    if mi_bound and start is not None and second < start.second:
                        continue
                    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        return None

    @property
    def never_fires(self) -> bool:
        """True when no moment from 1970 to 2099 matches (such as February 30)."""
        return self.next_after(datetime(FIRST_YEAR - 1, 12, 31, 23, 59, 59, tzinfo=UTC)) is None

    def fire_times(self, after: datetime, count: int) -> list[datetime]:
        """Up to ``count`` fire times strictly after ``after``, in order."""
        return list(_take(self._iterate(after), count))

    def fire_times_between(self, after: datetime, until: datetime, limit: int = 1000) -> list[datetime]:
        """Fire times in ``(after, until]`` (at most ``limit``: the latest ones win)."""
        times: list[datetime] = []
        end = _utc(until)
        for moment in self._iterate(after):
            if moment > end:
                break
            times.append(moment)
            if len(times) > limit:
                times.pop(0)
        return times

    def _iterate(self, after: datetime) -> Iterator[datetime]:
        moment: datetime | None = _utc(after)
        while moment is not None:
            moment = self.next_after(moment)
            if moment is not None:
                yield moment


def _take(iterator: Iterator[datetime], count: int) -> Iterator[datetime]:
    for index, moment in enumerate(iterator):
        if index >= count:
            return
        yield moment


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _go_weekday(year: int, month: int, day: int) -> int:
    """Sunday 0 ... Saturday 6 (Go's time.Weekday; Python's weekday() is Monday 0)."""
    return (calendar.weekday(year, month, day) + 1) % 7


def _workday(year: int, month: int, day: int, last_day: int) -> int:
    """cronexpr's workdayOfMonth: the weekday nearest ``day`` without leaving the month."""
    weekday = _go_weekday(year, month, day)
    if weekday == 6:  # Saturday -> Friday, or Monday the 3rd when the 1st is a Saturday
        return day - 1 if day > 1 else day + 2
    if weekday == 0:  # Sunday -> Monday, or Friday when the last day is a Sunday
        return day + 1 if day < last_day else day - 2
    return day


def parse_cron(text: str) -> CronExpression:
    """Parse a ``cron_trigger`` as formicary does; ``CronError`` names the field at fault."""
    stripped = (text or "").strip()
    if not stripped:
        raise CronError("cron_trigger is empty")
    if stripped.startswith("@"):
        if stripped not in MACROS:
            raise CronError(
                f"cron_trigger {stripped!r} is not a known macro ({', '.join(MACROS)}); "
                "formicary's cron library has no @reboot or @minutely"
            )
        form = f"macro {stripped} = {MACROS[stripped]}"
        fields = MACROS[stripped].split()
    else:
        fields = stripped.split()
        if len(fields) not in _FORMS:
            raise CronError(
                f"cron_trigger {stripped!r} has {len(fields)} fields; formicary's cron takes "
                f"{_FORM_TEXT[5]}; or {_FORM_TEXT[6]}; or {_FORM_TEXT[7]}"
            )
        form = _FORM_TEXT[len(fields)]
    specs = _FORMS[len(fields)]
    parsed = {spec.name: _parse_field(spec, part) for spec, part in zip(specs, fields, strict=True)}

    def values(spec: _Field, default: tuple[int, ...]) -> tuple[int, ...]:
        entries = parsed.get(spec.name)
        return default if entries is None else tuple(sorted(entries.values))

    expression = CronExpression(
        text=stripped,
        form=form,
        seconds=values(SECOND, (0,)),
        minutes=values(MINUTE, ()),
        hours=values(HOUR, ()),
        days_of_month=parsed[DAY_OF_MONTH.name],
        months=values(MONTH, ()),
        days_of_week=parsed[DAY_OF_WEEK.name],
        years=values(YEAR, tuple(range(FIRST_YEAR, LAST_YEAR + 1))),
    )
    return expression


def next_fire_times(text: str, after: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` fire times of a ``cron_trigger`` after ``after`` (UTC)."""
    return parse_cron(text).fire_times(after, count)


# -- EventBridge Scheduler ----------------------------------------------------------------------


def _render(values: frozenset[int] | tuple[int, ...], low: int, high: int, *, full: str = "*") -> str:
    """A set of values as EventBridge cron text: ``*``, ``s/k``, or runs and single values."""
    ordered = sorted(set(values))
    if ordered == list(range(low, high + 1)):
        return full
    if len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        progression = list(range(ordered[0], high + 1, step))
        if step > 1 and ordered == progression:
            return f"{ordered[0]}/{step}"
    parts: list[str] = []
    index = 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - index >= 2:
            parts.append(f"{ordered[index]}-{ordered[end]}")
        else:
            parts.extend(str(v) for v in ordered[index : end + 1])
        index = end + 1
    return ",".join(parts)


def _render_days(values: frozenset[int]) -> str:
    """Days of week (0 = Sunday) as EventBridge names, consecutive runs as ranges (MON-FRI)."""
    ordered = sorted(values)
    parts: list[str] = []
    index = 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - index >= 2:
            parts.append(f"{_EVENTBRIDGE_DAYS[ordered[index]]}-{_EVENTBRIDGE_DAYS[ordered[end]]}")
        else:
            parts.extend(_EVENTBRIDGE_DAYS[v] for v in ordered[index : end + 1])
        index = end + 1
    return ",".join(parts)


def _refuse(expression: CronExpression, reason: str, field: str | None) -> EventBridgeCronError:
    return EventBridgeCronError(
        f"cron_trigger {expression.text!r} cannot run on EventBridge Scheduler: {reason}", field
    )


def _eventbridge_days(expression: CronExpression) -> tuple[str, str]:
    dom, dow = expression.days_of_month, expression.days_of_week
    if expression.dom_restricted and expression.dow_restricted:
        raise _refuse(
            expression,
            "formicary fires when EITHER day-of-month or day-of-week matches, while EventBridge takes "
            "only one of them (the other must be '?'); restrict only one",
            "day-of-week",
        )
    if expression.dow_restricted:
        if dow.special:
            if dow.values or len(dow.last_weekdays) + len(dow.nth_weekdays) != 1:
                raise _refuse(
                    expression, "EventBridge accepts dL or d#k only alone in day-of-week", "day-of-week"
                )
            if dow.last_weekdays:
                return "?", f"{next(iter(dow.last_weekdays)) + 1}L"
            weekday, nth = next(iter(dow.nth_weekdays))
            return "?", f"{weekday + 1}#{nth}"
        return "?", _render_days(dow.values)
    if expression.dom_restricted:
        if dom.last_workday:
            raise _refuse(
                expression, "EventBridge documents no LW (last weekday of the month)", "day-of-month"
            )
        if dom.special:
            if dom.values or int(dom.last) + len(dom.workdays) != 1:
                raise _refuse(
                    expression, "EventBridge accepts L or nW only alone in day-of-month", "day-of-month"
                )
            return ("L" if dom.last else f"{next(iter(dom.workdays))}W"), "?"
        return _render(dom.values, 1, 31), "?"
    return "*", "?"


def eventbridge_expression(text: str | CronExpression) -> str:
    """The EventBridge Scheduler ``cron(...)`` expression (UTC) that fires when ``text`` does.

    EventBridge cron has no seconds field, numbers days of week 1-7 from Sunday, and takes either
    day-of-month or day-of-week. Raises ``CronError`` for an invalid trigger and
    ``EventBridgeCronError`` (a ``CronError``) with the reason when EventBridge cannot express it.
    """
    expression = text if isinstance(text, CronExpression) else parse_cron(text)
    if expression.seconds != (0,):
        raise _refuse(
            expression,
            "EventBridge starts a schedule at most once a minute, at second 0; the second field must "
            f"be 0 (it matches seconds {_render(expression.seconds, 0, 59)})",
            "second",
        )
    day_of_month, day_of_week = _eventbridge_days(expression)
    parts = (
        _render(expression.minutes, 0, 59),
        _render(expression.hours, 0, 23),
        day_of_month,
        _render(expression.months, 1, 12),
        day_of_week,
        _render(expression.years, FIRST_YEAR, LAST_YEAR),
    )
    return f"cron({' '.join(parts)})"
