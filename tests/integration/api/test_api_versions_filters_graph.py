"""A definition's versions, the filters of the definitions listing, and a request's walk as a graph."""

from __future__ import annotations

from typing import Any

from formica.store.requests import now_iso

from tests.integration.api.conftest import DATA, ApiWorld

YAML = {"Content-Type": "application/yaml"}
HELLO = (DATA / "hello-job.yaml").read_text()


def _upload(world: ApiWorld, text: str, token: str | None = None) -> Any:
    return world.call(
        "POST", "/api/jobs/definitions", body=text, headers=YAML, token=token or world.acme_token
    )


def _record(world: ApiWorld, request_id: str, seq: int, task_type: str, **fields: Any) -> None:
    """Given: the walk recorded a task execution (what Advance writes)."""
    world.services.requests.update_task(
        request_id,
        seq,
        {"request_id": request_id, "seq": seq, "task_type": task_type, "started_at": now_iso(), **fields},
    )


# -- versions -------------------------------------------------------------------------------------


def test_versions_list_newest_first_in_pages_and_mark_the_latest(world: ApiWorld) -> None:
    for n in range(3):
        assert _upload(world, HELLO + f"# revision {n}\n").status in (200, 201)

    first = world.call("GET", "/api/jobs/definitions/hello-job/versions", query={"limit": 2})
    assert first.status == 200
    body = first.json()
    assert body["job_type"] == "hello-job" and body["latest_version"] == 3
    assert [(r["version"], r["latest"]) for r in body["records"]] == [(3, True), (2, False)]
    assert all(len(r["sha256"]) == 64 and r["id"] and r["created_at"] for r in body["records"])
    rest = world.call(
        "GET",
        "/api/jobs/definitions/hello-job/versions",
        query={"limit": 2, "next_token": body["next_token"]},
    )
    assert [r["version"] for r in rest.json()["records"]] == [1]
    assert rest.json()["next_token"] is None


def test_versions_are_the_callers_own_and_cursors_stay_with_their_job_type(world: ApiWorld) -> None:
    for n in range(2):
        _upload(world, HELLO + f"# revision {n}\n")
    _upload(world, HELLO.replace("hello-job", "other-job"))
    page = world.call("GET", "/api/jobs/definitions/hello-job/versions", query={"limit": 1}).json()

    assert (
        world.call("GET", "/api/jobs/definitions/hello-job/versions", token=world.other_token).status == 404
    )
    assert world.call("GET", "/api/jobs/definitions/nope/versions").status == 404
    foreign = world.call(
        "GET", "/api/jobs/definitions/other-job/versions", query={"next_token": page["next_token"]}
    )
    assert foreign.status == 400 and "next_token" in foreign.body


# -- listing filters ------------------------------------------------------------------------------


def _three_job_types(world: ApiWorld) -> None:
    for name in ("alpha-a", "alpha-b", "beta"):
        assert _upload(world, HELLO.replace("hello-job", name)).status == 201
    assert world.call("POST", "/api/jobs/definitions/alpha-b/disable").status == 200
    assert _upload(world, HELLO.replace("hello-job", "alpha-c"), token=world.other_token).status == 201


def _names(world: ApiWorld, **query: Any) -> list[str]:
    response = world.call("GET", "/api/jobs/definitions", query=query)
    assert response.status == 200, response.body
    return [record["job_type"] for record in response.json()["records"]]


def test_definitions_filter_by_name_prefix_and_disabled(world: ApiWorld) -> None:
    _three_job_types(world)

    assert _names(world, q="alpha") == ["alpha-a", "alpha-b"]  # never the other org's alpha-c
    assert _names(world, disabled="true") == ["alpha-b"]
    assert _names(world, disabled="false") == ["alpha-a", "beta"]
    assert _names(world, q="alpha", disabled="false") == ["alpha-a"]
    assert _names(world, q="gamma") == []


def test_definitions_filters_page_and_refuse_bad_values(world: ApiWorld) -> None:
    _three_job_types(world)

    first = world.call("GET", "/api/jobs/definitions", query={"q": "alpha", "limit": 1}).json()
    assert [r["job_type"] for r in first["records"]] == ["alpha-a"]
    second = world.call(
        "GET", "/api/jobs/definitions", query={"q": "alpha", "limit": 1, "next_token": first["next_token"]}
    )
    assert [r["job_type"] for r in second.json()["records"]] == ["alpha-b"]
    # A cursor of one prefix used with another: 400 naming next_token, never DynamoDB's 500.
    other_prefix = world.call(
        "GET", "/api/jobs/definitions", query={"q": "beta", "next_token": first["next_token"]}
    )
    assert other_prefix.status == 400 and "next_token" in other_prefix.body
    assert world.call("GET", "/api/jobs/definitions", query={"q": "a/b"}).status == 400
    assert world.call("GET", "/api/jobs/definitions", query={"disabled": "maybe"}).status == 400


