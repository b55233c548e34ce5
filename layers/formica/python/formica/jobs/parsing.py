"""From YAML text to a validated JobDefinition: render, load with lines, validate, check rules.

The text is a template, so it is rendered first (``templates.render_with_lines``), which also says
which original line produced each rendered line; YAML nodes, pydantic errors and rule violations
are then reported at the original line. Upload (``parse_definition``) renders with a validation
context of zero values; run time (``load_definition`` / ``render_task``) renders with the real one.

Run time renders on every attempt (JobElapsedSecs, Nonce, Random... change), but what follows the
render is a function of the rendered text alone: ``load_definition`` keeps the definitions it built
(and the job_variables its probe read) by (text, rendered text), so an attempt whose render comes
out the same as an earlier one's skips the YAML load, the models and the rules; a text without
template tags is not even rendered again.
"""

from __future__ import annotations

import copy
import difflib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from formica.jobs import models
from formica.jobs.errors import DefinitionError, DefinitionTooLargeError, Problem
from formica.jobs.limits import (
    DEFINITION_MAX_BYTES,
    DEFINITION_PARSED_MAX_BYTES,
    MAX_TASKS,
    definition_size_problem,
)
from formica.jobs.models import JobDefinition, TaskDefinition, TaskMethod
from formica.jobs.templates import (
    BUILTIN_VARIABLES,
    render_with_lines,
    task_type_at_line,
    uses_template,
    validation_context,
    variables_used,
)
from formica.jobs.validation import Locator, check_definition, did_you_mean
from formica.jobs.yamlload import Path, load_yaml

MAX_DEFINITION_BYTES = DEFINITION_MAX_BYTES
"""Definitions larger than this are refused before any parsing (``formica.jobs.limits``)."""
RUNTIME_CACHE_SIZE = 32
"""Definitions (and job_variables probes) kept by ``load_definition``, per process."""

_V = TypeVar("_V")


class _Lru(Generic[_V]):
    """A small thread-safe LRU map from (text, rendered text) to what was built from them."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_BUILT: _Lru[JobDefinition] = _Lru(RUNTIME_CACHE_SIZE)
_PROBED: _Lru[dict[str, Any]] = _Lru(RUNTIME_CACHE_SIZE)


def clear_runtime_cache() -> None:
    """Forget the definitions ``load_definition`` kept (benchmarks and tests measure the first load)."""
    _BUILT.clear()
    _PROBED.clear()


@dataclass(frozen=True)
class LoadedDocument:
    """A rendered, YAML-loaded definition and the original line of every key path."""

    data: Any
    positions: dict[Path, int]
    rendered: str


def parse_definition(yaml_text: str) -> JobDefinition:
    """Validate a definition at upload: render with a validation context, load, check every rule.

    Raises DefinitionError listing every problem, each with its original line and task
    (DefinitionTooLargeError for a text or a parsed definition over its size limit).
    """
    job_variables = _probe_job_variables(yaml_text, validation_context())
    params = dict.fromkeys(_probe_required_params(yaml_text), REQUIRED_PARAM_PLACEHOLDER)
    for name in job_variables:
        params.pop(name, None)
    document = _load(yaml_text, validation_context(job_variables=job_variables, params=params))
    _check_parsed_size(document.data)
    return _build(document, yaml_text)


REQUIRED_PARAM_PLACEHOLDER = "1"
"""What a ``required_params`` entry holds while a definition is validated at upload (it has no value
yet): a number written as text, as params arrive, so ``{{ Add .Count 1 }}`` renders; not zero, so a
division by it does too; not empty, so ``{{ if .Name }}`` takes the branch a submission takes."""


def _probe_required_params(yaml_text: str) -> list[str]:
    """The definition's required_params, read from its own top-level block when it is plain YAML."""
    if "required_params" not in yaml_text:
        return []
    found = _top_level_block(yaml_text, "required_params")
    names = found.get("required_params") if isinstance(found, dict) else None
    if not isinstance(names, list):
        return []
    return [str(name) for name in names if isinstance(name, str | int) and not isinstance(name, bool)]


