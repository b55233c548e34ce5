"""Task fan-out end to end against a real `formica dev` subprocess: a SHELL task run once per item
in the same request (its instances invoked asynchronously through the dev server's in-process
dispatch), each instance's log through the API's instance selector and `formica logs --instance`,
and the per-instance results in a later task's template."""

from __future__ import annotations

import json

import httpx

from tests.e2e.devserver import DevHandle, submit, upload, wait_for

GREET_EACH = """\
job_type: greet-each
tasks:
- task_type: greet
  method: SHELL
  fan_out:
    source: '{{ .Names }}'
    item_var: name
    max_parallel: 2
  script:
    - echo "hello {{ .name }} (item {{ .FanOutIndex }})"
    - echo "Greeting=hi-{{ .name }}" >> "$FORMICA_OUTPUTS"
    - if [ "{{ .name }}" = "mallory" ]; then exit 4; fi
  on_completed: summary
  on_failed: summary
- task_type: summary
  method: SHELL
  script:
    - echo "{{ .name_0_Greeting }} {{ .name_2_status }} {{ .name_2_exit_code }} of {{ .FanOutItems }}"
"""


def test_a_task_fans_out_in_formica_dev_and_each_instance_log_is_readable(
    api: httpx.Client, dev: DevHandle
) -> None:
    # Given a SHELL task fanned out over four names, one of which fails
    upload(api, GREET_EACH)

    # When it runs in formica dev
    request_id = submit(api, "greet-each", {"Names": json.dumps(["alice", "bob", "mallory", "carol"])})
    done = wait_for(api, request_id, timeout=90)

    # Then the job failed with the fan-out's failure (item 2's exit code), and on_failed still ran
    # summary, whose template read the instances' results and outputs
    assert done["job_state"] == "FAILED", done
    assert "item 2" in (done["error_message"] or ""), done
    logs = f"/api/jobs/requests/{request_id}/tasks"
    summary = api.get(f"{logs}/summary/logs")
    assert summary.status_code == 200, summary.text
    assert "hi-alice FAILED 4 of 4" in summary.text
    # And each instance's log is read through the logs route's instance selector
    third = api.get(f"{logs}/greet/logs", params={"instance": 2})
    assert third.status_code == 200, third.text
    assert "hello mallory (item 2)" in third.text
    # And the task's own log has a line per instance
    own = api.get(f"{logs}/greet/logs")
    assert "[item 2 'mallory': FAILED (4)]" in own.text, own.text
    # And an instance that never ran, or a selector mixed with since, is refused with the reason
    missing = api.get(f"{logs}/greet/logs", params={"instance": 9})
    assert missing.status_code == 404 and "ran no instance 9" in missing.text
    mixed = api.get(f"{logs}/greet/logs", params={"instance": 0, "since": 0})
    assert mixed.status_code == 400 and "without attempt, since or follow" in mixed.text
    # And the CLI prints one instance's log
    ran = dev.cli()("logs", request_id, "greet", "--instance", "1")
    assert ran.code == 0, ran.err
    assert "hello bob (item 1)" in ran.out
