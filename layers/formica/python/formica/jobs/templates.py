"""Templates: formicary's Go template syntax rendered by jinja2's sandbox.

A definition is a template of YAML. ``render`` translates Go actions to jinja2 (see
``gotemplate``), compiles once (LRU cache: a task is rendered on every attempt), and renders in a
``SandboxedEnvironment`` whose undefined values behave like Go's missing map keys: they render
empty and are false in conditions. Attribute tricks (``{{ ''.__class__ }}``) raise ``TemplateError``.
Every render is metered (``formica.jobs.budget``): time, loop and ``Iterate`` items, and the size of
every value and of the output are bounded while it renders, and nothing runs at compile time.

Variables (highest precedence first, see ``runtime_context``): the built-ins (JobID, JobType,
JobRetry, JobElapsedSecs, TaskType, TaskRetry, Nonce, UserID, OrganizationID, DateYear, DateMonth,
DateDay, YearDay, FullDate, EpochSecs), then task variables (``render_task``), earlier tasks'
outputs, request params, and job_variables.
"""

from __future__ import annotations

import html
import json
import math
import operator
import random
import re
import secrets
import types
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, update_wrapper
from types import TracebackType
from typing import Any, NoReturn

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, Undefined, meta, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.nodes import Template as TemplateNode
from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum, pass_eval_context
from markupsafe import Markup

from formica.jobs import budget
from formica.jobs.budget import BudgetExceeded
from formica.jobs.errors import Problem, TemplateError
from formica.jobs.gotemplate import MARK_CLOSE, MARK_OPEN, TranslationError, strip_markers, translate
from formica.jobs.limits import NAME_RULE, is_name, shown

TEMPLATE_NAME = "<job-definition>"
# The limits live in formica.jobs.budget (docs/job-language.md, "Limits"); these three were
# first defined here and keep their names.
MAX_ITERATE = budget.MAX_ITERATE
MAX_RENDERED_CHARS = budget.MAX_RENDERED_CHARS
MAX_REPEAT_CHARS = budget.MAX_REPEAT_CHARS

BUILTIN_VARIABLES = (
    "JobID",
    "JobType",
    "JobRetry",
    "JobElapsedSecs",
    "TaskType",
    "TaskRetry",
    "Nonce",
    "UserID",
    "OrganizationID",
    "DateYear",
    "DateMonth",
    "DateDay",
    "YearDay",
    "FullDate",
    "EpochSecs",
)


MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
"""``DateMonth``: the month's English name, as Go prints a time.Month (never the locale's)."""

VALIDATION_JOB_ID = "00000000-0000-0000-0000-000000000000"
"""``JobID`` at upload validation: shaped like a real request id, so a template that would fail on
one (a numeric comparison) fails at upload rather than on every run."""


class _TemplateRuntimeError(JinjaTemplateError):
    """Raised inside rendering by the Go functions (bad comparison, bad argument...)."""


class JobIdText(str):
    """``JobID``: the request's id, a UUID text. formicary's JobID is a number (``gt .JobID 5``
    is legal there); comparing this one with a number is a template error that says why."""

    __slots__ = ()


# ---------------------------------------------------------------------------------------------
# Go semantics for values


def go_format(value: Any) -> str:
    """How Go's template prints a value (``true``, ``3`` for 3.0, ``[a b]``, ``map[k:v]``)."""
    if type(value) is str:
        return value
    if isinstance(value, Undefined) or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
            return str(int(value))
        if not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        return repr(value)
    if isinstance(value, list | tuple | Mapping):
        budget.check_size(value, "a printed value")
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_format(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda item: str(item[0]))
        return "map[" + " ".join(f"{go_format(k)}:{go_format(v)}" for k, v in items) + "]"
    return str(value)


def _fail(message: str) -> NoReturn:
    raise _TemplateRuntimeError(message)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _comparable(left: Any, right: Any, name: str) -> tuple[Any, Any]:
    """Go compares like kinds only; a missing value counts as the zero value of the other side."""
    for side, other in ((left, right), (right, left)):
        if isinstance(side, JobIdText) and not isinstance(other, str | Undefined) and other is not None:
            _fail(
                f"{name}: JobID is the request's id, a text such as {str(side)!r} (formicary's is a "
                f"number); compare it with text, not with {go_format(other)!r}"
            )
    if isinstance(left, Undefined) or left is None:
        left = _zero_like(right)
    if isinstance(right, Undefined) or right is None:
        right = _zero_like(left)
    if isinstance(left, bool) or isinstance(right, bool):
        if isinstance(left, bool) and isinstance(right, bool):
            return left, right
        _fail(f"{name}: cannot compare {go_format(left)!r} with {go_format(right)!r}")
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    lnum, rnum = _number(left), _number(right)
    if lnum is None and left == "":
        lnum = 0
    if rnum is None and right == "":
        rnum = 0
    if lnum is None or rnum is None:
        _fail(f"{name}: cannot compare {go_format(left)!r} with {go_format(right)!r}")
    return lnum, rnum


