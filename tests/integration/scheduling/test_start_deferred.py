"""An accepted request is never lost: a StartExecution that fails transiently (throttling, a 5xx,
no answer) leaves the admitted request STARTED, and the sweep starts it by the same name; only a
refusal (a missing state machine, a bad name) fails it with ERR_START_FAILED."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from formica.engine.walk import JobState
from formica.runtime.executions import ExecutionError
from formica.runtime.scheduling import STALE_START_SECONDS, Admission, admit_request, sweep

from tests.integration.scheduling.conftest import ORG, World


def _throttled(**_: Any) -> Any:
    raise ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "StartExecution"
    )


def _unavailable(**_: Any) -> Any:
    response: Any = {"Error": {"Code": "SomethingNew"}, "ResponseMetadata": {"HTTPStatusCode": 503}}
    raise ClientError(response, "StartExecution")


def _unreachable(**_: Any) -> Any:
    raise EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com")


@pytest.mark.parametrize("failure", [_throttled, _unavailable, _unreachable])
def test_a_transient_start_failure_is_left_to_the_sweep(world: World, failure: Any) -> None:
    # Given Step Functions failing for a moment
    world.define("busy", max_concurrency=1)
    request_id = world.create("busy")
    working = world.sfn.start_execution
    world.sfn.start_execution = failure  # type: ignore[method-assign]

    # When the request is admitted
    result = admit_request(request_id, world.runtime)

    # Then it is admitted (slot held), not failed, and its execution is not started yet
    assert result.admission == Admission.STARTED
    assert world.state(request_id) == JobState.STARTED
    assert world.slots.running(ORG, "busy") == 1
    assert world.sfn.started == []

    # And once Step Functions answers again, the sweep starts it by its name, once
    world.sfn.start_execution = working  # type: ignore[method-assign]
    assert sweep(world.runtime).restarted == 0  # too recent to call lost
    world.clock.advance(seconds=STALE_START_SECONDS + 120)
    assert sweep(world.runtime).restarted == 1
    assert world.sfn.started == [f"{request_id}-1"]
    assert world.state(request_id) == JobState.STARTED


def test_a_refused_start_still_fails_the_request(world: World) -> None:
    world.define("broken")
    request_id = world.create("broken")
    world.sfn.refuse = True  # StateMachineDoesNotExist

    with pytest.raises(ExecutionError) as caught:
        admit_request(request_id, world.runtime)

    assert caught.value.transient is False
    request = world.request(request_id)
    assert (request.job_state, request.error_code) == (JobState.FAILED, "ERR_START_FAILED")
