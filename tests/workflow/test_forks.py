"""FORK_JOB and AWAIT_FORKED_JOB on the real state machine (moto), every Lambda in-process."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from formica.engine.walk import JobState
from formica.local.moto_locks import serialize_dynamodb
from formica.runtime import cancel_request, forks, get_runtime, reset_runtime
from formica.settings import reset_settings
from formica.store.requests import JobRequestItem, iso

from tests.workflow.conftest import ORG, Walk


@pytest.fixture(autouse=True)
def _serial_dynamodb(walk: Walk) -> Iterator[None]:
    # Parents and children walk at once: moto's DynamoDB is not thread-safe (its item dicts change
    # while another thread reads them), so these tests serialize it as `formica dev` does.
    with serialize_dynamodb():
        yield


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


def test_forked_children_and_their_artifacts_are_stamped_by_the_runtimes_clock(
    walk: Walk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given every Lambda's runtime on a clock two days ahead of the wall clock
    ahead = timedelta(days=2)
    monkeypatch.setattr(get_runtime(), "now", lambda: datetime.now(UTC) + ahead)
    walk.upload(CHILD)
    walk.upload(PARENT)
    floor = iso(datetime.now(UTC) + ahead)

    # When a parent forks two children and reads their artifacts
    parent_id = walk.submit("fan", {"FirstExit": "0"})
    done = walk.wait(parent_id)

    # Then the children were created, and their artifacts kept and copied to the parent, on that clock
    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    children = get_runtime().requests.list_children(parent_id)
    assert len(children) == 2 and all(child.created_at >= floor for child in children)
    for child in children:
        request = get_runtime().requests.get(child.child_id)
        assert request is not None and request.created_at >= floor
        kept = get_runtime().requests.list_artifacts(child.child_id)  # the child's own log and file
        assert {artifact.kind for artifact in kept} == {"log", "artifact"}
        assert all(artifact.created_at >= floor for artifact in kept)
    copied = [a for a in get_runtime().requests.list_artifacts(parent_id) if a.kind == "artifact"]
    assert copied and all(artifact.created_at >= floor for artifact in copied)


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


SLOW_CHILD = """
job_type: slow
tasks:
- task_type: nap
  method: SHELL
  script:
    - sleep {{ .Pause }}
"""

WAITS_FOR_SLOW = """
job_type: waiter
tasks:
- task_type: fork
  method: FORK_JOB
  fork_job_type: slow
  variables:
    Pause: "{{ .Pause }}"
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [fork]
"""


def test_cancelling_a_parent_cancels_its_running_child(walk: Walk) -> None:
    walk.upload(SLOW_CHILD)
    walk.upload(WAITS_FOR_SLOW)
    parent_id = walk.submit("waiter", {"Pause": "30"})
    waiting = walk.wait_for(parent_id, lambda r: r.task_token_step == r.step and r.current_task == "wait")
    (child,) = get_runtime().requests.list_children(parent_id)
    walk.wait_for(child.child_id, lambda r: r.job_state == JobState.EXECUTING)

    cancel_request(ORG, waiting.request_id, get_runtime())

    assert walk.wait(parent_id).job_state == JobState.CANCELLED
    assert walk.wait(child.child_id).job_state == JobState.CANCELLED


def test_a_missed_end_is_answered_by_the_sweep(walk: Walk, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a child whose end its parent does not hear (the notice is lost)
    monkeypatch.setattr(forks, "child_finished", lambda runtime, child: False)
    walk.upload(SLOW_CHILD)
    walk.upload(WAITS_FOR_SLOW)
    parent_id = walk.submit("waiter", {"Pause": "1"})
    walk.wait_for(parent_id, lambda r: r.task_token_step == r.step and r.current_task == "wait")
    (child,) = get_runtime().requests.list_children(parent_id)
    assert walk.wait(child.child_id).job_state == JobState.COMPLETED
    time.sleep(0.5)
    assert walk.request(parent_id).job_state == JobState.EXECUTING

    # When the minute sweep runs, Then it marks the child and answers the parent's await
    assert forks.sweep_children(get_runtime()) == 1
    assert walk.wait(parent_id).job_state == JobState.COMPLETED
    assert get_runtime().requests.running_children() == []


SELF_FORK = """
job_type: nest
max_concurrency: 1
tasks:
- task_type: deeper
  method: FORK_JOB
  fork_job_type: nest
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [deeper]
"""


def test_a_fork_bomb_stops_at_the_depth_limit_and_its_own_type_never_deadlocks(
    walk: Walk, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A job type that forks itself, with max_concurrency 1: each parent gives its slot back while it
    # awaits, so its child (same type) can start; the chain stops at fork_max_depth.
    monkeypatch.setenv("FORMICA_FORK_MAX_DEPTH", "2")
    reset_settings()
    reset_runtime()
    walk.upload(SELF_FORK)

    done = walk.wait(walk.submit("nest"), timeout=90)

    assert done.job_state == JobState.FAILED
    (child,) = get_runtime().requests.list_children(done.request_id)
    (grandchild,) = get_runtime().requests.list_children(child.child_id)
    deepest = walk.request(grandchild.child_id)
    assert deepest.fork_depth == 2
    tasks = {task.task_type: task for task in walk.tasks(deepest.request_id)}
    assert tasks["deeper"].error_code == "ERR_FORK_LIMIT"
    assert "fork_max_depth" in (tasks["deeper"].error_message or "")
    # The failure travels up: each await fails with its child's error code.
    assert done.error_code == "ERR_FORK_LIMIT"


TWO_FORKS = """
job_type: two
tasks:
- task_type: a
  method: FORK_JOB
  fork_job_type: slow
  variables: {Pause: "0"}
  on_completed: b
