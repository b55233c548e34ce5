"""The models: Go-like scalars, exit-code keys, runner kinds, actions."""

from __future__ import annotations

from typing import Any

import pytest
from formica.jobs.models import (
    ExitCodeAction,
    JobDefinition,
    RunnerKind,
    TaskDefinition,
    is_action,
)
from pydantic import ValidationError


def task(**fields: Any) -> TaskDefinition:
    return TaskDefinition.model_validate({"task_type": "t", **fields})


def test_string_fields_read_numbers_and_booleans_like_go() -> None:
    parsed = task(environment={"CGO_ENABLED": 0, "FLAG": True, "PI": 3.5}, headers={"n": 1}, tags=[1, "x"])
    assert parsed.environment == {"CGO_ENABLED": "0", "FLAG": "true", "PI": "3.5"}
    assert parsed.headers == {"n": "1"}
    assert parsed.tags == ["1", "x"]


def test_null_takes_the_default_for_lists_and_maps_and_empty_for_strings() -> None:
    parsed = task(script=None, environment=None, url=None, retry=None)
    assert (parsed.script, parsed.environment, parsed.url, parsed.retry) == ([], {}, "", 0)
    assert task().url is None


def test_exit_code_keys_become_canonical_decimal_strings() -> None:
    parsed = task(on_exit_code={404: "EXECUTING", "+2": "RESTART_JOB", "007": "FAILED"})
    assert parsed.on_exit_code == {"404": "EXECUTING", "2": "RESTART_JOB", "7": "FAILED"}
    assert parsed.exit_code_target(404) == "EXECUTING"
    assert parsed.exit_code_target(500) is None


def test_completed_and_failed_keys_move_into_on_completed_and_on_failed() -> None:
    parsed = task(on_exit_code={"COMPLETED": "next", "failed": "cleanup", 1: "FATAL"})
    assert (parsed.on_completed, parsed.on_failed, parsed.on_exit_code) == ("next", "cleanup", {"1": "FATAL"})


def test_conflicting_completed_routes_are_refused() -> None:
    with pytest.raises(ValidationError, match="on_completed names 'b'"):
        task(on_completed="b", on_exit_code={"COMPLETED": "c"})


@pytest.mark.parametrize("key", ["bad", "ERR_X", "1.5", "-1"])
def test_exit_code_keys_must_be_codes(key: str) -> None:
    with pytest.raises(ValidationError, match="is not an exit code"):
        task(on_exit_code={key: "FAILED"})


def test_same_code_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="twice"):
        task(on_exit_code={"1": "FAILED", "01": "FATAL"})


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        task(scirpt=["x"])


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("15s", 15.0), ("1m30s", 90.0), ("2h", 7200.0), ("1h2m3s", 3723.0), ("1.5s", 1.5), ("250ms", 0.25)],
)
def test_the_go_duration_forms_of_the_issue(written: str, seconds: float) -> None:
    assert task(timeout=written).timeout == seconds


def test_durations_accept_go_forms() -> None:
    parsed = task(timeout="1m30s", delay_between_retries="500ms")
    assert (parsed.timeout, parsed.delay_between_retries) == (90.0, 0.5)
    with pytest.raises(ValidationError, match="Go forms"):
        task(timeout="5 minutes")


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"method": "HTTP_GET"}, RunnerKind.HTTP),
        ({"method": "SHELL"}, RunnerKind.SHELL),
        ({"method": "DOCKER", "container": {"image": "a"}}, RunnerKind.CONTAINER),
        ({"container": {"image": "a"}}, RunnerKind.CONTAINER),
        ({"method": "FORK_JOB"}, RunnerKind.FORK),
    ],
)
def test_runner_kind_follows_method_and_container(fields: dict[str, Any], kind: RunnerKind) -> None:
    assert task(**fields).runner is kind


@pytest.mark.parametrize(
    ("target", "expected"),
    [("COMPLETED", True), ("RESTART_JOB", True), ("ERR_BLAH", True), ("second", False), ("ERR-X", False)],
)
def test_is_action(target: str, expected: bool) -> None:
    assert is_action(target) is expected


def test_exit_code_actions_are_the_eight_of_the_language() -> None:
    assert {a.value for a in ExitCodeAction} == {
        "COMPLETED",
        "FAILED",
        "FATAL",
        "EXECUTING",
        "RESTART_TASK",
        "RESTART_JOB",
        "PAUSE_JOB",
        "WAIT_FOR_APPROVAL",
    }


def test_job_root_task_is_the_one_nobody_names() -> None:
    job = JobDefinition.model_validate(
        {
            "job_type": "j",
            "tasks": [
                {"task_type": "b", "method": "SHELL"},
                {"task_type": "a", "method": "SHELL", "on_completed": "b"},
            ],
        }
    )
    assert job.root_task.task_type == "a"
    assert job.task("b").task_type == "b"