def _zero_like(other: Any) -> Any:
    if isinstance(other, bool):
        return False
    if isinstance(other, int | float):
        return 0
    return ""


def _compare(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        a, b = _comparable(left, right, name)
        return bool(op(a, b))

    compare.__name__ = f"go_{name}"
    return compare


def go_eq(left: Any, *others: Any) -> bool:
    if not others:
        _fail("eq needs at least two arguments")
    for other in others:
        a, b = _comparable(left, other, "eq")
        if a == b:
            return True
    return False


def go_ne(left: Any, right: Any) -> bool:
    a, b = _comparable(left, right, "ne")
    return bool(a != b)


def go_len(value: Any) -> int:
    if isinstance(value, Undefined) or value is None:
        return 0
    if isinstance(value, str | list | tuple | dict):
        return len(value)
    _fail(f"len of {type(value).__name__} is not defined")


def go_index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Undefined) or value is None:
            return None
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list | tuple | str):
            index = _number(key)
            if not isinstance(index, int) or not 0 <= index < len(value):
                _fail(f"index {key!r} out of range")
            value = value[index]
        else:
            _fail(f"cannot index {type(value).__name__}")
    return value


def go_slice(value: Any, *bounds: Any) -> Any:
    if not isinstance(value, str | list | tuple):
        _fail(f"cannot slice {type(value).__name__}")
    numbers = [int(b) for b in bounds]
    if len(numbers) > 2:
        _fail("slice takes at most two indexes")
    return value[slice(*numbers)] if numbers else value


_PRINTF_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def go_printf(fmt: Any, *args: Any) -> str:
    """Go's ``fmt.Sprintf`` for the common verbs (%v %s %d %q %t %f %e %g %x %X %o %b %c %%)."""
    values = list(args)
    position = 0
    _check_printf(go_format(fmt), values)

    def substitute(match: re.Match[str]) -> str:
        nonlocal position
        flags, width, precision, verb = match.groups()
        if verb == "%":
            return "%"
        if position >= len(values):
            return f"%!{verb}(MISSING)"
        value = values[position]
        position += 1
        spec = flags.replace("#", "") + (width or "") + (f".{precision}" if precision else "")
        if verb in ("v", "s"):
            text = go_format(value)
            return format(text, _text_spec(flags, width, precision))
        if verb == "q":
            return json.dumps(go_format(value))
        if verb == "t":
            return go_format(bool(value))
        if verb == "c":
            return chr(int(value))
        number = _number(value)
        if number is None:
            return f"%!{verb}({go_format(value)})"
        if verb == "d":
            return format(int(number), spec + "d")
        if verb in ("f", "F", "e", "E", "g", "G"):
            return format(float(number), spec + verb.lower() if verb == "F" else spec + verb)
        if verb in ("x", "X", "o", "b"):
            return format(int(number), spec + verb)
        return f"%!{verb}({go_format(value)})"

    result = _PRINTF_VERB.sub(substitute, go_format(fmt))
    if position < len(values):
        extra = ", ".join(go_format(v) for v in values[position:])
        result += f"%!(EXTRA {extra})"
    return result


def _check_printf(fmt: str, values: list[Any]) -> None:
    """Refuse a printf whose widths and precisions would build more than the budget allows."""
    cost = len(fmt)
    position = 0
    for match in _PRINTF_VERB.finditer(fmt):
        _flags, width, precision, verb = match.groups()
        cost -= len(match.group(0))  # the verb is replaced by what it formats
        if verb == "%":
            cost += 1
            continue
        value = values[position] if position < len(values) else None
        position += 1
        digits = int(width) if width and width.isdigit() else 0
        cost += budget.field_cost(value, digits, int(precision or 0))
        budget.check_estimate(cost, "printf")
    budget.check_inputs("printf", values, {})