- task_type: b
  method: FORK_JOB
  fork_job_type: slow
  variables: {Pause: "0"}
"""


def test_children_per_request_are_limited(walk: Walk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORMICA_FORK_MAX_CHILDREN", "1")
    reset_settings()
    reset_runtime()
    walk.upload(SLOW_CHILD)
    walk.upload(TWO_FORKS)

    done = walk.wait(walk.submit("two"))

    tasks = {task.task_type: task for task in walk.tasks(done.request_id)}
    assert tasks["a"].task_state == "COMPLETED"
    assert (tasks["b"].error_code, done.job_state) == ("ERR_FORK_LIMIT", JobState.FAILED)
    assert "fork_max_children" in (tasks["b"].error_message or "")


def test_an_await_that_outlasts_its_timeout_fails_and_the_child_goes_on(walk: Walk) -> None:
    walk.upload(SLOW_CHILD)
    walk.upload(
        """
job_type: impatient
tasks:
- task_type: fork
  method: FORK_JOB
  fork_job_type: slow
  variables: {Pause: "6"}
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  timeout: 1s
  await_forked_tasks: [fork]
"""
    )

    done = walk.wait(walk.submit("impatient"))

    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_TASK_TIMED_OUT")
    (child,) = get_runtime().requests.list_children(done.request_id)
    # The child is not the await's to stop (cancel the parent for that); it finishes on its own.
    assert walk.wait(child.child_id).job_state == JobState.COMPLETED


def test_twenty_children_are_forked_and_awaited(walk: Walk) -> None:
    walk.upload(SLOW_CHILD)
    forks_yaml = "".join(
        f"""
- task_type: f{n}
  method: FORK_JOB
  fork_job_type: slow
  variables: {{Pause: "0"}}
  on_completed: {"f" + str(n + 1) if n < 19 else "wait"}"""
        for n in range(20)
    )
    awaited = ", ".join(f"f{n}" for n in range(20))
    walk.upload(
        f"""
job_type: twenty
tasks:{forks_yaml}
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [{awaited}]
"""
    )

    done = walk.wait(walk.submit("twenty"), timeout=120)

    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    children = get_runtime().requests.list_children(done.request_id)
    assert len(children) == 20 and {child.job_state for child in children} == {JobState.COMPLETED}
    outputs = done.walk.outputs["wait"]
    assert {outputs[f"f{n}_JobState"] for n in range(20)} == {"COMPLETED"}


FLAKY_CHILD = """
job_type: flaky-child
tasks:
- task_type: try
  method: SHELL
  script:
    - n=$(cat /tmp/formica-fork-$Marker 2>/dev/null || echo 0); echo $((n + 1)) > /tmp/formica-fork-$Marker
    - if [ "{{ .FailOnce }}" = "yes" ] && [ $n -eq 0 ]; then exit 7; fi
"""

RETRIED_PARENT = """
job_type: retried-parent
retry: 1
tasks:
- task_type: steady
  method: FORK_JOB
  fork_job_type: flaky-child
  variables: {FailOnce: "no", Marker: "{{ .Marker }}-steady"}
  on_completed: shaky
- task_type: shaky
  method: FORK_JOB
  fork_job_type: flaky-child
  variables: {FailOnce: "yes", Marker: "{{ .Marker }}-shaky"}
  on_completed: wait
- task_type: wait
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [steady, shaky]
"""


def test_a_restarted_parent_re_forks_only_the_children_that_did_not_complete(walk: Walk) -> None:
    walk.upload(FLAKY_CHILD)
    walk.upload(RETRIED_PARENT)

    done = walk.wait(walk.submit("retried-parent", {"Marker": uuid.uuid4().hex}), timeout=90)

    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    assert done.job_retry == 1
    children = get_runtime().requests.list_children(done.request_id)
    by_task = {task: [c for c in children if c.fork_task == task] for task in ("steady", "shaky")}
    assert [c.job_state for c in by_task["steady"]] == [JobState.COMPLETED]  # forked once, reused
    assert sorted(c.job_state for c in by_task["shaky"]) == [JobState.COMPLETED, JobState.FAILED]


def test_a_fork_names_a_semantic_version_as_formicary_writes_it(walk: Walk) -> None:
    plugin = (
        "job_type: plugin\nsem_version: {}\ntasks:\n- task_type: run\n  method: SHELL\n  script: [echo {}]\n"
    )
    walk.upload(plugin.format("1.0-dev", "one"))
    walk.upload(plugin.format("2.0", "two"))
    walk.upload(
        """
