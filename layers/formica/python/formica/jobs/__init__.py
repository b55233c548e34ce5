"""The job-definition language: models, parsing, validation and templates.

Entry points: ``parse_definition`` (upload: full validation), ``load_definition`` and
``render_task`` (run time: render with ``templates.runtime_context``), ``DefinitionError``.
"""

from formica.jobs.errors import DefinitionError, Problem, TemplateError
from formica.jobs.models import ExitCodeAction, JobDefinition, TaskDefinition, TaskMethod
from formica.jobs.parsing import load_definition, parse_definition, render_task

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
