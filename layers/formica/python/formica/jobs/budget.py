"""The render budget: what one render of a job definition's templates may cost.

Job definitions are untrusted (one organisation's definition renders in the same Lambda, and in
``formica dev`` the same process, as everyone else's), so a template's cost is bounded WHILE it
renders, never measured afterwards:

* **Time.** A ``Meter`` per render (a ContextVar, so threads never share one) holds a wall-clock
  deadline. The sandbox's hooks tick it: every call, attribute or item lookup, intercepted
  operator, filter, ``~``, every item of every ``for`` loop, and every piece of output.
* **Counts.** The same meter counts loop items and ``Iterate`` items across the whole render, so
  nesting loops multiplies nothing past its limit.
* **Sizes.** Every operation whose result can outgrow its inputs is estimated BEFORE it runs (the
  memory is never allocated): ``range``, ``*``, ``**``, ``+``, ``%``, ``~``, str.format, the filters
  center, indent, wordwrap, format, join, replace, batch, slice, sum, tojson, truncate, the str
  methods center, ljust, rjust, zfill, expandtabs, replace, join, translate, ``int.to_bytes`` and
  ``lipsum``. Every value that goes into or comes out of a hook is measured too (``printed_size``,
  which stops counting past the limit), so what a constant-factor step (escape, upper, urlencode,
  list.extend...) can build is bounded by its bounded input.
* **No work at compile time.** jinja2 folds constant expressions while compiling (it would run
  ``"x"|center(1000000000)`` outside every hook and paste the result into the generated Python
  source); the environment is built with the optimizer off and a finalize that needs the render
  context, so nothing is evaluated before the meter runs.

Every limit is one constant below, documented in docs/job-language.md ("Limits"). A refusal is a
``BudgetExceeded`` naming the limit; ``templates.render_with_lines`` turns it into a TemplateError
naming the line and the task.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn

from jinja2 import TemplateError as JinjaTemplateError
from jinja2 import Undefined
from jinja2.utils import Namespace

MAX_RENDER_SECONDS = 2.0
"""Wall-clock time one render may take. Real definitions render in milliseconds."""
MAX_RENDERED_CHARS = 1_048_576
"""Characters one render may output (1 MiB: several times the largest definition text)."""
MAX_VALUE_CHARS = 1_048_576
"""Characters any one value may have, printed: a string, a list or map as Go prints it, a macro's
or ``{% set %}`` block's text. A value can never be larger than the whole output may be."""
MAX_REPEAT_CHARS = 100_000
"""Items (characters for a string) one repetition ``s * n`` / ``list * n`` may produce."""
MAX_RANGE_ITEMS = 10_000
"""Items one ``range(...)`` may have (jinja2's own sandbox allows 100,000)."""
MAX_LOOP_ITEMS = 100_000
"""Items all the ``for`` / ``range`` loops of one render may visit together (nested loops
multiply: 1,000 x 1,000 is 1,001,000 items)."""
MAX_ITERATE = 1_000
"""Largest ``Iterate n`` (and Go ``range n``) in one call: a definition holds at most 100 tasks."""
MAX_ITERATE_TOTAL = 10_000
"""Items all the ``Iterate`` calls of one render may produce together (nesting ``Iterate`` inside
``range`` calls it once per outer item)."""
MAX_INT_BITS = 4_096
"""Bits of an integer a ``*`` or ``**`` may produce (Go's ints have 64)."""
MAX_EXPONENT = 64
"""Largest exponent of ``**``."""

_UNITS = {
    "MAX_RENDER_SECONDS": "s",
    "MAX_RENDERED_CHARS": "characters",
    "MAX_VALUE_CHARS": "characters",
    "MAX_REPEAT_CHARS": "items",
    "MAX_RANGE_ITEMS": "items",
    "MAX_LOOP_ITEMS": "loop items",
    "MAX_ITERATE": "items",
    "MAX_ITERATE_TOTAL": "items",
    "MAX_INT_BITS": "bits",
    "MAX_EXPONENT": "",
}


