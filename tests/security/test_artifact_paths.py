"""Artifact paths stay inside the attempt's working directory: refused at upload, and at run time an
escaping path or symlink fails the attempt with ERR_ARTIFACT_PATH (never a COMPLETED task)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from formica.engine.routing import AttemptOutcome, RetryBudget, TaskState, route_exit_code
from formica.jobs import DefinitionError, parse_definition
from formica.jobs.models import TaskDefinition
from formica.runners.artifacts import ERR_ARTIFACT_PATH, attach_artifacts
from formica.runners.base import TaskOutcome
from formica.runners.shell import run_shell

from tests.fakes.blobs import InMemoryBlobStore
from tests.integration.api import conftest as api_fixtures
from tests.integration.api.conftest import ApiWorld
from tests.unit.runners.conftest import make_context

aws, ddb, world = api_fixtures.aws, api_fixtures.ddb, api_fixtures.world  # the API's moto fixtures

ESCAPING = ["/etc/passwd", "../../x", "reports/../../x", "~/x", "..", "  "]


def with_paths(*paths: str) -> str:
    task = {"task_type": "build", "method": "SHELL", "script": ["date"], "artifacts": {"paths": list(paths)}}
    return json.dumps({"job_type": "artifacts-job", "tasks": [task]}, indent=1)


@pytest.mark.parametrize("path", ESCAPING)
def test_an_escaping_artifact_path_is_refused_at_upload_naming_task_path_and_line(path: str) -> None:
    text = "job_type: j\ntasks:\n- task_type: build\n  method: SHELL\n  script: [date]\n"
    text += "  artifacts:\n    paths:\n"
    text += f"    - ok.txt\n    - {json.dumps(path)}\n"

    with pytest.raises(DefinitionError) as info:
        parse_definition(text)

    (problem,) = info.value.problems
    assert (problem.line, problem.task_type, problem.field) == (9, "build", "artifacts.paths")
    assert repr(path) in problem.message or not path.strip()
    assert "working directory" in problem.message


def test_the_api_refuses_an_escaping_artifact_path_and_stores_nothing(world: ApiWorld) -> None:
    response = world.call(
        "POST",
        "/api/jobs/definitions",
        body=with_paths("/etc/passwd"),
        headers={"Content-Type": "application/json"},
    )

    assert response.status == 400, response.body[:500]
    (detail,) = response.json()["details"]
    assert (detail["task_type"], detail["field"]) == ("build", "artifacts.paths")
    assert "'/etc/passwd'" in detail["message"]
    assert world.call("GET", "/api/jobs/definitions").json()["records"] == []
    # Relative files, directories and globs are what artifacts.paths is for.
    accepted = world.call(
        "POST",
        "/api/jobs/definitions",
        body=with_paths("out.txt", "reports", "**/*.xml", "./a/b.txt", "a..b"),
        headers={"Content-Type": "application/json"},
    )
    assert accepted.status == 201, accepted.body[:500]


# -- run time --------------------------------------------------------------------------------------


def unchecked_task(*paths: str, when: str = "onSuccess", script: list[str] | None = None) -> TaskDefinition:
    """A task as it could render at run time (templates), past the upload checks."""
    return TaskDefinition.model_validate(
        {
            "task_type": "build",
            "script": script or ["true"],
            "artifacts": {"paths": list(paths), "when": when},
        }
    )


def route_of(task: TaskDefinition, outcome: TaskOutcome) -> Any:
    return route_exit_code(task, AttemptOutcome(outcome.exit_code, outcome.error_code), RetryBudget())


def test_a_symlink_out_of_the_working_directory_fails_the_attempt(tmp_path: Path) -> None:
    secret = tmp_path / "other-org-secret.txt"
    secret.write_text("not yours")
    work = tmp_path / "work"
    work.mkdir()
    task = unchecked_task("out", script=["mkdir out", "date > out/date.txt", f"ln -s {secret} out/link.txt"])
    store = InMemoryBlobStore()

    outcome = run_shell(task, make_context(task_type="build"), workdir=work)
    assert outcome.exit_code == "0"
    attach_artifacts(outcome, task, make_context(task_type="build"), workdir=work, store=store)

    assert outcome.error_code == ERR_ARTIFACT_PATH
    assert "out/link.txt" in (outcome.error_message or "")
    assert f"[{ERR_ARTIFACT_PATH}: " in outcome.log
    assert not any(blob.endswith("link.txt") for blob in store.blobs)
    assert route_of(task, outcome).task_state == TaskState.FAILED


@pytest.mark.parametrize("link", ["direct", "glob", "directory"])
def test_every_way_of_naming_an_outside_symlink_fails(tmp_path: Path, link: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_text("x")
    work = tmp_path / "work"
    (work / "reports").mkdir(parents=True)
    (work / "reports" / "a.txt").write_text("a")
    if link == "directory":
        os.symlink(outside, work / "reports" / "linked")
        pattern = "reports"
    else:
        os.symlink(outside / "x.txt", work / "reports" / "b.txt")
        pattern = "reports/b.txt" if link == "direct" else "reports/*.txt"
    task = unchecked_task(pattern)
    outcome = TaskOutcome(exit_code="0")

    attach_artifacts(outcome, task, make_context(task_type="build"), workdir=work, store=InMemoryBlobStore())

    assert outcome.error_code == ERR_ARTIFACT_PATH
    assert outcome.artifacts == []
    assert route_of(task, outcome).task_state == TaskState.FAILED


@pytest.mark.parametrize("path", ["/etc/passwd", "../../x", "~/x"])
def test_an_escaping_path_rendered_at_run_time_fails_the_attempt(tmp_path: Path, path: str) -> None:
    task = unchecked_task(path, when="always")
    outcome = TaskOutcome(exit_code="0")

    attach_artifacts(
        outcome, task, make_context(task_type="build"), workdir=tmp_path, store=InMemoryBlobStore()
    )

    assert outcome.error_code == ERR_ARTIFACT_PATH
    assert path in (outcome.error_message or "")
    assert route_of(task, outcome).task_state == TaskState.FAILED