def _text_spec(flags: str, width: str | None, precision: str | None) -> str:
    align = "<" if "-" in flags else ">"
    return (align + width if width else "") + (f".{precision}" if precision else "")


def go_print(*args: Any) -> str:
    # Go's fmt.Sprint puts spaces between operands when neither is a string.
    out = ""
    for index, arg in enumerate(args):
        if index and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            out += " "
        out += go_format(arg)
    return out


def go_println(*args: Any) -> str:
    return " ".join(go_format(arg) for arg in args) + "\n"


def go_html(*args: Any) -> str:
    return html.escape(go_print(*args))


def go_js(*args: Any) -> str:
    return json.dumps(go_print(*args))[1:-1].replace("'", "\\'")


def go_urlquery(*args: Any) -> str:
    """``urlquery S``: S escaped for a URL query as Go's url.QueryEscape does (a space is ``+``)."""
    text = go_print(*args)
    budget.check_estimate(3 * len(text.encode("utf-8", "surrogatepass")), "urlquery")
    return urllib.parse.quote_plus(text, safe="")


def go_range1(value: Any) -> list[Any]:
    """What ``range $x := value`` visits: list items, map values in key order, 0..n-1 for an int."""
    if isinstance(value, Undefined) or value is None:
        return []
    if isinstance(value, Mapping):
        return [value[key] for key in sorted(value, key=str)]
    if isinstance(value, int) and not isinstance(value, bool):
        return list(range(_bounded(value)))
    if isinstance(value, list | tuple | str):
        return list(value)
    _fail(f"cannot range over {type(value).__name__}")


def go_range2(value: Any) -> list[tuple[Any, Any]]:
    """What ``range $i, $x := value`` visits: (index, item), or (key, value) in key order."""
    if isinstance(value, Undefined) or value is None:
        return []
    if isinstance(value, Mapping):
        return [(key, value[key]) for key in sorted(value, key=str)]
    return list(enumerate(go_range1(value)))


def go_with(value: Any) -> list[Any]:
    return [value] if value and not isinstance(value, Undefined) else []


def _bounded(count: int) -> int:
    if count > budget.MAX_ITERATE:
        budget.over("MAX_ITERATE", f"Iterate {count:,}")
    budget.count_iterate(max(count, 0))
    return max(count, 0)


# ---------------------------------------------------------------------------------------------
# formicary's functions


def random_between(low: Any, high: Any) -> int:
    """``Random a b``: an integer from a to b, both included (so ``exit {{ Random 0 5 }}`` can exit 5)."""
    lo, hi = _number(low), _number(high)
    if lo is None or hi is None:
        _fail(f"Random needs two numbers, got {go_format(low)!r} and {go_format(high)!r}")
    lo_i, hi_i = int(lo), int(hi)
    if lo_i > hi_i:
        lo_i, hi_i = hi_i, lo_i
    return random.randint(lo_i, hi_i)


def iterate(count: Any) -> list[int]:
    """``Iterate n``: 0, 1, ..., n-1 (at most MAX_ITERATE items)."""
    number = _number(count)
    if number is None:
        _fail(f"Iterate needs a number, got {go_format(count)!r}")
    return list(range(_bounded(int(number))))


def add(left: Any, right: Any) -> Any:
    """``Add a b``: a + b for numbers (numeric strings count as numbers)."""
    a, b = _number(left), _number(right)
    if a is None or b is None:
        _fail(f"Add needs two numbers, got {go_format(left)!r} and {go_format(right)!r}")
    return a + b


def unescape(value: Any) -> str:
    """``Unescape s``: the text with HTML entities decoded (formicary uses it to keep quotes as quotes)."""
    return html.unescape(go_format(value))


def make_dict(*pairs: Any) -> dict[str, Any]:
    """``Dict k1 v1 k2 v2``: a map built from key/value pairs."""
    if len(pairs) % 2:
        _fail("Dict needs key/value pairs (an even number of arguments)")
    return {go_format(pairs[i]): pairs[i + 1] for i in range(0, len(pairs), 2)}


# ---------------------------------------------------------------------------------------------
# formicary's string, number and time helpers: sprig's names and argument order (the subject last,
# so ``{{ .Name | trimPrefix "v" }}`` pipes it in), Go's results


def _text(value: Any, name: str) -> str:
    """A text argument: a string, or a number or bool as Go prints it; missing is empty."""
    if isinstance(value, list | tuple | Mapping):
        _fail(f"{name} needs text, got {go_format(value)!r}")
    return go_format(value)


