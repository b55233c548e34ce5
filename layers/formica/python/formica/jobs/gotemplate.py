"""Translate formicary's Go template syntax into jinja2 source, line for line.

formicary definitions are Go ``text/template`` documents; Formica renders them with jinja2's
sandbox. This module rewrites each Go action (``{{ if lt .JobElapsedSecs 3 }}``,
``{{ range $i, $x := Iterate 5 }}``, ``{{ .Var | Unescape }}`` ...) into the jinja2 tag that
means the same thing, and passes native jinja2 (``{{ Random(0, 5) }}``, ``{% if %}``) through.

Two properties the rest of the package relies on:

* Line numbers are kept: every newline of the input is still in the output at the same line
  (newlines that Go's ``{{-``/``-}}`` trimming removes are moved *inside* the tag, where they
  render nothing), so jinja2's error line numbers are the user's line numbers.
* Each literal line of text ends with an invisible *line marker* (``\\ue000<n>\\ue001``) before its
  newline. Markers pass through rendering untouched, so the rendered text says which source line
  produced each output line, including lines repeated by ``range``. ``strip_markers`` removes them
  and returns the line map.

Trimming is done here, statically, exactly as Go does it (it is a lexical operation), so the
emitted jinja2 has no ``-`` trim markers and a line marker can never block a trim.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

MARK_OPEN = "\ue000"
MARK_CLOSE = "\ue001"
_MARK_RE = re.compile(f"{MARK_OPEN}(\\d+){MARK_CLOSE}")

# Go's builtin template functions and how each is written in jinja2 (None: special form).
GO_BUILTINS: dict[str, str | None] = {
    "and": None,
    "or": None,
    "not": None,
    "eq": "go_eq",
    "ne": "go_ne",
    "lt": "go_lt",
    "le": "go_le",
    "gt": "go_gt",
    "ge": "go_ge",
    "len": "go_len",
    "index": "go_index",
    "slice": "go_slice",
    "printf": "go_printf",
    "print": "go_print",
    "println": "go_println",
    "html": "go_html",
    "js": "go_js",
    "urlquery": "go_urlquery",
}
# formicary's string, number and time helpers (sprig's names and argument order: the subject comes
# last, so it can be piped in) and the jinja2 global each becomes; a ``go_`` name no param can shadow.
GO_HELPERS: dict[str, str] = {
    "default": "go_default",
    "trimPrefix": "go_trimPrefix",
    "trimSuffix": "go_trimSuffix",
    "hasPrefix": "go_hasPrefix",
    "hasSuffix": "go_hasSuffix",
    "lower": "go_lower",
    "upper": "go_upper",
    "contains": "go_contains",
    "replace": "go_replace",
    "atoi": "go_atoi",
    "atof": "go_atof",
    "split": "go_split",
    "join": "go_join",
    "formatTime": "FormatTime",
}
# formicary's functions (and Formica's additions): called by their own name in jinja2.
FORMICARY_FUNCTIONS = frozenset(
    {
        "Random",
        "Iterate",
        "Add",
        "Unescape",
        "Dict",
        "MarkdownLink",
        "FormatTime",
        "Percent100",
        "CountByJobTypeAndState",
    }
)
KNOWN_FUNCTIONS = frozenset(GO_BUILTINS) | frozenset(GO_HELPERS) | FORMICARY_FUNCTIONS
# Helpers that are also jinja2 filters: ``{{ name | upper }}`` stays jinja2 (the same result);
# ``{{ name | default "x" }}`` (an argument without parentheses) can only be Go.
_SHARED_WITH_JINJA = frozenset({"default", "lower", "upper", "replace", "join"})

_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)

_TOKEN_RE = re.compile(
    r"""
     (?P<ws>\s+)
    |(?P<str>"(?:\\.|[^"\\])*")
    |(?P<raw>`[^`]*`)
    |(?P<num>[-+]?(?:0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
    |(?P<decl>:=)
    |(?P<assign>=)
    |(?P<pipe>\|)
    |(?P<lparen>\()
    |(?P<rparen>\))
    |(?P<comma>,)
    |(?P<field>(?:\.[A-Za-z_]\w*)+|\.)
    |(?P<var>\$[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*|\$(?:\.[A-Za-z_]\w*)*)
    |(?P<ident>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
    """,
    re.VERBOSE,
)

_GO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b"}
_GO_ESCAPES.update({"f": "\f", "v": "\v", "0": "\0"})


class TranslationError(Exception):
    """A Go template construct that cannot be translated; ``line`` is 1-based in the source."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class _Token:
    kind: str
    text: str
    start: int
    end: int


class _NotGo(Exception):
    """The action is not Go template syntax (so it is passed to jinja2 as written)."""


@dataclass
class _Block:
    kind: str  # "if" | "range" | "with"
    line: int
    dot: str | None  # the jinja2 name bound to Go's "." inside this block


@dataclass
class _State:
    blocks: list[_Block] = field(default_factory=list)
    counter: int = 0

    @property
    def dot(self) -> str | None:
        for block in reversed(self.blocks):
            if block.dot is not None:
                return block.dot
        return None

    def fresh_dot(self) -> str:
        self.counter += 1
        return f"_dot{self.counter}"


def marker(line: int) -> str:
    return f"{MARK_OPEN}{line}{MARK_CLOSE}"


def strip_markers(rendered: str, default_line: int = 1) -> tuple[str, list[int]]:
    """Remove line markers; return the clean text and, per output line (0-based), its source line.

    An output line's source is the first marker at or after it: markers sit at the end of
    source lines, and a value that expands to several lines belongs to the line it was written on.
    """
    out_lines: list[str] = []
    origins: list[int | None] = []
    for raw_line in rendered.split("\n"):
        found = _MARK_RE.search(raw_line)
        origins.append(int(found.group(1)) if found else None)
        out_lines.append(_MARK_RE.sub("", raw_line) if found else raw_line)
    resolved: list[int] = [default_line] * len(origins)
    following = default_line
    for index in range(len(origins) - 1, -1, -1):
        origin = origins[index]
        if origin is not None:
            following = origin
        resolved[index] = following
    return "\n".join(out_lines), resolved


def translate(text: str) -> str:
    """Return jinja2 source (with line markers) equivalent to the Go/jinja2 template ``text``."""
    out: list[str] = []
    state = _State()
    pos = 0
    line = 1  # line of text[pos]
    length = len(text)
    while pos < length:
        opener_at = _find_opener(text, pos)
        if opener_at < 0:
            _emit_literal(out, text[pos:], line)
            break
        opener = text[opener_at : opener_at + 2]
        trim_left = _has_left_trim(text, opener_at, opener)
        literal = text[pos:opener_at]
        moved_left = 0
        if trim_left:
            kept = literal.rstrip()
            removed = literal[len(kept) :]
            moved_left = removed.count("\n")
            _emit_literal(out, kept, line)
            if moved_left:
                out.append(marker(line + kept.count("\n")))
        else:
            _emit_literal(out, literal, line)
        line += literal.count("\n")
        tag_line = line
        content_start = opener_at + 2 + (1 if trim_left else 0)
        closer = {"{{": "}}", "{%": "%}", "{#": "#}"}[opener]
        content_end = _find_closer(text, content_start, closer, opener, tag_line)
        content = text[content_start:content_end]
        pos = content_end + 2
        trim_right = _has_right_trim(content, opener)
        if trim_right:
            content = content[:-1]
        inner_newlines = content.count("\n")
        line += inner_newlines
        moved_right = 0
        if trim_right:
            rest = text[pos:]
            stripped = rest.lstrip()
            skipped = rest[: len(rest) - len(stripped)]
            moved_right = skipped.count("\n")
            pos += len(skipped)
            line += moved_right
        body = _translate_tag(opener, content, state, tag_line)
        out.append(_wrap(body, moved_left, inner_newlines + moved_right))
    if state.blocks:
        block = state.blocks[-1]
        raise TranslationError(
            f"{{{{ {block.kind} }}}} opened here is never closed with {{{{ end }}}}", block.line
        )
    return "".join(out)


_JINJA_OPENER = re.compile(r"\{\{|\{%[\s\-+]|\{#[\s\-]")


def _find_opener(text: str, start: int) -> int:
    """The next tag: ``{{`` always (as in Go); ``{%`` and ``{#`` only when written as jinja2 tags.

    Shell code is full of ``${#array[@]}``: a ``{#`` or ``{%`` not followed by a space (or a trim
    dash) is text, as it is for formicary, and a ``{#`` comment needs its ``#}``.
    """
    pos = start
    while True:
        match = _JINJA_OPENER.search(text, pos)
        if match is None:
            return -1
        at = match.start()
        if text.startswith("{#", at) and text.find("#}", at + 2) < 0:
            pos = at + 2
            continue
        return at


def _has_left_trim(text: str, at: int, opener: str) -> bool:
    after = text[at + 2 : at + 4]
    if not after.startswith("-"):
        return False
    if opener == "{{":
        # Go needs a space after the dash ("{{-3}}" is the number -3); jinja2 does not.
        return len(after) < 2 or after[1].isspace() or after[1] in "}."
    return True


def _has_right_trim(content: str, opener: str) -> bool:
    if not content.endswith("-"):
        return False
    if opener == "{{":
        return len(content) < 2 or content[-2].isspace()
    return True


def _find_closer(text: str, start: int, closer: str, opener: str, line: int) -> int:
    quotes = "" if opener == "{#" else ('"`' if opener == "{{" else "\"'")
    pos = start
    length = len(text)
    while pos < length:
        char = text[pos]
        if char in quotes:
            end = pos + 1
            while end < length and text[end] != char:
                if text[end] == "\\" and char != "`":
                    end += 1
                end += 1
            if end >= length:
                break
            pos = end + 1
            continue
        if text.startswith(closer, pos):
            return pos
        pos += 1
    raise TranslationError(f"unclosed template tag {opener}: no matching {closer}", line)


