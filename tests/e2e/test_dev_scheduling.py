"""Scheduling in a live `formica dev` over HTTP: cron schedules, the local sweep, max_concurrency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.e2e.devserver import submit, upload, wait_for


def test_a_cron_definition_shows_its_next_fire_times(api: httpx.Client) -> None:
    body = upload(
        api,
        """job_type: nightly
cron_trigger: "0 2 * * *"
tasks:
- task_type: only
  method: SHELL
  script:
    - echo nightly
""",
    )
    times = [datetime.fromisoformat(moment) for moment in body["next_fire_times"]]
    assert len(times) == 5
    assert all((t.hour, t.minute, t.second) == (2, 0, 0) for t in times)
    assert times == sorted(times) and times[0] > datetime.now(UTC)
    disabled = api.post("/api/jobs/definitions/nightly/disable").json()
    assert disabled["next_fire_times"] == []


def test_a_trigger_eventbridge_cannot_run_is_refused_naming_the_field(api: httpx.Client) -> None:
    response = api.post(
        "/api/jobs/definitions",
        content='job_type: too-often\ncron_trigger: "*/10 * * * * * *"\n'
        "tasks:\n- task_type: a\n  script: [x]\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code == 400, response.text
    (detail,) = [d for d in response.json()["details"] if d.get("field") == "cron_trigger"]
    assert "second field must be 0" in detail["message"]


def test_the_local_sweep_starts_a_scheduled_request_when_due(api: httpx.Client) -> None:
    upload(api, "job_type: timed\ntasks:\n- task_type: only\n  method: SHELL\n  script:\n    - echo due\n")
    due = datetime.now(UTC) + timedelta(seconds=2)
    response = api.post("/api/jobs/requests", json={"job_type": "timed", "scheduled_at": due.isoformat()})
    assert response.status_code == 201 and response.json()["job_state"] == "PENDING"
    done = wait_for(api, response.json()["id"], timeout=30)
    assert done["job_state"] == "COMPLETED"
    assert datetime.fromisoformat(done["started_at"]) >= due


def test_max_concurrency_queues_and_trigger_respects_it(api: httpx.Client) -> None:
    upload(
        api,
        "job_type: single\nmax_concurrency: 1\ntasks:\n- task_type: only\n  method: SHELL\n"
        "  script:\n    - sleep 1\n",
    )
    first = submit(api, "single")
    second = submit(api, "single")
    assert api.get(f"/api/jobs/requests/{second}").json()["job_state"] == "PENDING"
    later = api.post(
        "/api/jobs/requests",
        json={"job_type": "single", "scheduled_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
    ).json()["id"]
    triggered = api.post(f"/api/jobs/requests/{later}/trigger")
    assert triggered.status_code == 200 and triggered.json()["job_state"] == "PENDING"  # no slot yet

    finished = [wait_for(api, request_id, timeout=60) for request_id in (first, second, later)]
    assert [request["job_state"] for request in finished] == ["COMPLETED"] * 3
    spans = sorted((request["started_at"], request["ended_at"]) for request in finished)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2)), spans  # never two at once