job_type: plugin-client
tasks:
- task_type: call-plugin
  method: FORK_JOB
  fork_job_type: plugin
  fork_job_version: 1.0-dev
  on_completed: wait-plugin
- task_type: wait-plugin
  method: AWAIT_FORKED_JOB
  await_forked_tasks: [call-plugin]
"""
    )

    done = walk.wait(walk.submit("plugin-client"))

    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    (child,) = get_runtime().requests.list_children(done.request_id)
    assert walk.request(child.child_id).job_version == 1
    assert "one" in walk.log(child.child_id, "run")


ITEM_CHILD = """
job_type: item-child
tasks:
- task_type: handle
  method: SHELL
  script:
    - echo "start {{ .item }} $(date +%s.%N)"
    - if [ "{{ .item }}" = "bad" ]; then exit 9; fi
    - sleep {{ if hasPrefix "slow" .item }}3{{ else }}0.4{{ end }}
"""

FAN = """
job_type: fan-parent
tasks:
- task_type: each
  fan_out:
    source: '{{ .Items }}'
    item_var: item
    max_parallel: 3
    fail_fast: {{ .FailFast }}
    fork_job_type: item-child
  on_completed: report
- task_type: report
  method: SHELL
  script:
    - echo "{{ .item_0_status }} {{ .item_9_status }} {{ .item_9_id }}"
"""


def _window(request: JobRequestItem) -> tuple[datetime, datetime]:
    assert request.started_at is not None and request.ended_at is not None
    return datetime.fromisoformat(request.started_at), datetime.fromisoformat(request.ended_at)


def test_fan_out_runs_ten_items_three_at_a_time_and_reports_each(walk: Walk) -> None:
    walk.upload(ITEM_CHILD)
    walk.upload(FAN)

    items = json.dumps([f"i{n}" for n in range(10)])
    done = walk.wait(walk.submit("fan-parent", {"Items": items, "FailFast": "false"}), timeout=120)

    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    children = sorted(get_runtime().requests.list_children(done.request_id), key=lambda c: c.index or 0)
    assert [c.index for c in children] == list(range(10))
    requests = [walk.request(c.child_id) for c in children]
    assert [r.params["item"] for r in requests] == [f"i{n}" for n in range(10)]
    # Peak concurrency, from the children's own started/ended times: exactly max_parallel.
    windows = [_window(r) for r in requests]
    peak = max(sum(1 for start, end in windows if start <= moment < end) for moment, _ in windows)
    assert peak == 3
    assert f"COMPLETED COMPLETED {children[9].child_id}" in walk.log(done.request_id, "report")


def test_fan_out_fail_fast_cancels_the_rest(walk: Walk) -> None:
    walk.upload(ITEM_CHILD)
    walk.upload(FAN)

    items = json.dumps(["slow-0", "bad", "slow-2", *(f"i{n}" for n in range(3, 10))])
    done = walk.wait(walk.submit("fan-parent", {"Items": items, "FailFast": "true"}), timeout=120)

    assert done.job_state == JobState.FAILED
    tasks = {task.task_type: task for task in walk.tasks(done.request_id)}
    assert "item 1" in (tasks["each"].error_message or "")
    # The first three started; the failure of item 1 cancelled the two still running, and the
    # seven others were never forked.
    children = sorted(get_runtime().requests.list_children(done.request_id), key=lambda c: c.index or 0)
    assert [c.index for c in children] == [0, 1, 2]
    states = [walk.wait(child.child_id).job_state for child in children]
    assert states == [JobState.CANCELLED, JobState.FAILED, JobState.CANCELLED]


def test_a_fan_out_source_that_is_not_an_array_fails_the_task(walk: Walk) -> None:
    walk.upload(ITEM_CHILD)
    walk.upload(FAN)

    done = walk.wait(walk.submit("fan-parent", {"Items": '{"a": 1}', "FailFast": "false"}))

    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_FAN_OUT")


def test_a_fork_whose_variables_pass_the_params_limit_fails_naming_it(walk: Walk) -> None:
    walk.upload(SLOW_CHILD)
    walk.upload(
        """
job_type: too-big
tasks:
- task_type: fork
  method: FORK_JOB
  fork_job_type: slow
  variables:
    A: "{{ .Big }}"
    B: "{{ .Big }}"
"""
    )

    done = walk.wait(walk.submit("too-big", {"Big": "x" * 40_000}))

    tasks = {task.task_type: task for task in walk.tasks(done.request_id)}
    assert (done.job_state, tasks["fork"].error_code) == (JobState.FAILED, "ERR_FORK_JOB")
    assert "the limit is 65536" in (tasks["fork"].error_message or "")
    assert get_runtime().requests.list_children(done.request_id) == []