def _emit_literal(out: list[str], literal: str, line: int) -> None:
    if not literal:
        return
    # "{%" and "{#" that are text (see _find_opener) must not open a tag in jinja2 either
    literal = _LITERAL_OPENERS.sub(lambda m: "{{ '" + m.group() + "' }}", literal)
    pieces = literal.split("\n")
    for offset, piece in enumerate(pieces[:-1]):
        out.append(piece)
        out.append(marker(line + offset))
        out.append("\n")
    out.append(pieces[-1])


_LITERAL_OPENERS = re.compile(r"\{[%#]")


def _wrap(body: tuple[str, str], newlines_before: int, newlines_after: int) -> str:
    kind, inner = body
    before = "\n" * newlines_before
    after = "\n" * newlines_after
    if kind == "comment":
        return "{#" + before + after + "#}"
    if kind == "stmt":
        return "{%" + before + " " + inner + " " + after + "%}"
    return "{{" + before + " " + inner + " " + after + "}}"


def _translate_tag(opener: str, content: str, state: _State, line: int) -> tuple[str, str]:
    if opener == "{#":
        return ("comment", "")
    stripped = content.strip()
    if opener == "{%":
        return ("stmt", stripped)
    if stripped.startswith("/*") and stripped.endswith("*/"):
        return ("comment", "")
    if not stripped:
        raise TranslationError("empty template action {{ }}", line)
    return _translate_action(stripped, state, line)


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN_RE.match(source, pos)
        if not match or match.end() == pos:
            raise _NotGo(source[pos:])
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), match.start(), match.end()))
        pos = match.end()
    return tokens


