"""A container task written without a method is named CONTAINER in the API (and so in formica status)."""

from __future__ import annotations

from tests.integration.api.conftest import ApiWorld

BUILD = """job_type: build
tasks:
- task_type: compile
  container:
    image: golang:1.22
  script: [go build ./...]
  on_completed: ship
- task_type: ship
  method: KUBERNETES
  container:
    image: alpine
"""


def test_container_tasks_are_named_in_the_definition_and_the_request(world: ApiWorld) -> None:
    # Given a definition whose first task has a container and no method
    uploaded = world.call(
        "POST", "/api/jobs/definitions", body=BUILD, headers={"Content-Type": "application/yaml"}
    )
    assert uploaded.status == 201
    request_id = world.call("POST", "/api/jobs/requests", json_body={"job_type": "build"}).json()["id"]
    world.services.requests.update_task(
        request_id,
        1,
        {
            "request_id": request_id,
            "seq": 1,
            "task_type": "compile",
            "task_state": "EXECUTING",
            "attempts": 1,
        },
    )

    # When the definition and the request are read
    definition = world.call("GET", "/api/jobs/definitions/build").json()
    request = world.call("GET", f"/api/jobs/requests/{request_id}").json()

    # Then the container task is CONTAINER and a method written stays as written
    assert [(task["task_type"], task["method"]) for task in definition["tasks"]] == [
        ("compile", "CONTAINER"),
        ("ship", "KUBERNETES"),
    ]
    assert [(task["task_type"], task["method"]) for task in request["tasks"]] == [("compile", "CONTAINER")]
