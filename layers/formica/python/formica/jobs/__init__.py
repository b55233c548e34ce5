"""The job-definition language: models, parsing, validation and templates.

Entry points: ``parse_definition`` (upload: full validation), ``load_definition`` and
``render_task`` (run time: render with ``templates.runtime_context``), ``DefinitionError``.

The names are loaded on first use (PEP 562): importing ``formica.jobs.models`` (what most modules
need) does not pull in the parser, the templates and jinja2, which only the paths that parse or
render pay for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from formica.jobs.errors import DefinitionError, Problem, TemplateError
    from formica.jobs.models import ExitCodeAction, JobDefinition, TaskDefinition, TaskMethod
    from formica.jobs.parsing import load_definition, parse_definition, render_task

_WHERE = {
    "DefinitionError": "formica.jobs.errors",
    "Problem": "formica.jobs.errors",
    "TemplateError": "formica.jobs.errors",
    "ExitCodeAction": "formica.jobs.models",
    "JobDefinition": "formica.jobs.models",
    "TaskDefinition": "formica.jobs.models",
    "TaskMethod": "formica.jobs.models",
    "load_definition": "formica.jobs.parsing",
    "parse_definition": "formica.jobs.parsing",
    "render_task": "formica.jobs.parsing",
}

__all__ = [
    "DefinitionError",
    "ExitCodeAction",
    "JobDefinition",
    "Problem",
    "TaskDefinition",
    "TaskMethod",
    "TemplateError",
    "load_definition",
    "parse_definition",
    "render_task",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'formica.jobs' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
