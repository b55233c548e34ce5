"""Safe YAML loading that remembers where every key and item came from.

Only the YAML core types are built (maps, lists, strings, numbers, booleans, null); any other tag
is an error. Plain scalars resolve by YAML 1.2's core schema, as Go's yaml.v3 (formicary's
parser) does: ``on``/``yes`` stay strings and ``2024-01-01`` is not a date. Aliases are expanded
with a budget on nodes and depth, so an alias bomb is refused instead of filling memory.
Duplicate keys are errors, as in yaml.v3.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from formica.jobs.errors import DefinitionError, Problem

MAX_NODES = 50_000
"""Nodes built after alias expansion; a 256 KiB definition with no aliases stays far below."""
MAX_DEPTH = 64

Path = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_IMPLICIT = frozenset(
    {
        _STR,
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:timestamp",
        "tag:yaml.org,2002:value",
    }
)

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_BOOL_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

# libyaml when present: same nodes and marks, faster
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlInt(int):
    """An integer read from YAML that remembers how it was written (``007``, ``0x1F``)."""

    yaml_text: str

    def __new__(cls, value: int, text: str = "") -> YamlInt:
        number = super().__new__(cls, value)
        number.yaml_text = text or str(value)
        return number

    def __reduce__(self) -> tuple[Any, ...]:
        return (YamlInt, (int(self), self.yaml_text))

    def __repr__(self) -> str:
        return int.__repr__(self)


class YamlFloat(float):
    """A float read from YAML that remembers how it was written (``1.0``, ``1.10``)."""

    yaml_text: str

    def __new__(cls, value: float, text: str = "") -> YamlFloat:
        number = super().__new__(cls, value)
        number.yaml_text = text or repr(value)
        return number

    def __reduce__(self) -> tuple[Any, ...]:
        return (YamlFloat, (float(self), self.yaml_text))

    def __repr__(self) -> str:
        return float.__repr__(self)


def resolve_plain(value: str) -> Any:
    """YAML 1.2 core schema resolution of a plain (unquoted) scalar."""
    if _NULL.match(value):
        return None
    if _BOOL_TRUE.match(value):
        return True
    if _BOOL_FALSE.match(value):
        return False
    # Numbers keep their text: a string field reads `1.10` as "1.10", as Go's yaml.v3 does.
    if _INT10.match(value):
        return YamlInt(int(value), value)
    if _INT8.match(value):
        return YamlInt(int(value[2:], 8), value)
    if _INT16.match(value):
        return YamlInt(int(value[2:], 16), value)
    if _FLOAT.match(value):
        return YamlFloat(float(value), value)
    if _INF.match(value):
        return float("-inf") if value.startswith("-") else float("inf")
    if _NAN.match(value):
        return float("nan")
    return value


class _Builder:
    def __init__(self, line_of: Callable[[int], int]) -> None:
        self.line_of = line_of
        self.positions: dict[Path, int] = {}
        self.nodes = 0
        self.problems: list[Problem] = []

    def line(self, node: yaml.Node) -> int:
        return self.line_of(node.start_mark.line)

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise DefinitionError(
                Problem(
                    f"definition has more than {MAX_NODES} YAML nodes (alias expansion?)", self.line(node)
                )
            )
        if depth > MAX_DEPTH:
            raise DefinitionError(
                Problem(f"definition nests deeper than {MAX_DEPTH} levels", self.line(node))
            )
        self.positions.setdefault(path, self.line(node))
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if isinstance(node, yaml.SequenceNode):
            self.check_tag(node, _SEQ)
            return [self.build(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            self.check_tag(node, _MAP)
            result: dict[Any, Any] = {}
            self.mapping(node, path, depth, result, merged=set())
            return result
        raise DefinitionError(Problem("unsupported YAML node", self.line(node)))  # pragma: no cover

    def mapping(
        self, node: yaml.MappingNode, path: Path, depth: int, result: dict[Any, Any], merged: set[Any] | None
    ) -> None:
        """Fill ``result``; ``merged`` holds keys that came from ``<<`` (None while merging)."""
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        raise DefinitionError(Problem("'<<' merges only mappings", self.line(value_node)))
                    before = set(result)
                    self.mapping(source, path, depth, result, merged=None)
                    if merged is not None:
                        merged.update(set(result) - before)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise DefinitionError(Problem("mapping keys must be plain values", self.line(key_node)))
            key = self.scalar(key_node)
            if isinstance(key, float | bool) or key is None:
                key = key_node.value
            key_path = (*path, str(key))
            if key in result:
                if merged is None:
                    continue  # while merging, the first source wins
                if key in merged:
                    merged.discard(key)  # a key written in the mapping itself wins over a merged one
                else:
                    self.problems.append(Problem(f"duplicate key {str(key)!r}", self.line(key_node)))
                    continue
            self.positions[key_path] = self.line(key_node)
            result[key] = self.build(value_node, key_path, depth + 1)
            self.positions[key_path] = self.line(key_node)

    def check_tag(self, node: yaml.Node, expected: str) -> None:
        if node.tag != expected:
            raise DefinitionError(Problem(f"YAML tag {node.tag!r} is not allowed", self.line(node)))

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag not in _IMPLICIT:
            raise DefinitionError(Problem(f"YAML tag {node.tag!r} is not allowed", self.line(node)))
        if not node.style:  # plain (PyYAML says None, libyaml says ""): resolve by YAML 1.2 rules
            return resolve_plain(node.value)
        return node.value


def load_yaml(text: str, line_of: Callable[[int], int] | None = None) -> tuple[Any, dict[Path, int]]:
    """Parse one YAML document; return the data and the source line of every key path.

    ``line_of`` maps a 0-based line of ``text`` to the 1-based line to report (the original line
    of a rendered template). Raises DefinitionError with the line on any YAML problem.
    """
    mapper = line_of or (lambda index: index + 1)
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mapper(mark.line) if mark is not None else None
        context = exc.context
        if context and exc.context_mark is not None and mapper(exc.context_mark.line) != line:
            context = f"{context} (line {mapper(exc.context_mark.line)})"
        message = " ".join(part for part in (context, exc.problem) if part) or "invalid YAML"
        raise DefinitionError(Problem(f"YAML: {message}", line)) from None
    except yaml.YAMLError as exc:
        raise DefinitionError(Problem(f"YAML: {exc}")) from None
    if node is None:
        return None, {}
    builder = _Builder(mapper)
    data = builder.build(node, (), 0)
    if builder.problems:
        raise DefinitionError(builder.problems)
    return data, builder.positions