def _looks_like_go_expression(tokens: list[_Token]) -> bool:
    if not tokens:
        return False
    if any(token.kind == "comma" for token in tokens):
        return False
    for left, right in itertools.pairwise(tokens):
        if left.kind in ("ident", "field", "var") and right.kind == "lparen" and left.end == right.start:
            return False  # "f(x)": a jinja2 call
    first = tokens[0]
    if first.kind in ("field", "var", "lparen") or any(token.kind == "raw" for token in tokens):
        return True
    if first.kind == "ident" and first.text in KNOWN_FUNCTIONS and len(tokens) > 1:
        return True
    # "x | printf ..." pipes into a Go function; "x | default "a"" too (a jinja2 filter name, but
    # its argument is written the Go way)
    for index, (left, right) in enumerate(itertools.pairwise(tokens)):
        if left.kind != "pipe" or right.kind != "ident" or right.text not in KNOWN_FUNCTIONS:
            continue
        if right.text not in _SHARED_WITH_JINJA:
            return True
        following = tokens[index + 2] if index + 2 < len(tokens) else None
        if following is not None and following.kind in _OPERANDS:
            return True
    return False


_JINJA_WORDS = frozenset({"if", "else", "in", "is", "and", "or", "not", "for", "recursive"})
_OPERANDS = frozenset({"str", "raw", "num", "field", "var", "ident", "lparen"})


