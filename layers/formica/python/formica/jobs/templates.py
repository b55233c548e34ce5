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
