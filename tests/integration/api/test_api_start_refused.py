"""An accepted request is never lost: a StartExecution refused after the request is stored still
answers 201 with the stored request (its id and state), never a 500 that hides the id."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
from formica.api.services import use_services
from formica.runtime.executions import ERR_START_FAILED, ExecutionError
from formica.store.requests import JobState, RequestFinishedError

from tests.integration.api.conftest import ApiWorld, FakeRuntime, submit
from tests.integration.api.tables import TABLE


@dataclass
class _RefusingRuntime(FakeRuntime):
    """What runtime.start_request does when StartExecution is refused: the request ends FAILED
    with ERR_START_FAILED (its slot released), then the error is raised."""

    ddb: Any = None

    def start(self, request_id: str) -> None:
        self.started.append(request_id)
        self.requests.mark_started(request_id, execution_name=f"exec-{request_id}")
        # as the walk's fail_job leaves it
        self.ddb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": f"REQ#{request_id}"}, "sk": {"S": "REQ"}},
            UpdateExpression="SET job_state = :failed, error_code = :code",
            ExpressionAttributeValues={":failed": {"S": "FAILED"}, ":code": {"S": ERR_START_FAILED}},
        )
        raise ExecutionError("StartExecution refused: ServiceUnavailable")


@pytest.fixture
def refusing(defined: ApiWorld) -> ApiWorld:
    runtime = _RefusingRuntime(defined.services.requests, ddb=defined.ddb)
    use_services(replace(defined.services, runtime=runtime))
    defined.runtime = runtime
    return defined


def test_a_refused_start_answers_201_with_the_stored_failed_request(refusing: ApiWorld) -> None:
    response = submit(refusing, {"job_type": "hello-job"}, headers={"Idempotency-Key": "k-1"})

    assert response.status == 201
    body: dict[str, Any] = response.json()
    assert (body["job_state"], body["error_code"]) == ("FAILED", ERR_START_FAILED)
    assert refusing.runtime.started == [body["id"]]
    # the caller can see it, and a retry with the same key gets the same request, not a second one
    assert refusing.call("GET", f"/api/jobs/requests/{body['id']}").json()["id"] == body["id"]
    again = submit(refusing, {"job_type": "hello-job"}, headers={"Idempotency-Key": "k-1"})
    assert (again.status, again.json()["id"]) == (200, body["id"])
    assert refusing.runtime.started == [body["id"]]


@dataclass
class _RacedRuntime(FakeRuntime):
    """The minute sweep admitted the request between its write and the submit's own start."""

    def start(self, request_id: str) -> None:
        super().start(request_id)
        raise RequestFinishedError(request_id, JobState.STARTED)


def test_a_request_the_sweep_admitted_first_answers_201_not_409(defined: ApiWorld) -> None:
    runtime = _RacedRuntime(defined.services.requests)
    use_services(replace(defined.services, runtime=runtime))

    response = submit(defined, {"job_type": "hello-job"})

    assert response.status == 201, response.body
    assert response.json()["job_state"] == "STARTED"
