"""How an execution begins and how a container attempt reports (D13), through the real ASL.

The starter takes the first decision and passes it as the execution's input; an input of
``{"request_id"}`` alone (older callers) still walks, through the Begin state. A container attempt's
completion commits the step and its callback output is the next decision, so no Advance follows
Launch; when that commit fails the Launch state is answered with an error and Advance commits the
result recorded before it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from formica.engine.walk import JobState
from formica.runtime import get_runtime
from formica.runtime.executions import execution_name

from tests.workflow.conftest import Walk


def entered(history: list[dict[str, Any]]) -> list[str]:
    """The names of the states an execution entered, in order."""
    names = []
    for event in history:
        if event["type"].endswith("StateEntered"):
            names.append(event["stateEnteredEventDetails"]["name"])
    return names


SHELL_JOB = """
job_type: two-steps
tasks:
- task_type: first
  method: SHELL
  script:
    - echo one
  on_completed: second
- task_type: second
  method: SHELL
  script:
    - echo two
"""

CONTAINER_JOB = """
job_type: boxed
tasks:
- task_type: build
  container:
    image: alpine
  script:
    - echo built
  on_completed: ship
- task_type: ship
  container:
    image: alpine
  script:
    - echo shipped
"""


def test_a_started_execution_begins_at_the_choice_with_its_first_decision(walk: Walk) -> None:
    walk.upload(SHELL_JOB)
    done = walk.wait(walk.submit("two-steps"))
    assert done.job_state == JobState.COMPLETED
    assert done.execution_name is not None
    history = walk.history(done.execution_name)
    started = json.loads(history[0]["executionStartedEventDetails"]["input"])
    assert (started["action"], started["task_type"], started["step"]) == ("RUN_SHELL", "first", 1)
    assert entered(history) == ["Route", "RunShell", "Route", "RunShell", "Route", "Done"]


def test_an_execution_started_with_the_request_id_alone_decides_itself(walk: Walk) -> None:
    walk.upload(SHELL_JOB)
    request_id = walk.submit("two-steps", start=False)
    name = execution_name(request_id, 1)
    get_runtime().requests.mark_started(request_id, execution_name=name)
    walk.sfn.start_execution(
        stateMachineArn=walk.state_machine_arn, name=name, input=json.dumps({"request_id": request_id})
    )
    done = walk.wait(request_id)
    assert done.job_state == JobState.COMPLETED
    assert [task.task_state for task in walk.tasks(request_id)] == ["COMPLETED", "COMPLETED"]
    assert entered(walk.history(name)) == [
        "Route",
        "Begin",
        "Route",
        "RunShell",
        "Route",
        "RunShell",
        "Route",
        "Done",
    ]


def test_a_container_callback_carries_the_next_decision(walk: Walk) -> None:
    walk.upload(CONTAINER_JOB)
    done = walk.wait(walk.submit("boxed"))
    assert done.job_state == JobState.COMPLETED
    assert done.execution_name is not None
    assert entered(walk.history(done.execution_name)) == [
        "Route",
        "Launch",
        "Route",
        "Launch",
        "Route",
        "Done",
    ]
    tasks = walk.tasks(done.request_id)
    assert [(task.task_type, task.task_state, task.exit_code) for task in tasks] == [
        ("build", "COMPLETED", "0"),
        ("ship", "COMPLETED", "0"),
    ]
    assert "shipped" in walk.log(done.request_id, "ship")


def test_a_completion_that_cannot_commit_hands_its_recorded_result_to_advance(
    walk: Walk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from formica.runtime.walker import Walker

    real = Walker.record
    failures: list[str] = []

    def record_once_broken(self: Any, request: Any, result: Any, **kwargs: Any) -> dict[str, Any]:
        if not failures and result.exit_code == "0":
            failures.append(request.request_id)
            raise RuntimeError("injected fault in the completion's commit")
        answer: dict[str, Any] = real(self, request, result, **kwargs)
        return answer

    monkeypatch.setattr(Walker, "record", record_once_broken)
    walk.upload(CONTAINER_JOB)
    done = walk.wait(walk.submit("boxed"))
    assert failures == [done.request_id]
    assert done.job_state == JobState.COMPLETED
    assert done.execution_name is not None
    history = walk.history(done.execution_name)
    assert entered(history) == ["Route", "Launch", "Advance", "Route", "Launch", "Route", "Done"]
    failed = [e for e in history if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == ["Formica.CommitFailed"]
    # Advance used the exit code the completion recorded: the task completed, it was not lost.
    assert [(task.task_type, task.task_state) for task in walk.tasks(done.request_id)] == [
        ("build", "COMPLETED"),
        ("ship", "COMPLETED"),
    ]