def _is_empty(value: Any) -> bool:
    """sprig's ``empty``: missing, nil, false, 0, and an empty string, list or map."""
    if isinstance(value, Undefined) or value is None:
        return True
    if isinstance(value, bool | int | float):
        return not value
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) == 0
    return False


def go_default(default: Any, *given: Any) -> Any:
    """``default DEFAULT VALUE``: VALUE, or DEFAULT when VALUE is missing or empty (sprig)."""
    if not given or _is_empty(given[0]):
        return default
    return given[0]


def go_trim_prefix(prefix: Any, value: Any) -> str:
    """``trimPrefix PREFIX S``: S without PREFIX at its start (unchanged when absent)."""
    return _text(value, "trimPrefix").removeprefix(_text(prefix, "trimPrefix"))


def go_trim_suffix(suffix: Any, value: Any) -> str:
    """``trimSuffix SUFFIX S``: S without SUFFIX at its end (unchanged when absent)."""
    return _text(value, "trimSuffix").removesuffix(_text(suffix, "trimSuffix"))


def go_has_prefix(prefix: Any, value: Any) -> bool:
    """``hasPrefix PREFIX S``: true when S starts with PREFIX."""
    return _text(value, "hasPrefix").startswith(_text(prefix, "hasPrefix"))


def go_has_suffix(suffix: Any, value: Any) -> bool:
    """``hasSuffix SUFFIX S``: true when S ends with SUFFIX."""
    return _text(value, "hasSuffix").endswith(_text(suffix, "hasSuffix"))


def go_contains(substring: Any, value: Any) -> bool:
    """``contains SUBSTR S``: true when S contains SUBSTR."""
    return _text(substring, "contains") in _text(value, "contains")


def go_lower(value: Any) -> str:
    """``lower S``: Go's strings.ToLower (one character for one: U+0130 becomes "i")."""
    text = _text(value, "lower")
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(char.lower()[0] for char in text)


def go_upper(value: Any) -> str:
    """``upper S``: Go's strings.ToUpper (one character for one: "ß" stays "ß", never "SS")."""
    text = _text(value, "upper")
    raised = text.upper()
    if len(raised) == len(text):
        return raised
    return "".join(up if len(up := char.upper()) == 1 else char for char in text)


def go_replace(old: Any, new: Any, value: Any) -> str:
    """``replace OLD NEW S``: every OLD in S replaced by NEW (Go's strings.ReplaceAll)."""
    text, old_text, new_text = _text(value, "replace"), _text(old, "replace"), _text(new, "replace")
    budget.check_estimate(budget.replace_cost(text, old_text, new_text, None), "replace")
    return text.replace(old_text, new_text)


_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)", re.I)
_INT64 = (-(2**63), 2**63 - 1)


def go_atoi(value: Any) -> int:
    """``atoi S``: S as an integer; 0 when S is not one (sprig ignores strconv.Atoi's error), and
    clamped to Go's int64 when out of its range (what Atoi returns with its range error)."""
    text = _text(value, "atoi")
    if _GO_INT.fullmatch(text) is None:
        return 0
    negative = text.startswith("-")
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > 19:  # past int64 whatever the digits are: never parse a huge number
        return _INT64[0] if negative else _INT64[1]
    number = -int(digits or "0") if negative else int(digits or "0")
    return min(max(number, _INT64[0]), _INT64[1])


def go_atof(value: Any) -> float:
    """``atof S``: S as a float (``1.5``, ``1e3``, ``inf``); 0 when S is not one."""
    text = _text(value, "atof")
    if len(text) > 400 or _GO_FLOAT.fullmatch(text) is None:
        return 0.0
    return float(text)


def go_split(separator: Any, value: Any) -> dict[str, str]:
    """``split SEP S``: the parts of S as a map ``_0``, ``_1``, ... (sprig), so ``(split "," .X)._1``
    is the second part; an empty SEP splits S into characters."""
    text, sep = _text(value, "split"), _text(separator, "split")
    parts = text.count(sep) + 1 if sep else len(text)
    budget.check_estimate(len(text) + parts * (len(str(parts)) + 4), "split")
    pieces = text.split(sep) if sep else list(text)
    return {f"_{index}": piece for index, piece in enumerate(pieces)}