def load_definition(
    yaml_text: str, context: Mapping[str, Any], *, configs: Mapping[str, Any] | None = None
) -> JobDefinition:
    """Render with a runtime context (see ``templates.runtime_context``) and validate the result.

    The definition's own job_variables are visible to its templates at the lowest precedence but
    one: the job's ``configs`` (the organisation's, then the job type's) lie below them.
    When ``context["TaskType"]`` names a task with ``variables``, the text is rendered again
    with those variables (over params, outputs and job_variables, never over the built-ins), as
    formicary does when it renders the task to run: so the returned definition's current task
    is exactly what this attempt runs. Raises DefinitionError (TemplateError for templates).

    The text is rendered on every call; a render that comes out as an earlier one did returns the
    definition built then (see the module's docstring): it may be shared between calls, so treat
    it as read-only.
    """
    lowest = dict(configs or {})
    job_variables = _probe_job_variables(yaml_text, {**lowest, **context}, cache=_PROBED)
    base = {**lowest, **job_variables, **context}
    job = _built(yaml_text, base)
    current = context.get("TaskType")
    if not current or not uses_template(yaml_text):
        return job
    task = next((t for t in job.tasks if t.task_type == current), None)
    if task is None or not task.variables:
        return job
    overrides = {name: value for name, value in task.variables.items() if name not in BUILTIN_VARIABLES}
    return _built(yaml_text, {**base, **overrides})


def _built(yaml_text: str, context: Mapping[str, Any]) -> JobDefinition:
    """``_build(_load(yaml_text, context))``, kept by (text, rendered text)."""
    if not uses_template(yaml_text):
        key = (yaml_text, yaml_text)  # nothing to render: the text is the rendered text
        cached = _BUILT.get(key)
        if cached is not None:
            return cached
        document = _load(yaml_text, context)
    else:
        _check_size(yaml_text)
        rendered, origins = _render(yaml_text, context)
        key = (yaml_text, rendered)
        cached = _BUILT.get(key)
        if cached is not None:
            return cached
        document = _load_rendered(yaml_text, rendered, origins)
    job = _build(document, yaml_text)
    _BUILT.put(key, job)
    return job


def render_task(yaml_text: str, task_type: str, context: Mapping[str, Any]) -> TaskDefinition:
    """The task as it runs for this attempt: rendered with ``context`` plus its own ``variables``.

    Task variables override params, outputs and job_variables (as in formicary) but never the
    built-ins. Raises DefinitionError, or KeyError when the job has no such task.
    """
    return load_definition(yaml_text, {**context, "TaskType": task_type}).task(task_type)


def load_document(yaml_text: str, context: Mapping[str, Any]) -> LoadedDocument:
    """Render and YAML-load only (no models): for tools that need the raw data and positions."""
    return _load(yaml_text, context)


