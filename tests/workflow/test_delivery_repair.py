"""No notification is ever stuck: the minute sweep queues again a delivery whose attempt was lost.

A crash leaves a PENDING delivery that nothing will attempt (a redelivered event does not create
it again). Each test writes the state such a crash leaves through the real repository, runs the
real sweep (the scheduler's, with the wiring's repairs) at a chosen moment, and lets the notify
function's handler (the local poller, as `formica dev` runs it) send to a receiver on loopback.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from formica.local.notify import LOCAL_BUS, LocalNotifyPoller, create_event_plumbing
from formica.local.ticker import local_scheduling
from formica.runtime import get_runtime, reset_runtime
from formica.runtime.notify import attempt_delivery
from formica.runtime.scheduling import sweep
from formica.runtime.wiring import get_notify_services
from formica.settings import reset_settings
from formica.store.deliveries import DeliveryRepository, DeliveryStatus, WebhookDeliveryItem
from formica.store.requests import iso, now_iso

from tests.fakes.webhook_receiver import WebhookReceiver, webhook_receiver
from tests.workflow.conftest import ORG, REGION, TABLE, Walk

GRACE = 300.0
"""FORMICA_DELIVERY_REPAIR_GRACE_SECONDS here (the backoff is 1 s: the largest delay 8 s)."""
SWEEP_GAP = timedelta(seconds=10)
"""Between two ticks of the local ticker's clock: more than its 2 s between sweeps."""


@pytest.fixture
def poller(walk: Walk, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalNotifyPoller]:
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = create_event_plumbing(boto3.client("events", region_name=REGION), sqs)
    monkeypatch.setenv("FORMICA_EVENT_BUS_NAME", LOCAL_BUS)
    monkeypatch.setenv("FORMICA_NOTIFY_QUEUE_URL", queue_url)
    monkeypatch.setenv("FORMICA_WEBHOOK_BACKOFF_SECONDS", "1")
    monkeypatch.setenv("FORMICA_DELIVERY_REPAIR_GRACE_SECONDS", str(GRACE))
    reset_settings()
    reset_runtime()
    yield LocalNotifyPoller(queue_url, sqs)


def finished_request(walk: Walk) -> str:
    """A request that ran (no webhook of its own: the deliveries below are written by hand)."""
    walk.upload("job_type: quiet\ntasks:\n- task_type: a\n  method: SHELL\n  script: [echo ok]\n")
    request_id = walk.submit("quiet")
    walk.wait(request_id)
    return request_id


def recorded(request_id: str, url: str) -> WebhookDeliveryItem:
    """Record a delivery as handle_event does, and nothing more: the crash came before attempt 1."""
    now = now_iso()
    delivery = WebhookDeliveryItem(
        request_id=request_id,
        delivery_id=f"evt-{time.monotonic_ns()}#job",
        org=ORG,
        event="JOB COMPLETED",
        url=f"{url}/job",
        body=json.dumps({"id": f"evt-{time.monotonic_ns()}", "job_state": "COMPLETED"}),
        created_at=now,
        updated_at=now,
    )
    assert get_notify_services().deliveries.create(delivery)
    return delivery


def sweep_at(moment: datetime) -> int:
    """The scheduler's minute sweep with the runtime's clock at ``moment``: how many it repaired."""
    runtime = get_runtime()
    clock = runtime.now
    runtime.now = lambda: moment
    try:
        return sweep(runtime, now=moment).repaired
    finally:
        runtime.now = clock


def repository(walk: Walk) -> DeliveryRepository:
    return DeliveryRepository(TABLE, client=walk.ddb)


def stored(walk: Walk, delivery: WebhookDeliveryItem) -> WebhookDeliveryItem:
    found = repository(walk).get(delivery.request_id, delivery.delivery_id)
    assert found is not None
    return found


def drain(poller: LocalNotifyPoller, receiver: WebhookReceiver, until: int) -> None:
    receiver.wait_for(lambda r: len(r.deliveries) >= until, timeout=15, poll=lambda: poller.poll_once(1))
    for _ in range(3):  # and nothing more arrives
        poller.poll_once(1)


@pytest.mark.parametrize("claimed", [False, True], ids=["before-the-claim", "after-the-claim"])
def test_a_delivery_whose_attempt_was_lost_is_sent_by_the_sweep_after_the_grace_period(
    walk: Walk, poller: LocalNotifyPoller, claimed: bool
) -> None:
    # Given a delivery the crash left PENDING: recorded, and maybe attempt 1 claimed, never settled
    request_id = finished_request(walk)
    with webhook_receiver() as receiver:
        delivery = recorded(request_id, receiver.url)
        if claimed:
            assert repository(walk).claim_attempt(request_id, delivery.delivery_id, 1, now_iso())
        lost_at = datetime.now().astimezone()
        # When the sweep runs within the grace period, it leaves it alone
        assert sweep_at(lost_at + timedelta(seconds=GRACE - 5)) == 0
        poller.poll_once(0)
        assert receiver.deliveries == []
        # When the sweep runs after it, the next attempt is queued and sent, once
        later = lost_at + timedelta(seconds=GRACE + 5)
        assert sweep_at(later) == 1
        assert sweep_at(later) == 0
        drain(poller, receiver, until=1)

    assert [d.answered for d in receiver.deliveries] == [200]
    done = stored(walk, delivery)
    assert (done.status, done.attempts) == (DeliveryStatus.DELIVERED, 2 if claimed else 1)
    # And, settled, it has left the index of pending deliveries
    assert repository(walk).idle_pending(before="9999") == []


