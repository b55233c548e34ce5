"""Task fan-out end to end against a real `formica dev` subprocess: a SHELL task run once per item
in the same request (its instances invoked asynchronously through the dev server's in-process
dispatch), each instance's log through the API's instance selector and `formica logs --instance`,
and the per-instance results in a later task's template."""

from __future__ import annotations

import json

import httpx

from tests.e2e.devserver import DevHandle, instance_piece, poll, submit, upload, wait_for
from tests.fanout_jobs import SAME_NAME_EACH

WAIT_SECONDS = 90.0

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


TALK_EACH = """\
job_type: talk-each
tasks:
- task_type: talk
  method: SHELL
  fan_out:
    source: '["quick", "slow"]'
    item_var: who
  script:
    - echo "first line of {{ .who }}"
    - sleep {{ if eq .who "slow" }}8{{ else }}0{{ end }}
    - echo "second line of {{ .who }}"
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
    mixed = api.get(f"{logs}/greet/logs", params={"instance": 0, "attempt": 1})
    assert mixed.status_code == 400 and "without attempt" in mixed.text
    # And the CLI prints one instance's log
    ran = dev.cli()("logs", request_id, "greet", "--instance", "1")
    assert ran.code == 0, ran.err
    assert "hello bob (item 1)" in ran.out


def test_a_running_instances_lines_are_read_before_it_ends_and_followed_by_the_cli(
    api: httpx.Client, dev: DevHandle
) -> None:
    # Given a SHELL task fanned out over two items, the second of which sleeps between two lines
    upload(api, TALK_EACH)

    # When it runs in formica dev, and instance 1's log is read from byte 0 while it runs
    request_id = submit(api, "talk-each")
    piece = poll(
        lambda: (p := instance_piece(api, request_id, "talk", 1)) and "first line of slow" in p["text"] and p,
        WAIT_SECONDS,
        "instance 1's first line never arrived while it ran",
    )

    # Then its first line is there before its second, the instance and the request still running
    assert "second line of slow" not in piece["text"] and piece["finished"] is False, piece
    assert piece["instance"] == 1
    assert api.get(f"/api/jobs/requests/{request_id}").json()["job_state"] == "EXECUTING"
    # And `formica logs -f --instance 1` prints the rest as it comes, each line once, and stops at its end
    followed = dev.cli().ok("logs", "-f", request_id, "talk", "--instance", "1", timeout=WAIT_SECONDS)
    lines = followed.out.splitlines()
    assert lines.index("first line of slow") < lines.index("second line of slow")
    assert lines.count("first line of slow") == 1 and "first line of quick" not in lines
    # And from where the first read stopped, the ended instance's whole log gives only what came after
    rest = instance_piece(api, request_id, "talk", 1, since=piece["next_since"])
    assert rest is not None
    assert "second line of slow" in rest["text"].splitlines()
    assert "first line of slow" not in rest["text"] and rest["finished"] is True
    done = wait_for(api, request_id, timeout=WAIT_SECONDS)
    assert done["job_state"] == "COMPLETED", done


def test_instances_writing_the_same_file_name_keep_each_their_own_and_a_dependent_task_sees_both(
    api: httpx.Client,
) -> None:
    # Given a fan-out over two items whose instances each upload out/result.txt
    upload(api, SAME_NAME_EACH.format(job_type="same-name-each"))

    # When it runs, then a task depending on it runs
    request_id = submit(api, "same-name-each")
    done = wait_for(api, request_id, timeout=WAIT_SECONDS)

    # Then the dependent task received both files, each under its instance's directory
    assert done["job_state"] == "COMPLETED", done
    read = api.get(f"/api/jobs/requests/{request_id}/tasks/read/logs").text
    assert "./instance-0/out/result.txt" in read and "./instance-1/out/result.txt" in read, read
    assert "colour red\ncolour blue" in read, read
    # And the artifacts listing says which instance each came from
    records = api.get(f"/api/jobs/requests/{request_id}/artifacts").json()["records"]
    listed = sorted((record["instance"], record["name"]) for record in records)
    assert listed == [(0, "instance-0/out/result.txt"), (1, "instance-1/out/result.txt")], records
    # And each downloads as what its own instance wrote
    for record in records:
        link = api.get(f"/api/jobs/requests/{request_id}/artifacts/{record['id']}/link")
        assert link.status_code == 200, link.text
        body = httpx.get(link.json()["url"]).text
        assert body == f"colour {'red' if record['instance'] == 0 else 'blue'}\n"