def go_join(separator: Any, values: Any) -> str:
    """``join SEP LIST``: the items of LIST printed and joined by SEP (nil items left out, as sprig
    does); a value that is not a list is printed alone."""
    sep = _text(separator, "join")
    if isinstance(values, Undefined) or values is None:
        return ""
    items = [item for item in values if item is not None] if isinstance(values, list | tuple) else [values]
    budget.check_estimate(budget.join_cost(sep, items), "join")
    return sep.join(go_format(item) for item in items)


def go_html_escape(text: str) -> str:
    """Go's template.HTMLEscapeString (``&#34;`` and ``&#39;`` for the quotes)."""
    return text.translate(_GO_HTML_ESCAPES)


_GO_HTML_ESCAPES = str.maketrans(
    {"&": "&amp;", "'": "&#39;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "\0": "\ufffd"}
)
_MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _is_web_url(text: str) -> bool:
    if _CONTROL.search(text):
        return False  # Go's url.Parse refuses control characters
    try:
        return urllib.parse.urlsplit(text).scheme.lower() in ("http", "https")
    except ValueError:
        return False


def _anchor(url: str, text: str) -> str:
    return f'<a href="{go_html_escape(url)}" target="_blank" rel="noopener noreferrer">{text}</a>'


def markdown_link(value: Any) -> str:
    """``MarkdownLink S``: the first ``[text](http...)`` of S as an HTML link opening in a new tab,
    a bare http(s) URL as a link to itself, anything else HTML-escaped (a ``javascript:`` or other
    non-web URL is never a link)."""
    text = _text(value, "MarkdownLink")
    specials = sum(text.count(char) for char in "&'<>\"")
    budget.check_estimate(2 * (len(text) + 4 * specials) + 64, "MarkdownLink")
    if not text:
        return ""
    found = _MARKDOWN_LINK.search(text)
    if found is None:
        return _anchor(text, go_html_escape(text)) if _is_web_url(text) else go_html_escape(text)
    label, url = found.groups()
    if not _is_web_url(url) or "javascript:" in url.lower():
        return go_html_escape(text)
    return _anchor(url, go_html_escape(label))


_TIME_LAYOUT = "%Y-%m-%d %H:%M:%S"
ZERO_TIME = "\u2014"
"""What ``FormatTime`` prints for no time at all (formicary's em dash)."""


def format_time(value: Any) -> str:
    """``FormatTime T`` (or ``formatTime``): ``2006-01-02 15:04:05``; T is an ISO-8601 time (in its
    own offset) or epoch seconds (UTC); no time at all prints an em dash."""
    if isinstance(value, Undefined) or value is None or value == "":
        return ZERO_TIME
    if isinstance(value, datetime):
        return value.strftime(_TIME_LAYOUT)
    number = None if isinstance(value, bool) else _number(value)
    try:
        if number is not None:
            return datetime.fromtimestamp(number, UTC).strftime(_TIME_LAYOUT)
        if isinstance(value, str) and len(value) <= 64:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime(_TIME_LAYOUT)
    except (ValueError, OverflowError, OSError):
        pass
    _fail(f"FormatTime needs an ISO-8601 time or epoch seconds, got {go_format(value)[:64]!r}")


def percent100(received: Any, required: Any) -> int:
    """``Percent100 RECEIVED REQUIRED``: RECEIVED * 100 / REQUIRED as an integer (truncated), at
    most 100; 100 when REQUIRED is 0 or less (formicary's progress bars)."""
    got, need = _number(received), _number(required)
    if got is None or need is None:
        _fail(f"Percent100 needs two numbers, got {go_format(received)!r} and {go_format(required)!r}")
    got_i, need_i = int(got), int(need)
    if need_i <= 0:
        return 100
    scaled = got_i * 100
    percent = abs(scaled) // need_i * (1 if scaled >= 0 else -1)  # Go truncates toward zero
    return min(percent, 100)


REQUEST_STATES = (
    "PENDING",
    "READY",
    "STARTED",
    "EXECUTING",
    "PAUSED",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
)
"""The job states ``CountByJobTypeAndState`` accepts (formicary's names; the engine's JobState)."""

RequestCounter = Callable[[str, tuple[str, ...]], int]
"""``(job_type, states) -> how many of the organisation's own requests of that type are in those
states``: supplied by the runtime from the request store, a stub returning 0 at upload."""


def no_requests(job_type: str, states: tuple[str, ...]) -> int:
    """The counter of upload validation (and of a render with no store): nothing is counted."""
    return 0


def count_requests_function(counter: RequestCounter) -> Callable[..., int]:
    """``CountByJobTypeAndState TYPE STATE...``: the template function over ``counter``.

    States may be separate arguments or comma-separated (``"PENDING,EXECUTING"``); an unknown
    state or a job type that breaks the name rule is a template error, at upload too.
    """

    def count_by_job_type_and_state(job_type: Any, *states: Any) -> int:
        name = _text(job_type, "CountByJobTypeAndState")
        if not is_name(name):
            _fail(f"CountByJobTypeAndState: job type {shown(name)} is not a valid name: use {NAME_RULE}")
        wanted: list[str] = []
        for argument in states:
            for part in _text(argument, "CountByJobTypeAndState").split(","):
                state = part.strip().upper()
                if not state:
                    continue
                if state not in REQUEST_STATES:
                    _fail(
                        f"CountByJobTypeAndState: unknown job state {shown(part.strip())}; "
                        f"use {', '.join(REQUEST_STATES)}"
                    )
                if state not in wanted:
                    wanted.append(state)
        if not wanted:
            _fail("CountByJobTypeAndState needs a job type and at least one job state")
        budget.tick()
        return counter(name, tuple(wanted))

    count_by_job_type_and_state.__name__ = "CountByJobTypeAndState"
    return count_by_job_type_and_state


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "Random": random_between,
    "Iterate": iterate,
    "Add": add,
    "Unescape": unescape,
    "Dict": make_dict,
    "MarkdownLink": markdown_link,
    "FormatTime": format_time,
    "Percent100": percent100,
    "CountByJobTypeAndState": count_requests_function(no_requests),
    "go_default": go_default,
    "go_trimPrefix": go_trim_prefix,
    "go_trimSuffix": go_trim_suffix,
    "go_hasPrefix": go_has_prefix,
    "go_hasSuffix": go_has_suffix,
    "go_lower": go_lower,
    "go_upper": go_upper,
    "go_contains": go_contains,
    "go_replace": go_replace,
    "go_atoi": go_atoi,
    "go_atof": go_atof,
    "go_split": go_split,
    "go_join": go_join,
    "go_eq": go_eq,
    "go_ne": go_ne,
    "go_lt": _compare("lt", operator.lt),
    "go_le": _compare("le", operator.le),
    "go_gt": _compare("gt", operator.gt),
    "go_ge": _compare("ge", operator.ge),
    "go_len": go_len,
    "go_index": go_index,
    "go_slice": go_slice,
    "go_printf": go_printf,
    "go_print": go_print,
    "go_println": go_println,
    "go_html": go_html,
    "go_js": go_js,
    "go_urlquery": go_urlquery,
    "go_range1": go_range1,
    "go_range2": go_range2,
    "go_with": go_with,
}


