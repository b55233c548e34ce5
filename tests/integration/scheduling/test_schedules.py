"""Cron schedules on EventBridge Scheduler (moto), the API's upload/disable/delete, cron fires, the
local ticker with a fake clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from formica.api.definitions import delete_definition, get_definition, set_disabled, upload_definition
from formica.api.errors import to_api_error
from formica.api.services import ApiServices
from formica.engine.walk import JobState
from formica.jobs import DefinitionError
from formica.local.ticker import LocalTicker
from formica.runtime.scheduling import Admission, cron_user_key, fire_cron, handle_event
from formica.settings import reset_settings
from formica.store.blobs import S3BlobStore
from formica.store.grants import DynamoGrantRepository
from formica.store.idempotency import IdempotencyRepository
from formica.store.requests import RequestRepository
from formica.store.schedules import EventBridgeSchedules, schedule_name
from formica.store.tokens import TokenRepository

from tests.integration.scheduling.conftest import BUCKET, ORG, REGION, TABLE, World

GROUP = "formica-test"
ROLE = "arn:aws:iam::123456789012:role/formica-test-scheduler"
TARGET = f"arn:aws:lambda:{REGION}:123456789012:function:formica-test-scheduler"
HOURLY = """\
job_type: hourly
cron_trigger: "0 * * * *"
max_concurrency: 1
tasks:
- task_type: only
  method: SHELL
  script:
    - echo hourly
"""


@pytest.fixture
def scheduler(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's EventBridge Scheduler with the stack's group, and the settings the API reads."""
    client = boto3.client("scheduler", region_name=REGION)
    client.create_schedule_group(Name=GROUP)
    monkeypatch.setenv("FORMICA_SCHEDULE_GROUP", GROUP)
    monkeypatch.setenv("FORMICA_SCHEDULER_ROLE_ARN", ROLE)
    monkeypatch.setenv("FORMICA_SCHEDULER_FUNCTION_ARN", TARGET)
    reset_settings()
    yield client
    reset_settings()


@pytest.fixture
def services(world: World) -> ApiServices:
    return ApiServices(
        definitions=world.definitions,
        requests=RequestRepository(TABLE, client=world.ddb),
        tokens=TokenRepository(TABLE, client=world.ddb),
        idempotency=IdempotencyRepository(TABLE, client=world.ddb),
        grants=DynamoGrantRepository(TABLE, client=world.ddb),
        blobs=S3BlobStore(BUCKET),
    )


def _schedules(client: Any) -> dict[str, dict[str, Any]]:
    names = [item["Name"] for item in client.list_schedules(GroupName=GROUP)["Schedules"]]
    return {name: client.get_schedule(Name=name, GroupName=GROUP) for name in names}


def test_upload_creates_the_schedule_disable_and_delete_follow(
    world: World, scheduler: Any, services: ApiServices
) -> None:
    response, status = upload_definition(services, ORG, HOURLY.encode(), "application/yaml")
    assert status == 201

    (name, schedule), *rest = _schedules(scheduler).items()
    assert rest == []
    assert name == schedule_name(ORG, "hourly")
    assert schedule["ScheduleExpression"] == "cron(0 * * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["State"] == "ENABLED"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert (schedule["Target"]["Arn"], schedule["Target"]["RoleArn"]) == (TARGET, ROLE)
    assert json.loads(schedule["Target"]["Input"]) == {
        "formica": "cron-fire",
        "org": ORG,
        "job_type": "hourly",
        "cron_trigger": "0 * * * *",
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    }
    # The definition shows when it fires next.
    assert len(response.next_fire_times) == 5
    first = datetime.fromisoformat(response.next_fire_times[0])
    assert first.minute == 0 and first > datetime.now(UTC)

    # A new version with another trigger updates the same schedule.
    upload_definition(
        services, ORG, HOURLY.replace("0 * * * *", "30 6 * * MON-FRI").encode(), "application/yaml"
    )
    (schedule,) = _schedules(scheduler).values()
    assert schedule["ScheduleExpression"] == "cron(30 6 ? * MON-FRI *)"

    disabled = set_disabled(services, ORG, "hourly", True)
    assert disabled.next_fire_times == []
    assert [s["State"] for s in _schedules(scheduler).values()] == ["DISABLED"]
    set_disabled(services, ORG, "hourly", False)
    assert [s["State"] for s in _schedules(scheduler).values()] == ["ENABLED"]

    delete_definition(services, ORG, "hourly")
    assert _schedules(scheduler) == {}


def test_removing_the_trigger_deletes_the_schedule(
    world: World, scheduler: Any, services: ApiServices
) -> None:
    upload_definition(services, ORG, HOURLY.encode(), "application/yaml")
    without = HOURLY.replace('cron_trigger: "0 * * * *"\n', "")
    upload_definition(services, ORG, without.encode(), "application/yaml")
    assert _schedules(scheduler) == {}
    assert get_definition(services, ORG, "hourly").next_fire_times == []


