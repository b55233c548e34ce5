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
        return problem_text(self.message, line=self.line, task_type=self.task_type, field=self.field)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for API error bodies): the fields and ``text``, the line as printed."""
        return {**asdict(self), "text": str(self)}


def problem_text(
    message: str, *, line: int | None = None, task_type: str | None = None, field: str | None = None
) -> str:
    """One problem as one line of text: THE format of ``formica validate`` and of the API's details.

    Parameters
    ----------
    message
        What is wrong.
    line, task_type
        Where: ``line 7, task "one": message``.
    field
        Named as the place only when there is neither a line nor a task (``params.Count: message``):
        a definition's problems say their line, and the message names the key.

    Returns
    -------
    str
        The message prefixed by its place, or the message alone when it has none.
    """
    where = []
    if line is not None:
        where.append(f"line {line}")
    if task_type is not None:
        where.append(f'task "{task_type}"')
    if not where and field:
        where.append(field)
    return f"{', '.join(where)}: {message}" if where else message


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