# ---------------------------------------------------------------------------------------------
# The sandbox


class _MeteredFormatter(budget.MeteredFormatterMixin, SandboxedFormatter):
    pass


class _MeteredEscapeFormatter(budget.MeteredFormatterMixin, SandboxedEscapeFormatter):
    pass


class _MeteredCodeGenerator(CodeGenerator):
    """jinja2's compiler, with ``a ~ b`` going through the budget (``metered_concat``)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.formica_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _FormicaSandbox(SandboxedEnvironment):
    """jinja2's sandbox, stricter: an unsafe attribute is an error, not a silent empty value; and
    metered (``formica.jobs.budget``): every hook ticks the render's deadline, and what can grow
    is estimated before it runs."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _MeteredCodeGenerator
    # What the compiled template calls (see _meter_tree and _MeteredCodeGenerator)
    formica_loop = staticmethod(budget.metered_loop)
    formica_value = staticmethod(budget.checked_value)
    formica_concat = staticmethod(budget.metered_concat)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} is not allowed")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        budget.tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget.tick()
        if __obj is budget.metered_loop or __obj is budget.checked_value:
            return __obj(*args)
        listed = budget.check_call(__obj, args, kwargs, generate_lorem_ipsum)
        if listed is not None:
            args = tuple(listed)
        result = super().call(__context, __obj, *args, **kwargs)
        budget.check_result(__obj, result)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """jinja2's str.format / format_map sandboxing, with a formatter that meters each field."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        f_self: Any = value.__self__
        if not isinstance(f_self, str):
            return None
        str_type: type[str] = type(f_self)
        is_format_map = value.__name__ == "format_map"
        formatter: SandboxedFormatter
        if isinstance(f_self, Markup):
            formatter = _MeteredEscapeFormatter(self, escape=f_self.escape)
        else:
            formatter = _MeteredFormatter(self)
        vformat = formatter.vformat

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            return str_type(vformat(f_self, args, kwargs))

        return update_wrapper(wrapper, value)


@pass_eval_context
def _finalize(eval_ctx: EvalContext, value: Any) -> str:
    """``{{ value }}`` printed the Go way. Taking the eval context keeps jinja2 from calling it
    while compiling (it would evaluate constant expressions outside the budget)."""
    return go_format(value)


@lru_cache(maxsize=1)
def _environment() -> _FormicaSandbox:
    env = _FormicaSandbox(
        undefined=ChainableUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_finalize,
        extensions=["jinja2.ext.loopcontrols"],
        optimized=False,  # no constant folding at compile time: every operation runs metered
    )
    env.concat = budget.bounded_concat  # type: ignore[method-assign]
    env.globals.update(FUNCTIONS)
    env.globals["range"] = budget.bounded_range
    env.filters["Unescape"] = unescape
    env.filters = {name: budget.metered_filter(name, func) for name, func in env.filters.items()}
    return env


def _meter_tree(tree: TemplateNode, env: _FormicaSandbox) -> None:
    """Route every ``{% for %}`` iterable and every ``{% set %}`` value through the budget."""
    for loop in list(tree.find_all(nodes.For)):
        loop.iter = _budget_call("formica_loop", loop.iter)
    for assign in list(tree.find_all(nodes.Assign)):
        assign.node = _budget_call("formica_value", assign.node)
    tree.set_environment(env)


def _budget_call(name: str, node: nodes.Node) -> nodes.Call:
    hook = nodes.EnvironmentAttribute(name, lineno=node.lineno)
    return nodes.Call(hook, [node], [], None, None, lineno=node.lineno)


@dataclass(frozen=True)
class _Compiled:
    template: Template
    free_names: frozenset[str]


@lru_cache(maxsize=256)
def _compile(text: str) -> _Compiled:
    """Translate and compile once per distinct text (a task renders on every attempt)."""
    try:
        source = translate(text)
    except TranslationError as exc:
        raise _template_error(text, exc.message, exc.line) from None
    except RecursionError:
        raise _template_error(text, "template nests too deeply", None) from None
    env = _environment()
    try:
        parsed: TemplateNode = env.parse(source, name=TEMPLATE_NAME)
        names = frozenset(meta.find_undeclared_variables(parsed)) - frozenset(FUNCTIONS)
        _meter_tree(parsed, env)
        return _Compiled(env.from_string(parsed), names)
    except TemplateSyntaxError as exc:
        raise _template_error(text, f"template syntax: {exc.message}", exc.lineno) from None
    except RecursionError:
        raise _template_error(text, "template nests too deeply", None) from None
    except (ValueError, OverflowError) as exc:  # a literal Python refuses (a 5,000-digit number)
        raise _template_error(text, f"template syntax: {exc}", None) from None


def variables_used(text: str) -> frozenset[str]:
    """The variable names a template reads (its free names), e.g. to list required params."""
    return _compile(text).free_names


_TASK_LINE = re.compile(r"^\s*-?\s*task_type\s*:\s*['\"]?([^'\"#\s{}]+)")


def task_type_at_line(text: str, line: int | None) -> str | None:
    """The task whose ``task_type:`` line is the nearest one at or above ``line`` (for messages)."""
    if line is None:
        return None
    lines = text.split("\n")
    for index in range(min(line, len(lines)) - 1, -1, -1):
        found = _TASK_LINE.match(lines[index])
        if found:
            return found.group(1)
        if lines[index].startswith("tasks:"):
            return None
    return None


def _template_error(text: str, message: str, line: int | None) -> TemplateError:
    return TemplateError(Problem(message, line=line, task_type=task_type_at_line(text, line)))


def _template_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in (TEMPLATE_NAME, "<template>"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _rendering_line(template: Template, stream: Any) -> int | None:
    """The template line a suspended render is at (where its output was over the limit)."""
    inner = stream
    while getattr(inner, "gi_yieldfrom", None) is not None:
        inner = inner.gi_yieldfrom
    frame = getattr(inner, "gi_frame", None)
    if frame is None or frame.f_code.co_filename not in (TEMPLATE_NAME, "<template>"):
        return None
    return int(template.get_corresponding_lineno(frame.f_lineno))


def _last_output_line(pieces: list[str]) -> int | None:
    """The source line of the last line marker output so far (the line being repeated)."""
    for piece in reversed(pieces):
        at = piece.rfind(MARK_OPEN)
        close = piece.find(MARK_CLOSE, at + 1) if at >= 0 else -1
        if close > at >= 0 and piece[at + 1 : close].isdigit():
            return int(piece[at + 1 : close])
    return None


def render_with_lines(text: str, context: Mapping[str, Any]) -> tuple[str, list[int]]:
    """Render ``text``; return the output and, per output line (0-based), its 1-based source line.

    The render is metered (``formica.jobs.budget``): a template over its budget is refused while
    it renders, with a TemplateError naming its line, its task and the limit.
    """
    template = _compile(text).template
    pieces: list[str] = []
    size = 0
    stream: Iterator[str] | None = None
    try:
        with budget.metered() as meter:
            stream = template.generate(dict(context))
            for piece in stream:
                size += len(piece)
                if size > budget.MAX_RENDERED_CHARS:
                    pieces.append(piece)
                    budget.over("MAX_RENDERED_CHARS", f"the rendered definition passed {size:,} characters")
                meter.tick()
                pieces.append(piece)
    except TemplateError:
        raise
    except BudgetExceeded as exc:
        line = (
            _template_line(exc.__traceback__)
            or _rendering_line(template, stream)
            or _last_output_line(pieces)
        )
        raise _template_error(text, str(exc), line) from None
    except SecurityError as exc:
        line = _template_line(exc.__traceback__)
        raise _template_error(text, f"template refused by the sandbox: {exc}", line) from None
    except RecursionError:
        raise _template_error(text, "template nests too deeply", None) from None
    except (JinjaTemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        # Template code is user code: any of these is the template's fault, reported at its line.
        line = _template_line(exc.__traceback__)
        raise _template_error(text, f"template error: {exc}", line) from None
    last_line = text.count("\n") + 1
    return strip_markers("".join(pieces), default_line=last_line)


def render(text: str, context: Mapping[str, Any]) -> str:
    """Render a template (Go or jinja2 syntax) with ``context``; raise TemplateError on failure."""
    rendered, _ = render_with_lines(text, context)
    return rendered


def uses_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def runtime_context(
    *,
    job_id: str,
    job_type: str,
    org: str,
    user_id: str = "",
    job_retry: int = 0,
    job_elapsed_secs: int = 0,
    task_type: str = "",
    task_retry: int = 0,
    params: Mapping[str, Any] | None = None,
    job_variables: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    count_requests: RequestCounter | None = None,
) -> dict[str, Any]:
    """The variables a template sees for one render (one attempt of one task).

    Precedence, lowest first: job_variables, then request params, then earlier tasks' outputs,
    then the built-ins, which nothing overrides. ``Nonce`` is fresh on every call, so build a new
    context for every attempt. ``count_requests`` answers ``CountByJobTypeAndState`` (the
    organisation's own requests, from the request store); without it the count is 0.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    context: dict[str, Any] = {}
    context.update(job_variables or {})
    context.update(params or {})
    context.update(outputs or {})
    context.update(
        {
            "JobID": JobIdText(job_id),
            "JobType": job_type,
            "JobRetry": job_retry,
            "JobElapsedSecs": job_elapsed_secs,
            "TaskType": task_type,
            "TaskRetry": task_retry,
            "Nonce": secrets.token_hex(8),
            "UserID": user_id,
            "OrganizationID": org,
            "DateYear": moment.year,
            "DateMonth": MONTH_NAMES[moment.month - 1],
            "DateDay": moment.day,
            "YearDay": moment.timetuple().tm_yday,
            "FullDate": moment.strftime("%Y-%m-%d"),
            "EpochSecs": int(moment.timestamp()),
            "CountByJobTypeAndState": count_requests_function(count_requests or no_requests),
        }
    )
    return context


def validation_context(
    *,
    job_type: str = "",
    job_variables: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Zero values for every runtime variable (JobID: ``VALIDATION_JOB_ID``, never empty at run
    time), plus the definition's own job_variables and params."""
    context = runtime_context(
        job_id=VALIDATION_JOB_ID,
        job_type=job_type,
        org="",
        params=params,
        job_variables=job_variables,
        now=datetime(1970, 1, 1, tzinfo=UTC),
    )
    context["Nonce"] = ""
    return context
