"""FORK_JOB and AWAIT_FORKED_JOB on the real state machine (moto), every Lambda in-process."""

from __future__ import annotations

from formica.engine.walk import JobState
from formica.runtime import get_runtime

from tests.workflow.conftest import ORG, Walk

CHILD = """
job_type: encode
tasks:
- task_type: work
  method: SHELL
  script:
    - echo encoding {{ .Part }} forked={{ .ForkedJob }} parent={{ .ParentJobType }}
    - echo "part {{ .Part }}" > part-{{ .Part }}.txt
    - exit {{ .Exit }}
  artifacts:
    paths: [part-{{ .Part }}.txt]
"""

PARENT = """
job_type: fan
tasks:
- task_type: fork-one
  method: FORK_JOB
  fork_job_type: encode
  variables:
    Part: "1"
    Exit: "{{ .FirstExit }}"
  on_completed: fork-two
- task_type: fork-two
  method: FORK_JOB
  fork_job_type: encode
  variables:
    Part: "2"
    Exit: "0"
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [fork-one, fork-two]
  on_completed: combine
- task_type: combine
  method: SHELL
  dependencies: [wait]
  script:
    - cat part-1.txt part-2.txt
"""


def test_a_parent_forks_two_children_awaits_them_and_reads_their_artifacts(walk: Walk) -> None:
    walk.upload(CHILD)
    walk.upload(PARENT)

    parent_id = walk.submit("fan", {"FirstExit": "0"})
    done = walk.wait(parent_id)

    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    children = get_runtime().requests.list_children(parent_id)
    assert sorted(child.fork_task for child in children) == ["fork-one", "fork-two"]
    assert {child.job_state for child in children} == {JobState.COMPLETED}
    for child in children:
        request = get_runtime().requests.get(child.child_id)
        assert request is not None
        assert (request.parent_id, request.fork_depth, request.org) == (parent_id, 1, ORG)
        assert request.params["ForkedJob"] == "true" and request.params["ParentJobID"] == parent_id
        assert "forked=true parent=fan" in walk.log(child.child_id, "work")
    # The fork published its child's id; the combine step downloaded both children's artifacts.
    assert done.walk.outputs["fork-one"]["ForkedJobID"] in {child.child_id for child in children}
    assert "part 1\npart 2" in walk.log(parent_id, "combine")


def test_a_failing_child_fails_the_await_naming_it(walk: Walk) -> None:
    walk.upload(CHILD)
    walk.upload(PARENT)

    parent_id = walk.submit("fan", {"FirstExit": "3"})
    done = walk.wait(parent_id)

    assert done.job_state == JobState.FAILED
    assert done.error_code == "ERR_TASK_FAILED"
    tasks = {task.task_type: task for task in walk.tasks(parent_id)}
    assert tasks["wait"].task_state == "FAILED"
    assert "forked job encode" in (tasks["wait"].error_message or "")
    assert "from task fork-one" in (tasks["wait"].error_message or "")


def test_forking_an_unknown_job_type_fails_the_fork_task(walk: Walk) -> None:
    walk.upload(PARENT)

    done = walk.wait(walk.submit("fan", {"FirstExit": "0"}))

    assert done.job_state == JobState.FAILED
    tasks = {task.task_type: task for task in walk.tasks(done.request_id)}
    assert tasks["fork-one"].error_code == "ERR_FORK_JOB"
    assert "'encode' is not defined" in (tasks["fork-one"].error_message or "")