def test_a_delivery_mid_retry_is_not_repaired_and_a_late_retry_and_a_repair_send_once(
    walk: Walk, poller: LocalNotifyPoller
) -> None:
    # Given attempt 1 failed and its retry queued (1 s), as the notify function leaves it
    request_id = finished_request(walk)
    with webhook_receiver(fail_first=1) as receiver:
        delivery = recorded(request_id, receiver.url)
        services = get_notify_services()
        assert attempt_delivery(get_runtime(), services, request_id, delivery.delivery_id, 1) == 1
        waiting = stored(walk, delivery)
        assert (waiting.status, waiting.attempts) == (DeliveryStatus.PENDING, 1)
        settled_at = datetime.now().astimezone()
        # When the sweep runs before the grace period, the retry on its way is left alone
        assert sweep_at(settled_at + timedelta(seconds=60)) == 0
        # When the retry is late past the grace period, the sweep queues attempt 2 as well, once
        later = settled_at + timedelta(seconds=GRACE + 5)
        assert sweep_at(later) == 1
        assert sweep_at(later) == 0
        # Then both messages name attempt 2: its claim lets one send
        drain(poller, receiver, until=2)

    assert [d.answered for d in receiver.deliveries] == [503, 200]
    done = stored(walk, delivery)
    assert (done.status, done.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert repository(walk).idle_pending(before="9999") == []


def test_a_delivery_whose_last_attempt_was_lost_is_settled_failed(
    walk: Walk, poller: LocalNotifyPoller
) -> None:
    request_id = finished_request(walk)
    delivery = recorded(request_id, "http://127.0.0.1:9")
    deliveries = repository(walk)
    for attempt in range(1, get_notify_services().max_attempts + 1):
        assert deliveries.claim_attempt(request_id, delivery.delivery_id, attempt, now_iso())
    assert sweep_at(datetime.now().astimezone() + timedelta(seconds=GRACE + 5)) == 1
    failed = stored(walk, delivery)
    assert failed.status == DeliveryStatus.FAILED
    assert failed.last_result == "attempt 5 lost: the notify function stopped before recording it"
    assert deliveries.idle_pending(before="9999") == []


def test_only_pending_deliveries_are_in_the_index(walk: Walk, poller: LocalNotifyPoller) -> None:
    request_id = finished_request(walk)
    deliveries = repository(walk)
    pending = recorded(request_id, "http://127.0.0.1:9")
    skipped = pending.model_copy(
        update={"delivery_id": "evt-skipped#email", "status": DeliveryStatus.SKIPPED, "url": "email:"}
    )
    assert deliveries.create(skipped)
    assert [d.delivery_id for d in deliveries.idle_pending(before="9999")] == [pending.delivery_id]
    # A delivery is listed by its last activity, so a recent one is not idle yet
    assert deliveries.idle_pending(before=pending.updated_at) == []
    assert deliveries.settle_attempt(
        request_id, pending.delivery_id, 0, status=DeliveryStatus.FAILED, result="refused", now=now_iso()
    )
    assert deliveries.idle_pending(before="9999") == []


def test_formica_dev_runs_the_same_repair_from_its_ticker(walk: Walk, poller: LocalNotifyPoller) -> None:
    # Given a delivery recorded and never attempted, as a crash of `formica dev` would leave it
    request_id = finished_request(walk)
    with webhook_receiver() as receiver:
        delivery = recorded(request_id, receiver.url)
        later = datetime.now().astimezone() + timedelta(seconds=GRACE + 5)
        # When `formica dev`'s ticker sweeps past the grace period
        ticks = itertools.count()
        with local_scheduling(REGION, interval=3600, clock=lambda: later + next(ticks) * SWEEP_GAP) as ticker:
            get_runtime().now = lambda: later
            assert ticker.tick().swept  # a tick of its own thread may have come first: both sweep
        # Then its notify poller sends it
        drain(poller, receiver, until=1)

    assert [d.answered for d in receiver.deliveries] == [200]
    assert stored(walk, delivery).status == DeliveryStatus.DELIVERED


def test_a_delivery_attempt_is_stamped_by_the_runtimes_clock(walk: Walk, poller: LocalNotifyPoller) -> None:
    # Given a recorded delivery, and a notify function whose runtime's clock stands a day ahead
    request_id = finished_request(walk)
    moment = datetime.now(UTC) + timedelta(days=1)
    with webhook_receiver() as receiver:
        delivery = recorded(request_id, receiver.url)

        # When its first attempt is sent
        sent = attempt_delivery(
            replace(get_runtime(), now=lambda: moment),
            get_notify_services(),
            request_id,
            delivery.delivery_id,
            1,
        )

        # Then it was delivered, and settled at that moment
        assert sent == 1 and len(receiver.deliveries) == 1
    settled = stored(walk, delivery)
    assert (settled.status, settled.updated_at) == (DeliveryStatus.DELIVERED, iso(moment))