class BudgetExceeded(JinjaTemplateError):
    """A template went over one of the limits above; ``limit`` is the constant's name."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


def describe(limit: str) -> str:
    """``MAX_RANGE_ITEMS (10,000 items)``: the limit's name and its current value."""
    value = globals()[limit]
    shown = f"{value:g}" if isinstance(value, float) else f"{value:,}"
    unit = _UNITS.get(limit, "")
    return f"{limit} ({shown}{' ' + unit if unit else ''})"


def over(limit: str, what: str) -> NoReturn:
    """Refuse: ``template refused: <what>, over the limit MAX_X (n units)``."""
    raise BudgetExceeded(limit, f"template refused: {what}, over the limit {describe(limit)}")


# ---------------------------------------------------------------------------------------------
# The meter of one render


class Meter:
    """Time and counts of one render; ticked by the sandbox's hooks."""

    __slots__ = ("deadline", "iterate_items", "loop_items", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.loop_items = 0
        self.iterate_items = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            over("MAX_RENDER_SECONDS", f"rendering still running after {self.seconds:g} s")


_METER: ContextVar[Meter | None] = ContextVar("formica_render_meter", default=None)


@contextmanager
def metered() -> Iterator[Meter]:
    """Meter the renders made inside (one render: ``templates.render_with_lines``)."""
    meter = Meter(MAX_RENDER_SECONDS)
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def tick() -> None:
    """Check the deadline of the render in progress (none outside a render)."""
    meter = _METER.get()
    if meter is not None:
        meter.tick()


def count_iterate(count: int) -> None:
    """``Iterate n`` (or Go ``range n``) is about to produce ``count`` items."""
    meter = _METER.get()
    if meter is None:
        return
    meter.tick()
    meter.iterate_items += count
    if meter.iterate_items > MAX_ITERATE_TOTAL:
        over("MAX_ITERATE_TOTAL", f"Iterate produced {meter.iterate_items:,} items in this render")


def metered_loop(iterable: Any) -> Iterator[Any]:
    """What every ``{% for %}`` iterates (the compiler wraps each loop's iterable in it)."""
    meter = _METER.get()
    if meter is None:
        yield from iterable
        return
    for item in iterable:
        meter.loop_items += 1
        if meter.loop_items > MAX_LOOP_ITEMS:
            over("MAX_LOOP_ITEMS", f"loops visited more than {MAX_LOOP_ITEMS:,} items in this render")
        meter.tick()
        yield item


def checked_value(value: Any) -> Any:
    """What every ``{% set %}`` assigns (the compiler wraps the value): a namespace attribute
    set in a loop must not accumulate past the limit."""
    tick()
    check_size(value, "the value set")
    return value


def bounded_range(*args: Any) -> range:
    """The sandbox's ``range``: at most MAX_RANGE_ITEMS items."""
    tick()
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:
        over("MAX_RANGE_ITEMS", "a range too long to count")
    if count > MAX_RANGE_ITEMS:
        over("MAX_RANGE_ITEMS", f"range of {count:,} items")
    return numbers


def bounded_concat(pieces: Iterable[str]) -> str:
    """``environment.concat``: the text of a macro, a ``{% set %}`` block, a ``{% filter %}``
    block or a ``caller()``, joined only when it fits."""
    tick()
    items = pieces if isinstance(pieces, list) else list(pieces)
    total = sum(map(len, items))
    if total > MAX_VALUE_CHARS:
        over("MAX_VALUE_CHARS", f"a macro or block of {total:,} characters")
    return "".join(items)


def metered_concat(join: Callable[[Any], str], values: tuple[Any, ...]) -> str:
    """``a ~ b ~ c``: joined only when the printed parts fit."""
    tick()
    check_inputs("~", values, {})
    return join(values)


# ---------------------------------------------------------------------------------------------
# Sizes

_SEQUENCES = (list, tuple, set, frozenset, deque, range, KeysView, ValuesView)
_TEXT = (str, bytes, bytearray)


def printed_size(value: Any, limit: int = MAX_VALUE_CHARS) -> int:
    """About how many characters ``value`` takes printed (str, repr, Go's format or JSON, within a
    small factor), counted only until the total passes ``limit``: at most O(limit) work, whatever
    the value (nested, shared or cyclic). Iterators and other objects count as 64, unconsumed."""
    total = 0
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack:
        for item in stack[-1]:
            kind = type(item)
            if kind is str or kind is bytes or kind is bytearray:
                total += len(item)
            elif kind is int:
                total += item.bit_length() // 3 + 2
            elif kind is float:
                total += 24
            elif item is None or kind is bool:
                total += 5
            else:
                depth = len(stack)
                total += _enter(item, stack)
                if total > limit:
                    return total
                if len(stack) > depth:
                    break  # count the container just entered, then come back to this one
                continue
            if total > limit:
                return total
        else:
            stack.pop()
    return total


def _enter(item: Any, stack: list[Iterator[Any]]) -> int:
    """The size of ``item`` itself; a container's items are pushed on ``stack`` to be counted."""
    if isinstance(item, _TEXT):  # a subclass: Markup, JobIdText
        return len(item)
    if isinstance(item, int | float | Undefined):
        return 24
    if isinstance(item, Namespace):
        attributes = object.__getattribute__(item, "_Namespace__attrs")
        stack.append(iter(attributes.items()))
        return 12 + 2 * len(attributes)
    if isinstance(item, (Mapping, *_SEQUENCES)):
        # each item's separator is counted here, so a long container stops the count at once
        stack.append(iter(item.items() if isinstance(item, Mapping) else item))
        try:
            return 2 + 2 * len(item)
        except OverflowError:
            return MAX_VALUE_CHARS * 2 + 2
    return 64


_SIZED = (*_TEXT, *_SEQUENCES, Mapping, Namespace)


def _sized(value: Any) -> bool:
    return isinstance(value, _SIZED)


def check_size(value: Any, what: str) -> None:
    """Refuse a value larger than MAX_VALUE_CHARS printed."""
    if isinstance(value, _TEXT):
        if len(value) > MAX_VALUE_CHARS:
            over("MAX_VALUE_CHARS", f"{what} has {len(value):,} characters")
    elif _sized(value) and printed_size(value) > MAX_VALUE_CHARS:
        over("MAX_VALUE_CHARS", f"{what} is more than {MAX_VALUE_CHARS:,} characters printed")


def check_inputs(what: str, args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse the arguments of one operation when together they print larger than the limit
    (a filter or a print may turn any of them into text)."""
    left = MAX_VALUE_CHARS
    for value in (*args, *kwargs.values()) if kwargs else args:
        if isinstance(value, str):
            left -= len(value)
        elif _sized(value):
            left -= printed_size(value, left)
        if left < 0:
            over(
                "MAX_VALUE_CHARS", f"the values given to {what} are more than {MAX_VALUE_CHARS:,} characters"
            )


def check_estimate(cost: int, what: str) -> None:
    """Refuse an operation whose result would be larger than MAX_VALUE_CHARS."""
    if cost > MAX_VALUE_CHARS:
        over("MAX_VALUE_CHARS", f"{what} would build {cost:,} characters")


def _int(value: Any) -> int:
    """A width, count or precision as the operation would read it (0 when it would refuse it)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    return 0


def _arg(args: list[Any], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _text_size(value: Any) -> int:
    return len(value) if isinstance(value, _TEXT) else printed_size(value)


# ---------------------------------------------------------------------------------------------
# Operators


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Before ``left <operator> right`` (the sandbox intercepts ``*``, ``**``, ``+`` and ``%``)."""
    tick()
    if operator == "*":
        _check_repeat(left, right)
    elif operator == "**":
        _check_power(left, right)
    elif operator == "+":
        if isinstance(left, _TEXT) and isinstance(right, _TEXT):
            check_estimate(len(left) + len(right), "+")
        elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
            size = printed_size(left)
            check_estimate(size + printed_size(right, MAX_VALUE_CHARS - size + 1), "+")
    elif operator == "%" and isinstance(left, str):
        check_estimate(percent_cost(left, right), "%")


def _check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (*_TEXT, list, tuple)) and isinstance(times, int):
            count = len(seq) * times
            if count > MAX_REPEAT_CHARS:
                over("MAX_REPEAT_CHARS", f"repetition of {count:,} items is too large")
            if times > 1 and not isinstance(seq, _TEXT):
                check_estimate(printed_size(seq, MAX_VALUE_CHARS // times + 1) * times, "*")
            return
    if isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() + right.bit_length()
        if bits > MAX_INT_BITS:
            over("MAX_INT_BITS", f"a product of {bits:,} bits")


def _check_power(left: Any, right: Any) -> None:
    if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
        over("MAX_EXPONENT", f"exponent {right:g} is too large")
    if isinstance(left, int) and isinstance(right, int) and right > 0:
        bits = left.bit_length() * right
        if bits > MAX_INT_BITS:
            over("MAX_INT_BITS", f"a power of {bits:,} bits")


# ---------------------------------------------------------------------------------------------
# Formatting: %, str.format, printf

_PERCENT = re.compile(r"%(?:\(([^)]*)\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
_FORMAT_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d+))?[a-zA-Z%]?", re.DOTALL)
_FLOAT_DIGITS = 320  # the integer digits of the largest float, printed with %f


def field_cost(value: Any, width: int, precision: int) -> int:
    """Characters of one formatted field: the value printed (a float may print 309 digits), or
    its width, plus the digits a precision adds."""
    size = _FLOAT_DIGITS if isinstance(value, float) else _text_size(value)
    return max(width, size + size // 3 + max(precision, 0) + 8)


def percent_cost(fmt: str, values: Any) -> int:
    """Characters ``fmt % values`` may build (widths and precisions, ``*`` ones included)."""
    args = list(values) if isinstance(values, tuple) else [values]
    mapping = values if isinstance(values, Mapping) else None
    cost = len(fmt)
    position = 0
    for match in _PERCENT.finditer(fmt):
        key, width, precision, conversion = match.groups()
        cost -= len(match.group(0))  # the field is replaced by what it formats
        if conversion == "%":
            cost += 1
            continue
        sizes = []
        for part in (width, precision):
            if part == "*":
                sizes.append(_int(args[position]) if position < len(args) else 0)
                position += 1
            else:
                sizes.append(int(part) if part else 0)
        if key is not None and mapping is not None:
            value = mapping.get(key)
        else:
            value = args[position] if position < len(args) else None
            position += 1
        cost += field_cost(value, abs(sizes[0]), sizes[1])
        if cost > MAX_VALUE_CHARS:
            break
    return cost


def spec_cost(value: Any, spec: str) -> int:
    """Characters ``format(value, spec)`` may build."""
    match = _FORMAT_SPEC.fullmatch(spec)
    if match is None:
        return field_cost(value, 0, 0) + len(spec)
    width, precision = match.groups()
    return field_cost(value, int(width or 0), int(precision or 0))


class MeteredFormatterMixin:
    """str.format / format_map in the sandbox: each field's width and precision counted before
    it is formatted (``'{:>100000000}'.format(1)`` never allocates)."""

    _built = 0
    _top = ""

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        tick()
        check_inputs("str.format", args, kwargs)
        self._built = 0
        self._top = format_string
        result: str = super().vformat(format_string, args, kwargs)  # type: ignore[misc]
        return result

    def parse(self, format_string: str) -> Iterator[tuple[str, str | None, str | None, str | None]]:
        for literal, *field in super().parse(format_string):  # type: ignore[misc]
            if format_string is self._top:  # not a nested spec's text: that is measured as a spec
                self._built += len(literal)
            yield (literal, *field)

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._built += spec_cost(value, format_spec)
        check_estimate(self._built, "str.format")
        return super().format_field(value, format_spec)  # type: ignore[misc]

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        check_size(value, "a str.format field")
        return super().convert_field(value, conversion)  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Filters


def _listed(args: list[Any], index: int = 0) -> list[Any]:
    """The iterable argument, materialised (a generator from map/select is consumed once, here,
    and the filter gets the list)."""
    value = args[index]
    if not isinstance(value, list):
        value = list(value)
        args[index] = value
    return value


def _lines(text: Any) -> int:
    return text.count("\n") + 1 if isinstance(text, str) else _text_size(text) + 1


def _center(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    return max(_text_size(args[0]), _int(_arg(args, kwargs, 1, "width", 80)))


def _indent(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    width = _arg(args, kwargs, 1, "width", 4)
    step = len(width) if isinstance(width, str) else _int(width)
    return _text_size(args[0]) + _lines(args[0]) * max(step, 0)


def _wordwrap(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    size = _text_size(args[0])
    width = max(_int(_arg(args, kwargs, 1, "width", 79)), 1)
    wrap = _arg(args, kwargs, 3, "wrapstring", None)
    wrap_size = 1 if wrap is None else _text_size(wrap)
    return size + (2 * size // width + _lines(args[0]) + 1) * wrap_size


def _format(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    fmt = args[0] if isinstance(args[0], str) else str(args[0])
    return percent_cost(fmt, dict(kwargs) if kwargs else tuple(args[1:]))


def _join(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    items = _listed(args)
    separator = _arg(args, kwargs, 1, "d", "")
    return join_cost(separator, items)


def join_cost(separator: Any, items: list[Any]) -> int:
    left = MAX_VALUE_CHARS + 1
    for item in items:
        left -= printed_size(item, left) + _text_size(separator)
        if left < 0:
            break
    return MAX_VALUE_CHARS + 1 - left


def replace_cost(text: Any, old: Any, new: Any, count: Any) -> int:
    source: Any = text if isinstance(text, _TEXT) else str(text)
    old_s: Any = old if isinstance(old, type(source)) else str(old)
    new_size = _text_size(new)
    try:
        found = source.count(old_s) if old_s else len(source) + 1
    except TypeError:
        return len(source)  # replace refuses mixed str and bytes itself
    limit = _int(count) if count is not None else -1
    if limit >= 0:
        found = min(found, limit)
    return len(source) + found * max(new_size - len(old_s), 0)


def _replace(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    return replace_cost(
        args[0],
        _arg(args, kwargs, 1, "old", ""),
        _arg(args, kwargs, 2, "new", ""),
        _arg(args, kwargs, 3, "count", None),
    )


def _batch(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    fill = _arg(args, kwargs, 2, "fill_with", None)
    return _text_size(args[0]) + max(_int(_arg(args, kwargs, 1, "linecount", 0)), 0) * (
        printed_size(fill) + 2
    )


def _slice(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    fill = _arg(args, kwargs, 2, "fill_with", None)
    return _text_size(args[0]) + max(_int(_arg(args, kwargs, 1, "slices", 0)), 0) * (printed_size(fill) + 4)


def _sum(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    items = _listed(args)
    return printed_size(items) + printed_size(_arg(args, kwargs, 2, "start", 0))


def _tojson(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    indent = _arg(args, kwargs, 1, "indent", None)
    step = len(indent) if isinstance(indent, str) else max(_int(indent), 0)
    return printed_size(args[0]) * (1 + step)


def _truncate(args: list[Any], kwargs: Mapping[str, Any]) -> int:
    return _text_size(args[0]) + _text_size(_arg(args, kwargs, 3, "end", "..."))


Estimate = Callable[[list[Any], Mapping[str, Any]], int]

FILTER_COSTS: dict[str, Estimate] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "format": _format,
    "join": _join,
    "replace": _replace,
    "batch": _batch,
    "slice": _slice,
    "sum": _sum,
    "tojson": _tojson,
    "truncate": _truncate,
}
"""Filters whose result can outgrow their inputs by an argument, and its estimate (arguments as
the template passes them, after the value). The others grow by a constant factor at most."""


def metered_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (a jinja2 filter) ticking the meter, its inputs measured, its cost estimated
    before it runs (FILTER_COSTS) and its result measured after."""
    lead = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    estimate = FILTER_COSTS.get(name)
    what = f"filter {name}"

    def filtered(*args: Any, **kwargs: Any) -> Any:
        tick()
        values = list(args[lead:])
        check_inputs(what, values, kwargs)
        if estimate is not None and values:
            check_estimate(estimate(values, kwargs), what)
        result = func(*args[:lead], *values, **kwargs)
        check_size(result, f"the result of {what}")
        return result

    filtered.__name__ = getattr(func, "__name__", name)
    filtered.__doc__ = getattr(func, "__doc__", None)
    filtered.__dict__.update(getattr(func, "__dict__", {}))  # jinja_pass_arg and friends
    return filtered


# ---------------------------------------------------------------------------------------------
# Calls: methods of strings and integers, lipsum


def _method_cost(receiver: Any, name: str, args: list[Any], kwargs: Mapping[str, Any]) -> int | None:
    """Characters a size-growing method of a str / bytes / int would build, else None."""
    if isinstance(receiver, _TEXT):
        size = len(receiver)
        if name in ("center", "ljust", "rjust", "zfill"):
            return max(size, _int(_arg(args, kwargs, 0, "width", 0)))
        if name == "expandtabs":
            tab: Any = "\t" if isinstance(receiver, str) else b"\t"
            tabsize = max(_int(_arg(args, kwargs, 0, "tabsize", 8)), 0)
            return size + receiver.count(tab) * tabsize
        if name == "replace":
            return replace_cost(
                receiver,
                _arg(args, kwargs, 0, "old", ""),
                _arg(args, kwargs, 1, "new", ""),
                _arg(args, kwargs, 2, "count", None),
            )
        if name == "join" and args:
            return join_cost(receiver, _listed(args))
        if name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((_text_size(v) for v in args[0].values() if v is not None), default=1)
            return size * max(longest, 1)
        return None
    if isinstance(receiver, int) and name == "to_bytes":
        return _int(_arg(args, kwargs, 0, "length", 1))
    return None


def check_call(func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], lipsum: Any) -> list[Any] | None:
    """Before a call from the template: inputs measured, a size-growing method or ``lipsum``
    estimated. Returns the arguments to call with when one was materialised (join), else None."""
    if args or kwargs:
        check_inputs(_name(func), args, kwargs)
    receiver = getattr(func, "__self__", None)
    if not isinstance(receiver, (*_TEXT, int)) and func is not lipsum:
        return None
    name = _name(func)
    listed = list(args)
    cost = _method_cost(receiver, name, listed, kwargs)
    if cost is None and func is lipsum:
        count = _int(_arg(listed, kwargs, 0, "n", 5))
        words = _int(_arg(listed, kwargs, 3, "max", 100))
        cost = max(count, 0) * (max(words, 0) * 16 + 16)
    if cost is not None:
        check_estimate(cost, name)
    return listed if any(a is not b for a, b in zip(listed, args, strict=True)) else None


def _name(func: Any) -> str:
    return getattr(func, "__name__", None) or type(func).__name__


_GROWABLE = (list, dict, set, deque, bytearray)
_SCALARS = frozenset({bool, int, float})


def check_result(func: Any, result: Any) -> None:
    """After a call: its result, and a container it may have grown (``list.extend``), measured."""
    if result is None or type(result) in _SCALARS or (type(result) is str and len(result) <= MAX_VALUE_CHARS):
        pass
    else:
        check_size(result, f"the result of {_name(func)}")
    receiver = getattr(func, "__self__", None)
    if isinstance(receiver, _GROWABLE):
        check_size(receiver, f"the {type(receiver).__name__} grown by {_name(func)}")