@pytest.mark.parametrize(
    ("trigger", "words"),
    [
        ("0 61 * * *", "hour field '61'"),
        ("*/10 * * * * * *", "cannot run on EventBridge Scheduler"),
        ("0 0 1 * MON", "EITHER day-of-month or day-of-week"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_an_invalid_or_unschedulable_trigger_is_a_400_naming_the_field(
    world: World, scheduler: Any, services: ApiServices, trigger: str, words: str
) -> None:
    with pytest.raises(DefinitionError) as raised:
        upload_definition(services, ORG, HOURLY.replace("0 * * * *", trigger).encode(), "application/yaml")
    error = to_api_error(raised.value)
    body = error.body(None).model_dump(mode="json")
    assert error.status == 400
    assert any(
        detail.get("field") == "cron_trigger" and words in detail["message"] for detail in body["details"]
    ), body
    assert _schedules(scheduler) == {}


def test_the_schedule_store_round_trip(scheduler: Any) -> None:
    store = EventBridgeSchedules(group=GROUP, role_arn=ROLE, target_arn=TARGET, client=scheduler)
    assert store.get(ORG, "nightly") is None
    assert store.delete(ORG, "nightly") is False
    from formica.store.schedules import CronSchedule

    store.put(CronSchedule(ORG, "nightly", "0 0 * * *"))
    store.put(CronSchedule(ORG, "paused", "@weekly", enabled=False))
    assert store.get(ORG, "nightly") == CronSchedule(ORG, "nightly", "0 0 * * *", enabled=True)
    assert store.list_enabled() == [CronSchedule(ORG, "nightly", "0 0 * * *")]
    assert store.delete(ORG, "nightly") is True
    assert store.list_enabled() == []


def test_schedule_names_are_valid_and_distinct() -> None:
    long_type = "io.formicary." + "x" * 200
    names = {
        schedule_name(ORG, "a"),
        schedule_name(ORG, "b"),
        schedule_name("other", "a"),
        schedule_name(ORG, long_type),
    }
    assert len(names) == 4
    for name in names:
        assert len(name) <= 64
        assert all(ch.isalnum() or ch in "-_." for ch in name)


# -- cron fires ---------------------------------------------------------------------------------


def _fire_event(slot: datetime, job_type: str = "hourly") -> dict[str, Any]:
    return {
        "formica": "cron-fire",
        "org": ORG,
        "job_type": job_type,
        "cron_trigger": "0 * * * *",
        "scheduled_time": slot.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_a_repeated_fire_never_starts_a_second_run(world: World, services: ApiServices) -> None:
    upload_definition(services, ORG, HOURLY.encode(), "application/yaml")
    slot = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    first = handle_event(_fire_event(slot), world.runtime)
    again = handle_event(_fire_event(slot), world.runtime)  # EventBridge retried the invocation
    assert first["created"] is True and first["admission"] == "STARTED"
    assert again == {"fired": True, "request_id": first["request_id"], "created": False, "admission": None}
    request = world.request(first["request_id"])
    assert request.user_key == cron_user_key("hourly", slot) == "cron:hourly:2026-11-28T11:00:00Z"
    assert world.started_ids() == [first["request_id"]]

    # The next slot is a new request; with max_concurrency 1 it waits for the first to end.
    later = fire_cron(ORG, "hourly", slot + timedelta(hours=1), world.runtime)
    assert later.created and later.admission == Admission.WAITING_FOR_SLOT
    world.finish(first["request_id"])
    assert later.request_id is not None and world.state(later.request_id) == JobState.STARTED


def test_a_fire_for_a_disabled_or_deleted_definition_does_nothing(
    world: World, services: ApiServices
) -> None:
    upload_definition(services, ORG, HOURLY.encode(), "application/yaml")
    set_disabled(services, ORG, "hourly", True)
    assert (
        handle_event(_fire_event(datetime(2026, 11, 28, 11, 0, tzinfo=UTC)), world.runtime)["fired"] is False
    )
    assert (
        handle_event(_fire_event(datetime(2026, 11, 28, 11, 0, tzinfo=UTC), "missing"), world.runtime)[
            "fired"
        ]
        is False
    )
    assert world.sfn.started == []


def test_the_minute_sweep_event_runs_the_sweep(world: World) -> None:
    world.define("later")
    request_id = world.create("later", scheduled_at=world.clock() - timedelta(seconds=1))
    world.slots.register(ORG, "later")
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    assert handle_event(event, world.runtime)["started"] == 1
    assert world.state(request_id) == JobState.STARTED


def test_an_unknown_event_is_refused(world: World) -> None:
    from formica.runtime.scheduling import SchedulerEventError

    with pytest.raises(SchedulerEventError):
        handle_event({"hello": "world"}, world.runtime)


# -- the local ticker -------------------------------------------------------------------------------


def test_a_cron_job_fires_twice_in_the_local_ticker_with_a_fake_clock(
    world: World, scheduler: Any, services: ApiServices
) -> None:
    upload_definition(
        services, ORG, HOURLY.replace("max_concurrency: 1", "max_concurrency: 0").encode(), "application/yaml"
    )
    store = EventBridgeSchedules(group=GROUP, role_arn=ROLE, target_arn=TARGET, client=scheduler)
    world.clock.now = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
    sweeps: list[datetime] = []
    ticker = LocalTicker(
        schedules=store.list_enabled,
        fire=lambda event: handle_event(event, world.runtime),
        sweep=sweeps.append,
        clock=world.clock,
        sweep_every=60,
    )

    assert ticker.tick().fired == []  # the first tick starts the clock
    world.clock.advance(minutes=29)  # 10:59
    assert ticker.tick().fired == []
    world.clock.advance(minutes=2)  # 11:01: the 11:00 slot came due
    assert ticker.tick().fired == [(ORG, "hourly", datetime(2026, 11, 28, 11, 0, tzinfo=UTC))]
    world.clock.advance(hours=1)  # 12:01
    assert ticker.tick().fired == [(ORG, "hourly", datetime(2026, 11, 28, 12, 0, tzinfo=UTC))]

    requests = [world.request(request_id) for request_id in world.started_ids()]
    assert [r.user_key for r in requests] == [
        "cron:hourly:2026-11-28T11:00:00Z",
        "cron:hourly:2026-11-28T12:00:00Z",
    ]
    assert all(r.job_state == JobState.STARTED for r in requests)
    assert len(sweeps) == 4  # every tick here: they are at least sweep_every (60 s) apart

    # The same slot delivered again (a restarted ticker, EventBridge at-least-once): no new run.
    handle_event(_fire_event(datetime(2026, 11, 28, 12, 0, tzinfo=UTC)), world.runtime)
    assert len(world.started_ids()) == 2


def test_the_ticker_catches_up_on_a_few_slots_at_most(world: World) -> None:
    from formica.store.schedules import CronSchedule

    fired: list[str] = []
    ticker = LocalTicker(
        schedules=lambda: [CronSchedule(ORG, "minutely", "* * * * *")],
        fire=lambda event: fired.append(event["scheduled_time"]),
        sweep=lambda _: None,
        clock=world.clock,
    )
    world.clock.now = datetime(2026, 11, 28, 10, 0, 30, tzinfo=UTC)
    ticker.tick()
    world.clock.advance(hours=2)  # a laptop that slept
    ticker.tick()
    assert fired == [
        "2026-11-28T11:56:00Z",
        "2026-11-28T11:57:00Z",
        "2026-11-28T11:58:00Z",
        "2026-11-28T11:59:00Z",
        "2026-11-28T12:00:00Z",
    ]


# -- the scheduler function, with the sample events ---------------------------------------------------


def test_the_scheduler_function_handles_both_sample_events(world: World, services: ApiServices) -> None:
    from formica.runtime import get_runtime, reset_runtime
    from formica.store.state_machine import StepFunctionsStateMachine

    from functions.scheduler.app import handler
    from tests.event_samples import load_event

    upload_definition(services, ORG, HOURLY.encode(), "application/yaml")
    reset_runtime()
    # The function builds its runtime from the settings; point its Step Functions at the fake.
    runtime = get_runtime()
    runtime.state_machine = StepFunctionsStateMachine(runtime.settings.state_machine_arn, world.sfn)

    class Context:
        function_name = "formica-scheduler"
        memory_limit_in_mb = 256
        invoked_function_arn = TARGET
        aws_request_id = "req-1"

    fired = handler(load_event("scheduler/cron_fire.json"), Context())
    assert fired["created"] is True and fired["admission"] == "STARTED"
    assert world.request(fired["request_id"]).user_key == "cron:hourly:2026-11-28T11:00:00Z"
    assert handler(load_event("scheduler/cron_fire.json"), Context())["created"] is False
    swept = handler(load_event("scheduler/sweep.json"), Context())
    assert swept["job_types"] == 1 and swept["started"] == 0
    reset_runtime()


def test_a_fired_cron_request_is_created_at_the_runtimes_clock(world: World, services: ApiServices) -> None:
    # Given an hourly definition, and a runtime whose clock stands a few seconds past the slot
    upload_definition(services, ORG, HOURLY.encode(), "application/yaml")
    slot = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    world.clock.now = slot + timedelta(seconds=3, microseconds=250)

    # When the slot fires
    fired = fire_cron(ORG, "hourly", slot, world.runtime)

    # Then the request was created at the clock's moment, not the wall clock's
    assert fired.request_id is not None
    assert world.request(fired.request_id).created_at == "2026-11-28T11:00:03.000250+00:00"
