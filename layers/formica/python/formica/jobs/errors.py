"""Errors of the job-definition language: every problem names its line and its task.

A definition is user-written text, so an error must point at the place to fix: the line in the
original (un-rendered) YAML, the task it belongs to and, where there is one, the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition.

    ``line`` is 1-based and refers to the original text the user wrote (before templates are
    rendered); ``task_type`` is the task the problem sits in, when it sits in one.
    """

    message: str
    line: int | None = None
    task_type: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.task_type is not None:
            where.append(f'task "{self.task_type}"')
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for API error bodies)."""
        return asdict(self)


class DefinitionError(Exception):
    """A job definition that cannot be accepted; ``problems`` lists every reason found."""

    def __init__(self, problems: Iterable[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems) or [Problem("invalid job definition")]
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


class DefinitionTooLargeError(DefinitionError):
    """A definition over a size limit (``formica.jobs.limits``): the API answers 413."""


class TemplateError(DefinitionError):
    """A template that cannot be translated or rendered (syntax, sandbox refusal, runaway output)."""
