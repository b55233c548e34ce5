"""EXPIRE_ARTIFACTS's parameters keep formicary's names: the task's variables, else the job's, else
formicary's defaults; a bad value names the task and the variable."""

from __future__ import annotations

from typing import Any

import pytest
from formica.jobs.models import RunnerKind, TaskDefinition
from formica.runtime.expire import (
    DEFAULT_EXPIRATION_SECONDS,
    DEFAULT_LIMIT,
    ExpireParameterError,
    _kept,
    expire_parameters,
)


def task(**variables: Any) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {"task_type": "expire", "method": "EXPIRE_ARTIFACTS", "variables": variables}
    )


def test_an_expire_task_runs_on_its_own_runner() -> None:
    assert task().runner == RunnerKind.EXPIRE


def test_defaults_are_formicarys() -> None:
    assert expire_parameters(task(), {}) == (DEFAULT_EXPIRATION_SECONDS, DEFAULT_LIMIT)


def test_task_variables_win_over_the_jobs() -> None:
    params = {"DefaultArtifactExpiration": "1h", "DefaultArtifactLimit": "5"}
    assert expire_parameters(task(DefaultArtifactExpiration="90s"), params) == (90.0, 5)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DefaultArtifactExpiration": "soon"}, "DefaultArtifactExpiration"),
        ({"DefaultArtifactExpiration": "0s"}, "DefaultArtifactExpiration"),
        ({"DefaultArtifactLimit": "many"}, "DefaultArtifactLimit"),
        ({"DefaultArtifactLimit": 0}, "DefaultArtifactLimit"),
        ({"DefaultArtifactLimit": 1_000_000}, "DefaultArtifactLimit"),
        ({"DefaultArtifactLimit": True}, "DefaultArtifactLimit"),
    ],
)
def test_a_bad_value_names_the_task_and_the_variable(variables: dict[str, Any], named: str) -> None:
    with pytest.raises(ExpireParameterError, match=f"task expire: {named}"):
        expire_parameters(task(**variables), {})


@pytest.mark.parametrize(
    ("key", "kept"),
    [
        ("acme/r1/build/artifacts/a.txt", False),
        ("acme/r1/build/logs/attempt-1.log", False),
        ("acme/r1/build/grants/attempt-1/artifacts.env", True),
        ("acme/r1/_control/cancelled-e1", True),
        ("acme/r1/build/artifacts", True),
    ],
)
def test_only_artifacts_and_logs_expire(key: str, kept: bool) -> None:
    assert _kept(key) is kept