def _looks_like_unknown_go_call(tokens: list[_Token]) -> bool:
    """``{{ Foo 1 }}``: Go calling a function Formica does not have (never valid jinja2 either)."""
    if len(tokens) < 2 or tokens[0].kind != "ident" or tokens[1].kind not in _OPERANDS:
        return False
    if tokens[1].kind == "lparen" and tokens[1].start == tokens[0].end:
        return False
    return not any(token.kind == "ident" and token.text in _JINJA_WORDS for token in tokens)


def _translate_action(source: str, state: _State, line: int) -> tuple[str, str]:
    word = source.split(None, 1)[0] if source else ""
    rest = source[len(word) :].strip()
    if word in _KEYWORDS:
        return _translate_keyword(word, rest, state, line)
    try:
        tokens = _tokenize(source)
    except _NotGo:
        return ("expr", source)
    if len(tokens) >= 2 and tokens[0].kind == "var" and tokens[1].kind in ("decl", "assign"):
        name = _variable_name(tokens[0].text, state, line)
        value = _Parser(tokens[2:], state, line).pipeline_all()
        return ("stmt", f"set {name} = {value}")
    if not _looks_like_go_expression(tokens):
        if _looks_like_unknown_go_call(tokens):
            raise TranslationError(f'function "{tokens[0].text}" is not defined', line)
        return ("expr", source)
    return ("expr", _Parser(tokens, state, line).pipeline_all())


def _condition(source: str, state: _State, line: int) -> str:
    """A Go pipeline when it is one, else the text as a jinja2 expression (mixed use is allowed)."""
    if not source:
        raise TranslationError("missing condition", line)
    try:
        tokens = _tokenize(source)
    except _NotGo:
        return source
    if not _looks_like_go_expression(tokens) and not (
        len(tokens) >= 1 and tokens[0].kind == "ident" and tokens[0].text in KNOWN_FUNCTIONS
    ):
        return source
    return _Parser(tokens, state, line).pipeline_all()


