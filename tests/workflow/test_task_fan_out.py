"""Task fan-out (a fan_out without fork_job_type) through the real ASL on moto: the task itself runs
once per item inside the same request, its instances invoked asynchronously through the in-process
Lambda dispatch, recorded apart (``INST#`` items), and the task's step committed once."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from formica.engine.walk import JobState
from formica.runtime import cancel_request, get_runtime
from formica.runtime.attempts import run_shell_task
from formica.runtime.task_fanout import INSTANCE_CHECK_SECONDS, sweep_instances
from formica.store.logs import TaskLogs, instance_live_prefix, live_prefix
from formica.store.requests import InstanceItem, InstanceState, iso

from tests.fanout_jobs import SAME_NAME_EACH
from tests.workflow.conftest import ORG, Walk

EACH = """
job_type: task-fan
tasks:
- task_type: each
  method: SHELL
  fan_out:
    source: '{{ .Items }}'
    item_var: item
    max_parallel: 3
    fail_fast: {{ .FailFast }}
  script:
    - echo "Start=$(date +%s.%N)" >> "$FORMICA_OUTPUTS"
    - echo "item {{ .item }} index {{ .FanOutIndex }} env $item"
    - if [ "{{ .item }}" = "bad" ]; then exit 9; fi
    - sleep {{ if hasPrefix "slow" .item }}4{{ else }}0.5{{ end }}
    - echo "End=$(date +%s.%N)" >> "$FORMICA_OUTPUTS"
  on_completed: report
  on_exit_code:
    9: handle-bad
- task_type: report
  method: SHELL
  script:
    - echo "{{ .item_0_status }} {{ .item_9_status }} {{ .item_9_exit_code }} {{ .FanOutItems }}"
- task_type: handle-bad
  method: SHELL
  script:
    - echo "handled"
    - exit 3
"""


def _instances(request_id: str, step: int) -> list[InstanceItem]:
    return get_runtime().requests.list_instances(request_id, step)


def _fan_out_step(walk: Walk, request_id: str) -> int:
    (each,) = [task for task in walk.tasks(request_id) if task.task_type == "each"]
    outputs = walk.request(request_id).walk.outputs.get("each", {})
    if "FanOutStep" in outputs:
        return int(outputs["FanOutStep"])
    # A failed fan-out publishes no outputs: its instances are under the step it ran at.
    items = get_runtime().requests._query_prefix(request_id, "INST#")
    steps = {int(item["step"]["N"]) for item in items}
    assert len(steps) == 1, (each, steps)
    return steps.pop()


def test_ten_items_run_three_at_a_time_and_later_templates_read_each_result(walk: Walk) -> None:
    # Given a SHELL task fanned out over 10 items, at most 3 at once
    walk.upload(EACH)
    items = [f"i{n}" for n in range(10)]

    # When the job runs
    done = walk.wait(walk.submit("task-fan", {"Items": json.dumps(items), "FailFast": "false"}), timeout=120)

    # Then every item ran once, with its item and index in its templates and environment
    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    instances = _instances(done.request_id, _fan_out_step(walk, done.request_id))
    assert [instance.index for instance in instances] == list(range(10))
    assert all(instance.state == InstanceState.COMPLETED for instance in instances)
    for instance in instances:
        assert instance.log_key is not None
        log = walk.blob(instance.log_key).decode()
        assert f"item i{instance.index} index {instance.index} env i{instance.index}" in log
    # And the peak concurrency, from the instances' own start and end times, is exactly 3
    windows = [(float(i.outputs["Start"]), float(i.outputs["End"])) for i in instances]
    peak = max(sum(1 for start, end in windows if start <= moment < end) for moment, _ in windows)
    assert peak == 3
    # And a later task reads each instance's result
    assert "COMPLETED COMPLETED 0 10" in walk.log(done.request_id, "report")
    # And the fan-out task's own log names every instance
    summary = walk.log(done.request_id, "each")
    assert "[item 9 'i9': COMPLETED (0)]" in summary or '[item 9 "i9": COMPLETED (0)]' in summary


def test_fail_fast_starts_nothing_after_the_failure_and_routes_its_exit_code(walk: Walk) -> None:
    # Given fail_fast, and item 1 that exits 9 while items 0 and 2 run for seconds
    walk.upload(EACH)
    items = ["slow-0", "bad", "slow-2", *(f"i{n}" for n in range(3, 10))]

    # When the job runs
    done = walk.wait(walk.submit("task-fan", {"Items": json.dumps(items), "FailFast": "true"}), timeout=120)

    # Then the task ended with exit code 9, routed by its on_exit_code to handle-bad (which fails the job)
    tasks = {task.task_type: task for task in walk.tasks(done.request_id)}
    assert tasks["each"].exit_code == "9", tasks["each"]
    assert "item 1" in (tasks["each"].error_message or "")
    assert "handle-bad" in tasks and "report" not in tasks
    assert done.job_state == JobState.FAILED
    # And no instance started after the failure: only the first three exist, and the two still
    # running stopped through their stop probe (cancelled, without waiting out their sleep)
    step = _fan_out_step(walk, done.request_id)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(i.is_final for i in _instances(done.request_id, step)):
        time.sleep(0.2)
    instances = _instances(done.request_id, step)
    assert [instance.index for instance in instances] == [0, 1, 2]
    assert [instance.state for instance in instances] == [
        InstanceState.CANCELLED,
        InstanceState.FAILED,
        InstanceState.CANCELLED,
    ]
    failed = instances[1]
    assert failed.exit_code == "9"
    assert failed.ended_at is not None
    # (each was created by a look before the failure ended; one may be claimed by its invocation
    # after it, and then ends at once, cancelled, without running)
    assert all(i.created_at <= failed.ended_at for i in instances)


def test_a_replayed_instance_invocation_runs_nothing_twice(walk: Walk) -> None:
    # Given a fan-out over one item that has run
    walk.upload(EACH)
    done = walk.wait(walk.submit("task-fan", {"Items": '["once"]', "FailFast": "false"}), timeout=60)
    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    step = _fan_out_step(walk, done.request_id)
    (before,) = _instances(done.request_id, step)

    # When its invocation is delivered again (Lambda's asynchronous invocations are at least once)
    answer = run_shell_task({"request_id": done.request_id, "step": step, "index": 0}, get_runtime())

    # Then it runs nothing and changes nothing
    assert answer["ran"] is False
    (after,) = _instances(done.request_id, step)
    assert after == before
    assert walk.request(done.request_id).step == done.step


def test_http_instances_call_each_item_and_fail_with_the_first_failing_status(
    walk: Walk, web: object
) -> None:
    # Given an HTTP task fanned out over four paths, one answering 500
    base = web.base_url  # type: ignore[attr-defined]
    walk.upload(
        f"""
