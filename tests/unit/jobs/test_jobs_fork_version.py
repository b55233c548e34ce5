"""fork_job_version: a version number, latest, or a sem_version; anything else refused at upload."""

from __future__ import annotations

import pytest
from formica.jobs import DefinitionError, parse_definition

FORK = """job_type: parent
tasks:
- task_type: fork
  method: FORK_JOB
  fork_job_type: child
  fork_job_version: {version}
"""


@pytest.mark.parametrize(
    ("written", "stored", "wanted"),
    [
        ("3", "3", 3),
        ("'3'", "3", 3),
        ("latest", "latest", None),
        ("", "", None),
        ("1.0-dev", "1.0-dev", "1.0-dev"),
        ("'1.10'", "1.10", "1.10"),
        ("2.0.1+build_7", "2.0.1+build_7", "2.0.1+build_7"),
    ],
)
def test_a_version_number_latest_or_a_sem_version_is_accepted(
    written: str, stored: str, wanted: int | str | None
) -> None:
    job = parse_definition(FORK.format(version=written))

    task = job.task("fork")
    assert (task.fork_job_version, task.fork_version) == (stored, wanted)


def test_no_fork_job_version_asks_for_the_latest() -> None:
    job = parse_definition(FORK.replace("  fork_job_version: {version}\n", ""))

    assert job.task("fork").fork_version is None


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("1.5", "fork_job_version 1.5 is a number with a fraction"),
        ("1.10", "sem_version in quotes ('1.10')"),
        ("-2", "fork_job_version -2 is not a version: version numbers start at 1"),
        ("0", "version numbers start at 1"),
        ("true", "fork_job_version must be a version number"),
        ("'1.0 dev'", "fork_job_version '1.0 dev' is not a version"),
        ("'1.0/../x'", "is not a version"),
        ("x" * 65, "fork_job_version of 65 characters is not a version"),
    ],
)
def test_anything_else_is_refused_naming_the_field_the_task_and_the_line(written: str, reason: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(FORK.format(version=written))

    problems = caught.value.problems
    assert len(problems) == 1
    assert (problems[0].line, problems[0].task_type, problems[0].field) == (6, "fork", "fork_job_version")
    assert reason in problems[0].message