def _translate_keyword(word: str, rest: str, state: _State, line: int) -> tuple[str, str]:
    if word == "if":
        state.blocks.append(_Block("if", line, None))
        return ("stmt", f"if {_condition(rest, state, line)}")
    if word == "else":
        if not state.blocks:
            raise TranslationError("{{ else }} without an open {{ if }} or {{ range }}", line)
        top = state.blocks[-1]
        if not rest:
            return ("stmt", "else")
        if rest.split(None, 1)[0] == "if" and top.kind == "if":
            return ("stmt", f"elif {_condition(rest[2:].strip(), state, line)}")
        raise TranslationError(f"{{{{ else {rest} }}}} is not supported inside {{{{ {top.kind} }}}}", line)
    if word == "end":
        if rest:
            raise TranslationError("{{ end }} takes no arguments", line)
        if not state.blocks:
            raise TranslationError("{{ end }} without an open {{ if }}, {{ range }} or {{ with }}", line)
        block = state.blocks.pop()
        return ("stmt", "endif" if block.kind == "if" else "endfor")
    if word == "range":
        return _translate_range(rest, state, line)
    if word == "with":
        return _translate_with(rest, state, line)
    if word in ("break", "continue"):
        if not any(block.kind == "range" for block in state.blocks):
            raise TranslationError(f"{{{{ {word} }}}} outside {{{{ range }}}}", line)
        return ("stmt", word)
    raise TranslationError(f"Go template action {{{{ {word} }}}} is not supported by Formica", line)


def _split_declaration(rest: str, state: _State, line: int) -> tuple[list[str], list[_Token]]:
    try:
        tokens = _tokenize(rest)
    except _NotGo as exc:
        raise TranslationError(f"cannot read Go template expression {rest!r}", line) from exc
    for index, token in enumerate(tokens):
        if token.kind in ("decl", "assign"):
            names = [t for t in tokens[:index] if t.kind != "comma"]
            if not names or any(t.kind != "var" for t in names) or len(names) > 2:
                raise TranslationError(f"bad variable declaration in {rest!r}", line)
            return [_variable_name(t.text, state, line) for t in names], tokens[index + 1 :]
    return [], tokens


def _translate_range(rest: str, state: _State, line: int) -> tuple[str, str]:
    names, tokens = _split_declaration(rest, state, line)
    if not tokens:
        raise TranslationError("{{ range }} needs something to range over", line)
    iterable = _Parser(tokens, state, line).pipeline_all()
    if len(names) == 2:
        state.blocks.append(_Block("range", line, None))
        return ("stmt", f"for {names[0]}, {names[1]} in go_range2({iterable})")
    if len(names) == 1:
        state.blocks.append(_Block("range", line, names[0]))
        return ("stmt", f"for {names[0]} in go_range1({iterable})")
    dot = state.fresh_dot()
    state.blocks.append(_Block("range", line, dot))
    return ("stmt", f"for {dot} in go_range1({iterable})")


def _translate_with(rest: str, state: _State, line: int) -> tuple[str, str]:
    names, tokens = _split_declaration(rest, state, line)
    if not tokens or len(names) > 1:
        raise TranslationError("{{ with }} needs one value", line)
    value = _Parser(tokens, state, line).pipeline_all()
    name = names[0] if names else state.fresh_dot()
    state.blocks.append(_Block("with", line, name))
    return ("stmt", f"for {name} in go_with({value})")


def _variable_name(text: str, state: _State, line: int) -> str:
    if text == "$" or text.startswith("$."):
        raise TranslationError("'$' (the root context) is not supported: name the variable directly", line)
    return text[1:]


