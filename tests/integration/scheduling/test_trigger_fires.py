"""Triggers on moto: a webhook's auth rules, the rate limit under racing events, dedup's window,
dropped events kept per organisation with a TTL."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from formica.jobs.models import TriggerType
from formica.runtime.triggers import (
    TriggerNotFoundError,
    TriggerOutcome,
    TriggerSignatureError,
    find_trigger,
    fire_trigger,
    receive_webhook,
)
from formica.store.triggers import TriggerRepository, triggers_pk

from tests.integration.scheduling.conftest import ORG, TABLE, World

UNSIGNED = "triggers:\n- type: webhook\n  name: hook\n"
EXPLICITLY_OPEN = "triggers:\n- type: webhook\n  name: hook\n  auth: {method: none}\n"
LIMITED = (
    "triggers:\n- type: queue\n  name: q\n  topic: orders\n  rate_limit: {max: 5, window: 1h}\n"
    "  params: {n: '{{ .Message.n }}'}\n"
)
DEDUP = (
    "triggers:\n- type: queue\n  name: q\n  topic: orders\n"
    "  dedup_key: '{{ .Message.id }}'\n  dedup_window: 1m\n"
)


def _webhook(world: World, job_type: str, *, require_auth: bool, org: str = ORG) -> TriggerOutcome:
    return receive_webhook(
        world.runtime,
        org,
        job_type,
        "hook",
        body=b'{"a": 1}',
        headers={},
        query={},
        require_auth=require_auth,
    ).outcome


def _requests(world: World) -> list[str]:
    items = world.ddb.scan(TableName=TABLE)["Items"]
    return [item["request_id"]["S"] for item in items if item["sk"]["S"] == "REQ"]


def test_a_webhook_without_auth_is_refused_in_aws_unless_it_says_none(world: World) -> None:
    world.define("unsigned", extra=UNSIGNED)
    world.define("open", extra=EXPLICITLY_OPEN)

    with pytest.raises(TriggerSignatureError, match="declares no auth"):
        _webhook(world, "unsigned", require_auth=True)
    assert _requests(world) == []

    assert _webhook(world, "open", require_auth=True) is TriggerOutcome.STARTED
    assert _webhook(world, "unsigned", require_auth=False) is TriggerOutcome.STARTED
    assert len(_requests(world)) == 2


def test_a_signed_webhook_whose_secret_config_is_missing_is_refused(world: World) -> None:
    world.define("signed", extra=UNSIGNED + "  auth: {method: hmac_sha256, secret_config: MISSING}\n")

    with pytest.raises(TriggerSignatureError):
        _webhook(world, "signed", require_auth=True)
    assert _requests(world) == []


def test_another_organisations_trigger_is_not_found(world: World) -> None:
    world.define("open", extra=EXPLICITLY_OPEN)

    with pytest.raises(TriggerNotFoundError):
        _webhook(world, "open", require_auth=False, org="someone-else")
    with pytest.raises(TriggerNotFoundError):
        find_trigger(world.runtime, ORG, "open", TriggerType.QUEUE, "hook")  # wrong type


def test_racing_events_never_pass_the_rate_limit_and_the_rest_are_recorded(world: World) -> None:
    # Given a trigger allowing 5 starts per hour; when 12 events race
    world.define("limited", extra=LIMITED)
    job = find_trigger(world.runtime, ORG, "limited", TriggerType.QUEUE, "q")
    store = TriggerRepository(TABLE, client=world.ddb)

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(
            pool.map(
                lambda n: fire_trigger(world.runtime, job, {"Message": {"n": n}}, store=store), range(12)
            )
        )

    # Then exactly 5 start and 7 are dropped, each kept with the params it would have had
    assert sorted(o.outcome for o in outcomes).count(TriggerOutcome.STARTED) == 5
    assert [o.outcome for o in outcomes].count(TriggerOutcome.DROPPED) == 7
    assert len(_requests(world)) == 5
    dropped = store.list_dropped(ORG, "limited")
    assert len(dropped) == 7
    assert {event.params["n"] for event in dropped} | {
        str(world.request(o.request_id).params["n"]) for o in outcomes if o.request_id
    } == {str(n) for n in range(12)}
    # under the organisation's partition, expiring
    items = world.ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": triggers_pk(ORG, "limited")}},
    )["Items"]
    assert items and all(int(item["expires_at"]["N"]) > time.time() for item in items)
    assert store.list_dropped("someone-else", "limited") == []


def test_a_dedup_key_starts_once_within_its_window_and_again_after(world: World) -> None:
    world.define("dedup", extra=DEDUP)
    job = find_trigger(world.runtime, ORG, "dedup", TriggerType.QUEUE, "q")
    now = time.time()

    first = fire_trigger(world.runtime, job, {"Message": {"id": "m-1"}}, now=now)
    again = fire_trigger(world.runtime, job, {"Message": {"id": "m-1"}}, now=now + 30)
    later = fire_trigger(world.runtime, job, {"Message": {"id": "m-1"}}, now=now + 61)

    assert first.outcome is TriggerOutcome.STARTED
    assert (again.outcome, again.request_id) == (TriggerOutcome.DUPLICATE, first.request_id)
    assert later.outcome is TriggerOutcome.STARTED and later.request_id != first.request_id
    stored = world.request(first.request_id)
    assert stored.user_id == "trigger:q"
    assert json.loads(json.dumps(stored.params)) == {}


def test_a_trigger_fire_is_stamped_and_deduplicated_on_the_runtimes_clock(world: World) -> None:
    # Given a trigger deduplicating for a minute, and a runtime whose clock stands at a fixed moment
    world.define("dedup", extra=DEDUP)
    job = find_trigger(world.runtime, ORG, "dedup", TriggerType.QUEUE, "q")
    world.clock.now = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

    # When an event fires it, the clock moves on 30 s and the same event comes again, then 61 s more
    first = fire_trigger(world.runtime, job, {"Message": {"id": "m-1"}})
    world.clock.advance(seconds=30)
    again = fire_trigger(world.runtime, job, {"Message": {"id": "m-1"}})
    world.clock.advance(seconds=31)
    later = fire_trigger(world.runtime, job, {"Message": {"id": "m-1"}})

    # Then the request was created at the clock's moment, and the window was the clock's minute
    assert world.request(first.request_id).created_at == "2026-05-06T07:08:09.123456+00:00"
    assert (again.outcome, again.request_id) == (TriggerOutcome.DUPLICATE, first.request_id)
    assert later.outcome is TriggerOutcome.STARTED and later.request_id != first.request_id
    assert world.request(later.request_id).created_at == "2026-05-06T07:09:10.123456+00:00"