# -- a request's graph ----------------------------------------------------------------------------


def test_request_graph_colours_tasks_and_draws_the_walk_taken(world: ApiWorld) -> None:
    _upload(world, HELLO)
    request_id = world.call("POST", "/api/jobs/requests", json_body={"job_type": "hello-job"}).json()["id"]
    _record(world, request_id, 1, "greet", task_state="COMPLETED", exit_code="0", attempts=1)
    _record(world, request_id, 2, "bye", task_state="FAILED", exit_code="3", attempts=2)

    response = world.call("GET", f"/api/jobs/requests/{request_id}/graph")

    assert response.status == 200, response.body
    graph = response.json()
    assert (graph["job_type"], graph["job_version"]) == ("hello-job", 1)
    assert graph["edges"] == [{"from_task": "greet", "to_task": "bye", "label": "completed", "job_retry": 0}]
    assert [(t["task_type"], t["task_state"], t["exit_code"], t["attempts"]) for t in graph["tasks"]] == [
        ("greet", "COMPLETED", "0", 1),
        ("bye", "FAILED", "3", 2),
    ]
    mermaid = graph["mermaid"]
    assert mermaid.startswith("flowchart TD\n")
    assert "    class t0 completed\n" in mermaid and "    class t1 failed\n" in mermaid
    assert "    linkStyle 0 stroke-width:4px" in mermaid


def test_request_graph_marks_a_job_restart_and_untouched_tasks(world: ApiWorld) -> None:
    _upload(world, HELLO)
    request_id = world.call("POST", "/api/jobs/requests", json_body={"job_type": "hello-job"}).json()["id"]
    _record(world, request_id, 1, "greet", task_state="FAILED", exit_code="1", attempts=1)
    _record(world, request_id, 2, "greet", task_state="EXECUTING", job_retry=1, attempts=0)

    graph = world.call("GET", f"/api/jobs/requests/{request_id}/graph").json()

    assert graph["edges"] == [{"from_task": "greet", "to_task": "greet", "label": "restart", "job_retry": 1}]
    assert [(t["task_type"], t["task_state"], t["executions"]) for t in graph["tasks"]] == [
        ("greet", "EXECUTING", 2),
        ("bye", None, 0),
    ]
    assert "linkStyle" not in graph["mermaid"]  # a restart is not an edge of the definition
    tasks = world.call("GET", f"/api/jobs/requests/{request_id}").json()["tasks"]
    assert [(t["task_type"], t["job_retry"], t["task_retry"]) for t in tasks] == [
        ("greet", 0, 0),
        ("greet", 1, 0),
    ]


def test_request_graph_shows_a_rerun_after_post_restart(world: ApiWorld) -> None:
    _upload(world, HELLO)
    request_id = world.call("POST", "/api/jobs/requests", json_body={"job_type": "hello-job"}).json()["id"]
    _record(world, request_id, 1, "greet", task_state="COMPLETED", exit_code="0", attempts=1)
    _record(world, request_id, 2, "bye", task_state="FAILED", exit_code="1", attempts=1)
    _record(world, request_id, 3, "greet", task_state="COMPLETED", exit_code="0", attempts=1)  # job_retry 0

    graph = world.call("GET", f"/api/jobs/requests/{request_id}/graph").json()

    assert [(e["from_task"], e["to_task"], e["label"]) for e in graph["edges"]] == [
        ("greet", "bye", "completed"),
        ("bye", "greet", "restart"),
    ]


def test_request_graph_is_the_callers_own(world: ApiWorld) -> None:
    _upload(world, HELLO)
    request_id = world.call("POST", "/api/jobs/requests", json_body={"job_type": "hello-job"}).json()["id"]
    _record(world, request_id, 1, "greet", task_state="COMPLETED", exit_code="0", attempts=1)

    other = world.call("GET", f"/api/jobs/requests/{request_id}/graph", token=world.other_token)

    assert other.status == 404 and "greet" not in other.body
    assert world.call("GET", "/api/jobs/requests/no-such-request/graph").status == 404
