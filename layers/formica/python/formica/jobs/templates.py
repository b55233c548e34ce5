"""Templates: formicary's Go template syntax rendered by jinja2's sandbox.

A definition is a template of YAML. ``render`` translates Go actions to jinja2 (see
``gotemplate``), compiles once (LRU cache: a task is rendered on every attempt), and renders in a
``SandboxedEnvironment`` whose undefined values behave like Go's missing map keys: they render
empty and are false in conditions. Attribute tricks (``{{ ''.__class__ }}``) raise ``TemplateError``.

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
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, NoReturn

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, Undefined, meta
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError
from jinja2.nodes import Template as TemplateNode
from jinja2.sandbox import SandboxedEnvironment

from formica.jobs.errors import Problem, TemplateError
from formica.jobs.gotemplate import TranslationError, strip_markers, translate

TEMPLATE_NAME = "<job-definition>"
MAX_ITERATE = 1_000
"""Largest ``Iterate n`` accepted: a definition holds at most 100 tasks, 1,000 leaves room."""
MAX_RENDERED_CHARS = 1_048_576
"""Rendered output is cut off (TemplateError) beyond 1 MiB: a loop must not fill memory."""
MAX_REPEAT_CHARS = 100_000

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
    if isinstance(value, Undefined) or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
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
    return urllib.parse.quote_plus(go_print(*args))


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
    if count > MAX_ITERATE:
        _fail(f"Iterate {count} is more than the limit of {MAX_ITERATE}")
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


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "Random": random_between,
    "Iterate": iterate,
    "Add": add,
    "Unescape": unescape,
    "Dict": make_dict,
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


class _FormicaSandbox(SandboxedEnvironment):
    """jinja2's sandbox, stricter: an unsafe attribute is an error, not a silent empty value."""

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} is not allowed")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _number(right) is not None and abs(_number(right) or 0) > 64:
            raise SecurityError("exponent too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_REPEAT_CHARS:
                    raise SecurityError("repetition too large")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=1)
def _environment() -> _FormicaSandbox:
    env = _FormicaSandbox(
        undefined=ChainableUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=go_format,
        extensions=["jinja2.ext.loopcontrols"],
    )
    env.globals.update(FUNCTIONS)
    env.filters["Unescape"] = unescape
    return env


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
        return _Compiled(env.from_string(parsed), names)
    except TemplateSyntaxError as exc:
        raise _template_error(text, f"template syntax: {exc.message}", exc.lineno) from None
    except RecursionError:
        raise _template_error(text, "template nests too deeply", None) from None


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


def render_with_lines(text: str, context: Mapping[str, Any]) -> tuple[str, list[int]]:
    """Render ``text``; return the output and, per output line (0-based), its 1-based source line."""
    template = _compile(text).template
    pieces: list[str] = []
    size = 0
    try:
        stream: Iterator[str] = template.generate(dict(context))
        for piece in stream:
            size += len(piece)
            if size > MAX_RENDERED_CHARS:
                raise _template_error(
                    text, f"rendered definition is larger than {MAX_RENDERED_CHARS} characters", None
                )
            pieces.append(piece)
    except TemplateError:
        raise
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
) -> dict[str, Any]:
    """The variables a template sees for one render (one attempt of one task).

    Precedence, lowest first: job_variables, then request params, then earlier tasks' outputs,
    then the built-ins, which nothing overrides. ``Nonce`` is fresh on every call, so build a new
    context for every attempt.
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
            "DateMonth": moment.month,
            "DateDay": moment.day,
            "YearDay": moment.timetuple().tm_yday,
            "FullDate": moment.strftime("%Y-%m-%d"),
            "EpochSecs": int(moment.timestamp()),
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