def _go_string(token: _Token, line: int) -> str:
    if token.kind == "raw":
        return repr(token.text[1:-1])
    body = token.text[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            if nxt in _GO_ESCAPES:
                out.append(_GO_ESCAPES[nxt])
                index += 2
                continue
            if nxt in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[nxt]
                digits = body[index + 2 : index + 2 + width]
                try:
                    out.append(chr(int(digits, 16)))
                except ValueError as exc:
                    raise TranslationError(f"bad escape in string {token.text}", line) from exc
                index += 2 + width
                continue
            raise TranslationError(f"bad escape in string {token.text}", line)
        out.append(char)
        index += 1
    return repr("".join(out))


class _Parser:
    """Recursive descent over one Go pipeline, producing a jinja2 expression."""

    def __init__(self, tokens: list[_Token], state: _State, line: int) -> None:
        self.tokens = tokens
        self.pos = 0
        self.state = state
        self.line = line

    def _peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _fail(self, message: str) -> TranslationError:
        return TranslationError(message, self.line)

    def pipeline_all(self) -> str:
        expr = self.pipeline()
        extra = self._peek()
        if extra is not None:
            raise self._fail(f"unexpected {extra.text!r} in template action")
        return expr

    def pipeline(self) -> str:
        expr = self.command(None)
        while (token := self._peek()) is not None and token.kind == "pipe":
            self.pos += 1
            expr = self.command(expr)
        return expr

    def command(self, piped: str | None) -> str:
        token = self._peek()
        if token is None:
            raise self._fail("missing value in template action")
        if token.kind == "ident" and token.text in KNOWN_FUNCTIONS:
            self.pos += 1
            args = self._arguments()
            if piped is not None:
                args.append(piped)
            return self._call(token.text, args)
        if token.kind == "ident" and token.text not in ("true", "false", "nil") and self._has_more_args(1):
            raise self._fail(f'function "{token.text}" is not defined')
        if piped is not None:
            if token.kind == "ident" and token.text not in ("true", "false", "nil"):
                raise self._fail(f'function "{token.text}" is not defined')
            raise self._fail("can only pipe into a function")
        value = self.operand()
        if self._peek() is not None and self._peek_is_operand():
            raise self._fail(f"{value} is not a function and cannot take arguments")
        return value

    def _has_more_args(self, offset: int) -> bool:
        index = self.pos + offset
        return index < len(self.tokens) and self.tokens[index].kind not in ("pipe", "rparen")

    def _peek_is_operand(self) -> bool:
        token = self._peek()
        return token is not None and token.kind not in ("pipe", "rparen")

    def _arguments(self) -> list[str]:
        args: list[str] = []
        while self._peek_is_operand():
            args.append(self.operand())
        return args

    def operand(self) -> str:
        token = self._peek()
        if token is None:
            raise self._fail("missing value in template action")
        self.pos += 1
        if token.kind in ("str", "raw"):
            return _go_string(token, self.line)
        if token.kind == "num":
            text = token.text.replace("_", "")
            if text.lower().lstrip("+-").startswith("0x"):
                return str(int(text, 16))
            return text
        if token.kind == "field":
            return self._field(token.text)
        if token.kind == "var":
            if token.text == "$" or token.text.startswith("$."):
                if token.text == "$":
                    raise self._fail("'$' (the root context) is not supported: name the variable directly")
                return token.text[2:]
            return token.text[1:]
        if token.kind == "ident":
            if token.text == "nil":
                return "none"
            return token.text
        if token.kind == "lparen":
            inner = self.pipeline()
            closing = self._peek()
            if closing is None or closing.kind != "rparen":
                raise self._fail("missing ')' in template action")
            self.pos += 1
            expr = f"({inner})"
            following = self._peek()
            if following is not None and following.kind == "field" and following.start == closing.end:
                self.pos += 1
                expr += following.text
            return expr
        raise self._fail(f"unexpected {token.text!r} in template action")

    def _field(self, text: str) -> str:
        dot = self.state.dot
        if text == ".":
            if dot is None:
                raise self._fail("'.' (the whole context) is not supported here: name the variable")
            return dot
        return f"{dot}{text}" if dot is not None else text[1:]

    def _call(self, name: str, args: list[str]) -> str:
        if name in ("and", "or"):
            if not args:
                raise self._fail(f"{name} needs at least one argument")
            return "(" + f" {name} ".join(args) + ")"
        if name == "not":
            if len(args) != 1:
                raise self._fail("not takes exactly one argument")
            return f"(not {args[0]})"
        target = GO_BUILTINS.get(name) or GO_HELPERS.get(name) or name
        return f"{target}({', '.join(args)})"