job_type: http-fan
tasks:
- task_type: get-each
  method: HTTP_GET
  url: '{base}{{{{ .path }}}}'
  fan_out:
    source: '["/todos/1", "/status/204", "/status/500", "/todos/1"]'
    item_var: path
    max_parallel: 2
"""
    )

    # When the job runs
    done = walk.wait(walk.submit("http-fan"), timeout=60)

    # Then every item was called, and the task failed with the failing item's status
    assert done.job_state == JobState.FAILED
    hits = web.hits  # type: ignore[attr-defined]
    assert hits.get("/todos/1") == 2 and hits.get("/status/204") == 1 and hits.get("/status/500") == 1
    (task,) = walk.tasks(done.request_id)
    assert task.exit_code == "500"
    assert "item 2" in (done.error_message or ""), (task, done.error_message)


def test_an_empty_source_runs_nothing_and_completes(walk: Walk) -> None:
    walk.upload(EACH)

    done = walk.wait(walk.submit("task-fan", {"Items": "[]", "FailFast": "false"}), timeout=60)

    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    assert _instances(done.request_id, _fan_out_step(walk, done.request_id)) == []
    assert walk.log(done.request_id, "report").strip().endswith(" 0")


def test_the_sweep_ends_an_instance_running_past_its_limit_and_the_fan_out_goes_on(walk: Walk) -> None:
    # Given a fan-out whose first three instances are running (max_parallel 3) and a fourth waits
    walk.upload(EACH)
    items = json.dumps(["slow-0", "slow-1", "slow-2", "i3"])
    request_id = walk.submit("task-fan", {"Items": items, "FailFast": "false"})
    walk.wait_for(
        request_id,
        lambda request: (
            sum(i.state == InstanceState.RUNNING for i in _instances(request_id, request.step)) == 3
        ),
    )
    step = walk.request(request_id).step

    # When the minute sweep, on a clock an hour ahead, takes them for lost (over its limit: here 0 s,
    # in AWS 16 minutes, past any Lambda invocation), and sweeps again
    moment = datetime.now(UTC) + timedelta(hours=1)
    sweeper = replace(get_runtime(), now=lambda: moment)
    first = sweep_instances(sweeper, lost_after_seconds=0)
    again = sweep_instances(sweeper, lost_after_seconds=3600)

    # Then each was ended once, FAILED as a lost attempt, and the sweep's look started the next item
    assert (first, again) == (3, 0)
    done = walk.wait(request_id, timeout=60)
    instances = _instances(request_id, step)
    assert [i.state for i in instances] == [InstanceState.FAILED] * 3 + [InstanceState.COMPLETED]
    assert {i.error_code for i in instances[:3]} == {"ERR_TASK_ATTEMPT_LOST"}
    # (ended, and the next one created, at the sweeping runtime's moment)
    assert {i.ended_at for i in instances[:3]} == {iso(moment)} == {instances[3].created_at}
    # And the task failed with the lost instance's error, naming its item
    assert (done.job_state, done.error_code) == (JobState.FAILED, "ERR_TASK_ATTEMPT_LOST")
    assert "item 0" in (done.error_message or "")
    # (The three scripts, still sleeping, stop at their next stop check: let them before moto goes.)
    time.sleep(2 * INSTANCE_CHECK_SECONDS)


def test_cancelling_the_request_stops_its_running_instances(walk: Walk) -> None:
    # Given three instances sleeping for seconds and three more waiting
    walk.upload(EACH)
    items = json.dumps([f"slow-{n}" for n in range(6)])
    request_id = walk.submit("task-fan", {"Items": items, "FailFast": "false"})
    walk.wait_for(
        request_id,
        lambda request: (
            sum(i.state == InstanceState.RUNNING for i in _instances(request_id, request.step)) == 3
        ),
    )
    step = walk.request(request_id).step

    # When the request is cancelled
    cancel_request(ORG, request_id, get_runtime())

    # Then the job ends CANCELLED, the running instances stop through their stop check (well before
    # their 4 s sleep ends) and no waiting instance starts
    assert walk.wait(request_id, timeout=30).job_state == JobState.CANCELLED
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not all(i.is_final for i in _instances(request_id, step)):
        time.sleep(0.1)
    instances = _instances(request_id, step)
    assert [(i.index, i.state) for i in instances] == [(n, InstanceState.CANCELLED) for n in range(3)]


def test_a_running_instance_streams_under_its_own_live_prefix_and_its_whole_log_replaces_it(
    walk: Walk,
) -> None:
    # Given one instance that prints, then sleeps past a live log flush (3 s), then prints again
    walk.upload(EACH)
    request_id = walk.submit("task-fan", {"Items": '["slow-only"]', "FailFast": "false"})
    walk.wait_for(
        request_id,
        lambda request: any(i.state == InstanceState.RUNNING for i in _instances(request_id, request.step)),
    )
    step = walk.request(request_id).step
    prefix = instance_live_prefix(ORG, request_id, "each", step, 0)
    logs = TaskLogs(get_runtime().blobs)

    # When its live log is read while it runs
    deadline = time.monotonic() + 20
    live = b""
    while time.monotonic() < deadline and b"item slow-only" not in live:
        live = logs.read_live(prefix, 0).data
        time.sleep(0.2)

    # Then its first line was there before it ended, under its own instance, not the task's attempt
    assert b"item slow-only index 0" in live
    (running,) = _instances(request_id, step)
    assert running.state == InstanceState.RUNNING
    assert get_runtime().blobs.list_keys(live_prefix(ORG, request_id, "each", 1)) == []
    # And once it ended, its whole log begins with what the chunks held, and the chunks are gone
    done = walk.wait(request_id, timeout=60)
    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    (ended,) = _instances(request_id, step)
    assert ended.log_key is not None and walk.blob(ended.log_key).startswith(live)
    assert get_runtime().blobs.list_keys(prefix) == []


def test_instances_writing_the_same_name_keep_each_their_own_and_a_dependent_task_receives_both(
    walk: Walk,
) -> None:
    # Given two instances that each upload out/result.txt, and a task that depends on them
    walk.upload(SAME_NAME_EACH.format(job_type="same-name-each"))

    # When the job runs
    done = walk.wait(walk.submit("same-name-each"), timeout=60)

    # Then each file is kept under its own instance's directory, its item naming the instance
    assert done.job_state == JobState.COMPLETED, (done.error_code, done.error_message)
    artifacts = [a for a in get_runtime().requests.list_artifacts(done.request_id) if a.kind == "artifact"]
    assert sorted((a.instance, a.name) for a in artifacts) == [
        (0, "instance-0/out/result.txt"),
        (1, "instance-1/out/result.txt"),
    ]
    assert {walk.blob(a.key) for a in artifacts} == {b"colour red\n", b"colour blue\n"}
    # And the dependent task received both, without collision
    assert "colour red\ncolour blue" in walk.log(done.request_id, "read")
