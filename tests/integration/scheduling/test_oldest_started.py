"""The minute sweep publishes the age of the oldest request still STARTED as the EMF metric
``OldestStartedAge`` (the alarm of cdk/constructs/monitoring.py watches it): the real table on moto,
the scheduler function's own event handling, the metric read back from the EMF line it prints."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from formica.engine.walk import JobState
from formica.runtime.metrics import NAMESPACE, OLDEST_STARTED_AGE
from formica.runtime.scheduling import Admission, admit_request, handle_event

from tests.emf import emf_documents
from tests.integration.scheduling.conftest import World

SCHEDULED_EVENT = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}


def sweep_and_read_metric(
    world: World, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Handle the minute's Scheduled Event: the answer, the one OldestStartedAge document, its value."""
    capsys.readouterr()  # what admission printed (JobsStarted, QueueWait) is not under test
    answer = handle_event(SCHEDULED_EVENT, world.runtime)
    (document,) = emf_documents(capsys.readouterr().out, OLDEST_STARTED_AGE)
    # EMF allows a value or a list of values; powertools writes a list.
    value = document[OLDEST_STARTED_AGE]
    (single,) = value if isinstance(value, list) else [value]
    return answer, document, float(single)


def admitted(world: World, job_type: str) -> str:
    request_id = world.create(job_type)
    assert admit_request(request_id, world.runtime).admission == Admission.STARTED
    return request_id


def started_at(world: World, request_id: str) -> datetime:
    moment = world.request(request_id).started_at
    assert moment is not None
    return datetime.fromisoformat(moment)


def test_a_request_left_started_is_reported_with_its_age(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a request admitted (STARTED, its slot held) whose walk never claims its first attempt
    world.define("stuck")
    request_id = admitted(world, "stuck")
    # And the sweep's clock 7 minutes after its admission
    world.clock.now = started_at(world, request_id) + timedelta(minutes=7)

    # When the scheduler function handles the minute's Scheduled Event
    answer, document, value = sweep_and_read_metric(world, capsys)

    # Then the EMF document says 420 seconds, in the Formica namespace, by service only
    assert value == pytest.approx(420.0)
    assert answer["oldest_started_seconds"] == pytest.approx(420.0)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    assert directive["Dimensions"] == [["service"]]
    assert directive["Metrics"] == [{"Name": OLDEST_STARTED_AGE, "Unit": "Seconds"}]
    assert document["service"] == "formica"
    # And the request is still STARTED: reporting it changed nothing
    assert world.state(request_id) == JobState.STARTED


def test_the_oldest_started_request_of_every_job_type_counts_and_executing_ones_do_not(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given three requests of two job types, admitted in order a second apart
    world.define("alpha")
    world.define("beta", max_concurrency=2)
    walking = admitted(world, "alpha")
    world.clock.advance(seconds=1)
    oldest_started = admitted(world, "beta")
    world.clock.advance(seconds=1)
    newer = admitted(world, "alpha")
    # And the first one walking: its first attempt claimed, so EXECUTING
    assert world.runtime.requests.claim_attempt(walking, world.request(walking).step) is not None
    assert world.state(walking) == JobState.EXECUTING
    world.clock.now = started_at(world, newer) + timedelta(minutes=30)

    # When the sweep runs
    _, _, value = sweep_and_read_metric(world, capsys)

    # Then the age is the oldest STARTED one's, not the older EXECUTING one's
    expected = (world.clock.now - started_at(world, oldest_started)).total_seconds()
    assert value == pytest.approx(expected)
    assert value > (world.clock.now - started_at(world, newer)).total_seconds()
    assert value < (world.clock.now - started_at(world, walking)).total_seconds()


def test_nothing_started_reports_zero(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a request that ran and finished (its slot released), and one still PENDING behind a limit
    world.define("done", max_concurrency=1)
    finished = admitted(world, "done")
    world.finish(finished)
    world.clock.advance(hours=5)

    # When the sweep runs
    answer, _, value = sweep_and_read_metric(world, capsys)

    # Then 0 is published (a whole graph, an alarm that sees data)
    assert value == 0.0
    assert answer["oldest_started_seconds"] == 0.0