def _check_size(yaml_text: str) -> None:
    # characters <= bytes: more characters than the limit is refused without encoding
    if len(yaml_text) > MAX_DEFINITION_BYTES or yaml_text.isascii():
        size = len(yaml_text)
    else:
        try:
            size = len(yaml_text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise DefinitionError(Problem(f"definition is not valid text: {exc.reason}")) from None
    problem = definition_size_problem(size)
    if problem:
        raise DefinitionTooLargeError(Problem(problem))


def _check_parsed_size(data: Any) -> None:
    """Refuse a definition whose parsed form (YAML aliases expanded) is too large to store.

    The size is the JSON the definition would take, counted node by node and given up as soon as
    it passes the limit, so an alias bomb costs at most the loader's node budget, never its output.
    """
    limit = DEFINITION_PARSED_MAX_BYTES
    total = 0
    pending = [data]
    while pending and total <= limit:
        node = pending.pop()
        if isinstance(node, str):
            total += (len(node) if node.isascii() else len(node.encode("utf-8", "surrogatepass"))) + 3
        elif isinstance(node, dict):
            total += 2
            for key, value in node.items():
                pending.append(key)
                pending.append(value)
        elif isinstance(node, list):
            total += 2
            pending.extend(node)
        else:
            total += len(str(node)) + 1
    if total > limit:
        raise DefinitionTooLargeError(
            Problem(
                f"definition is more than {limit} bytes once parsed (YAML aliases expanded); "
                f"the limit is {limit} ({limit // 1024} KiB)"
            )
        )


def _load(yaml_text: str, context: Mapping[str, Any]) -> LoadedDocument:
    _check_size(yaml_text)
    rendered, origins = _render(yaml_text, context)
    return _load_rendered(yaml_text, rendered, origins)


def _load_rendered(yaml_text: str, rendered: str, origins: list[int]) -> LoadedDocument:
    def line_of(index: int) -> int:
        return origins[index] if 0 <= index < len(origins) else (origins[-1] if origins else index + 1)

    try:
        data, positions = load_yaml(rendered, line_of)
    except DefinitionError as exc:
        raise DefinitionError(
            replace(problem, task_type=problem.task_type or task_type_at_line(yaml_text, problem.line))
            for problem in exc.problems
        ) from None
    return LoadedDocument(data, positions, rendered)


def _probe_job_variables(
    yaml_text: str, context: Mapping[str, Any], *, cache: _Lru[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The definition's job_variables, read before the real render so its templates can use them.

    The probe renders every otherwise-unset variable as a placeholder word so that lines such as
    ``IMAGE: repo:{{.CI_COMMIT_SHA}}`` stay valid YAML; only job_variables is kept from it. With a
    ``cache``, a probe whose render came out as an earlier one did is not loaded again.
    """
    if "job_variables" not in yaml_text:
        return {}
    if not uses_template(yaml_text):
        return {}
    _check_size(yaml_text)
    placeholders: dict[str, Any] = dict.fromkeys(variables_used(yaml_text), "placeholder")
    try:
        rendered, origins = _render(yaml_text, {**placeholders, **context})
    except DefinitionError:
        # A placeholder word broke a template ({{ Add .Count 1 }}): read the block as written when
        # it is plain YAML; otherwise the real render reports the problem with its line.
        return _job_variables_alone(yaml_text) or {}
    key = (yaml_text, rendered)
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return dict(cached)
    found = _job_variables_alone(rendered)
    if found is None:
        try:
            found = _job_variables(_load_rendered(yaml_text, rendered, origins).data)
        except DefinitionError:
            found = {}
    if cache is not None:
        cache.put(key, found)
    return dict(found)


def _job_variables_alone(rendered: str) -> dict[str, Any] | None:
    """job_variables read from its own block of the rendered text, without loading the rest.

    The block is the one line at column 0 that starts the top-level key and the lines after it up
    to the next line at column 0 that is not blank, a comment or a sequence item. None when that
    does not isolate it (no such line or several, anchors, flow style spanning lines...): the
    caller loads the whole document then, as it always did.
    """
    data = _top_level_block(rendered, "job_variables")
    return None if data is None else _job_variables(data)


def _top_level_block(rendered: str, key: str) -> Any:
    """The YAML of one top-level key's block alone (see ``_job_variables_alone``), or None."""
    span = _top_level_span(rendered, key)
    if span is None:
        return None
    lines = rendered.split("\n")
    try:
        data, _ = load_yaml("\n".join(lines[span[0] : span[1]]) + "\n")
    except DefinitionError:
        return None
    return data


LITERAL_BLOCKS = ("triggers",)
"""Top-level blocks kept as written when the definition renders: their templates see an event
(a webhook's body, an S3 object, a queue message) when one arrives, not the job's context."""


def _render(yaml_text: str, context: Mapping[str, Any]) -> tuple[str, list[int]]:
    """``render_with_lines``, the ``LITERAL_BLOCKS`` left out of the render and appended as written
    (their lines blanked in place, so every other line keeps its number)."""
    spans = [span for key in LITERAL_BLOCKS if key in yaml_text and (span := _top_level_span(yaml_text, key))]
    if not spans:
        return render_with_lines(yaml_text, context)
    lines = yaml_text.split("\n")
    kept: list[str] = []
    kept_origins: list[int] = []
    for start, end in spans:
        kept.extend(lines[start:end])
        kept_origins.extend(range(start + 1, end + 1))
        lines[start:end] = [""] * (end - start)
    rendered, origins = render_with_lines("\n".join(lines), context)
    if rendered and not rendered.endswith("\n"):
        rendered += "\n"
    count = rendered.count("\n")
    origins = (origins + [origins[-1] if origins else 1] * count)[:count]
    return rendered + "\n".join(kept) + "\n", [*origins, *kept_origins]


def _top_level_span(text: str, key: str) -> tuple[int, int] | None:
    """The lines [start, end) of one top-level key's block (see ``_job_variables_alone``), or None."""
    start_of_key = re.compile(rf"^{re.escape(key)}\s*:")
    lines = text.split("\n")
    starts = [index for index, line in enumerate(lines) if start_of_key.match(line)]
    if len(starts) != 1:
        return None
    end = starts[0] + 1
    while end < len(lines):
        line = lines[end]
        if (
            line
            and not line[0].isspace()
            and line[0] != "#"
            and not line.startswith(("- ", "-\t"))
            and line != "-"
        ):
            break
        end += 1
    return starts[0], end


def _job_variables(data: Any) -> dict[str, Any]:
    if isinstance(data, dict) and isinstance(data.get("job_variables"), dict):
        return {str(key): value for key, value in data["job_variables"].items()}
    return {}


def _build(document: LoadedDocument, yaml_text: str) -> JobDefinition:
    data = document.data
    where = Locator(document.positions)
    if not isinstance(data, dict):
        raise DefinitionError(
            Problem("a job definition is a YAML mapping with job_type and tasks", where.line())
        )
    tasks = data.get("tasks")
    if isinstance(tasks, list) and len(tasks) > MAX_TASKS:
        raise DefinitionError(
            Problem(
                f"definition has {len(tasks)} tasks; the limit is {MAX_TASKS}",
                where.line("tasks"),
                field="tasks",
            )
        )
    try:
        job = JobDefinition.model_validate(data)
    except ValidationError as exc:
        problems = _model_problems(exc, data, where)
        problems.extend(_rules_despite(exc, data, document.positions, problems))
        raise DefinitionError(
            sorted(problems, key=lambda p: (p.line or 0, p.task_type or "", p.message))
        ) from None
    problems = check_definition(job, document.positions)
    if problems:
        raise DefinitionError(problems)
    return job


_PRUNE_ROUNDS = 20
"""Rounds of pruning before the rules give up on a definition whose fields keep failing."""


def _rules_despite(
    exc: ValidationError, data: dict[str, Any], positions: Mapping[Path, int], reported: list[Problem]
) -> list[Problem]:
    """The rules' problems of a definition whose fields failed the models, so one pass lists both.

    The failing keys are taken out of a copy of the data (a field then takes its default) until the
    models accept it, and the rules run on that: an unknown key does not hide an unknown target.
    When the failure cannot be taken out (job_type or a task_type missing, tasks not a list), no
    rule runs; the rules that depend on a field taken out are skipped rather than judged on a value
    the user did not write (``check_definition``'s ``refused``).
    """
    pruned = copy.deepcopy(data)
    refused: set[tuple[int | None, str]] = set()
    error: ValidationError | None = exc
    for _ in range(_PRUNE_ROUNDS):
        if error is None:
            break
        for detail in error.errors():
            removed = _prune(pruned, tuple(detail["loc"]), missing=detail["type"] == "missing")
            if removed is None:
                return []
            refused.add(removed)
        try:
            job = JobDefinition.model_validate(pruned)
        except ValidationError as again:
            error = again
        else:
            error = None
    if error is not None:
        return []
    seen = {(problem.line, problem.task_type, problem.field) for problem in reported}
    return [
        problem
        for problem in check_definition(job, positions, refused=frozenset(refused))
        if (problem.line, problem.task_type, problem.field) not in seen
    ]


def _prune(data: dict[str, Any], loc: tuple[Any, ...], *, missing: bool) -> tuple[int | None, str] | None:
    """Delete the key an error points at (its enclosing field when the key is missing).

    Returns the task's index (None for a job key) and the deleted field's name, or None when the
    error sits where deleting would change what the rest of the definition means (a task's name,
    the task list, the job's own keys that are required) or shift positions (list items other
    than tasks).
    """
    parts = [part for part in loc if part != "[key]"]
    if missing:
        parts = parts[:-1]
    # Only the task list is entered by index; deeper lists are deleted whole, by their field.
    task: int | None = None
    rest = parts
    if len(parts) >= 2 and parts[0] == "tasks" and isinstance(parts[1], int):
        task, rest = parts[1], parts[2:]
    field_path: list[Any] = []
    for part in rest:
        if not isinstance(part, str):
            break
        field_path.append(part)
    if not field_path:
        return None
    if field_path[0] == "task_type" or (task is None and field_path[0] in ("job_type", "tasks")):
        return None
    parent: Any = data if task is None else data["tasks"][task]
    # the deepest key that exists: an unknown key goes alone, a bad value takes its key with it
    for depth in range(len(field_path) - 1):
        child = parent.get(field_path[depth]) if isinstance(parent, dict) else None
        if not isinstance(child, dict) or field_path[depth + 1] not in child:
            field_path = field_path[: depth + 1]
            break
        parent = child
    key = field_path[-1]
    if not isinstance(parent, dict) or key not in parent:
        return None
    del parent[key]
    return task, str(field_path[0])


def _task_type_of(data: Mapping[str, Any], loc: tuple[Any, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
        tasks = data.get("tasks")
        if isinstance(tasks, list) and 0 <= loc[1] < len(tasks) and isinstance(tasks[loc[1]], dict):
            name = tasks[loc[1]].get("task_type")
            return None if name is None else str(name)
    return None


def _model_problems(exc: ValidationError, data: Mapping[str, Any], where: Locator) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[int | None, str]] = set()
    for error in exc.errors():
        loc = tuple(error["loc"])
        inner = loc[2:] if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int) else loc
        inner = tuple(part for part in inner if part != "[key]")
        field = ".".join(str(part) for part in inner) or None
        message = _message(error, inner)
        line = where.line(*loc)
        if (line, message) in seen:
            continue
        seen.add((line, message))
        problems.append(Problem(message, line, _task_type_of(data, loc), field))
    return sorted(problems, key=lambda p: (p.line or 0, p.message))


def _all_field_names() -> set[str]:
    names: set[str] = set()
    for value in vars(models).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == models.__name__:
            for name, info in value.model_fields.items():
                names.add(info.alias or name)
    return names


def _message(error: Any, inner: tuple[Any, ...]) -> str:
    kind = error["type"]
    field = ".".join(str(part) for part in inner)
    key = str(inner[-1]) if inner else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(key, _all_field_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        return f"missing required key {key!r}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        what = f"{field} must be" if field else "a task must be" if len(inner) == 0 else "must be"
        return f"{what} a mapping of keys (key: value), got {type(error.get('input')).__name__}"
    if kind == "enum" and inner and inner[-1] == "method":
        known = ", ".join(method.value for method in TaskMethod)
        hint = did_you_mean(str(error.get("input")), [method.value for method in TaskMethod])
        return f"unknown method {error.get('input')!r}{hint}: use one of {known}"
    text = str(error["msg"])
    if text.startswith("Value error, "):
        text = text[len("Value error, ") :]
        return text
    return f"{field}: {text}" if field else text
