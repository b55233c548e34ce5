"""Admission: when a PENDING request starts (scheduled_at, max_concurrency, priorities, skip_if).

Every start goes through ``admit_request`` (``start_request`` is it for the API):

- a request scheduled in the future stays PENDING (the sweep starts it when due);
- ``skip_if`` rendered with the request's params: text containing "true" ends it FAILED with
  ERR_FILTERED_JOB without running (formicary's ShouldFilter at scheduling time);
- otherwise it starts only if it can take a slot of its job type (``formica.store.slots``: the slot
  and PENDING -> STARTED are one transaction); with no slot it stays PENDING in gsi2.

When a request ends (``request_finished``: the walk's final commit, a cancel), its slot is released
and the job type's PENDING requests are started in gsi2 order (job_priority, then age) while slots
are free. A periodic ``sweep`` (every minute in AWS, every few seconds in ``formica dev``) does the
same for every job type and repairs what a crash left: slots held by finished requests, and
requests STARTED whose execution never began. Cron fires (``fire_cron``) submit a request with the
deterministic user_key ``cron:{job_type}:{slot}``, so a repeated fire never starts a second run.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from formica.engine.walk import AttemptResult, JobState, WalkState
from formica.jobs.errors import DefinitionError
from formica.runtime.completion import complete_container_attempt
from formica.runtime.deps import Runtime
from formica.runtime.executions import (
    ERR_START_FAILED,
    ExecutionError,
    awaiting_execution,
    begin_execution,
    execution_name,
)
from formica.runtime.metrics import job_started, oldest_started
from formica.runtime.walker import Walker
from formica.store.definitions import DefinitionHeadItem, DefinitionRepository, DefinitionStoreError
from formica.store.deliveries import DeliveryStoreError
from formica.store.idempotency import IdempotencyRepository, IdempotencyStoreError
from formica.store.requests import (
    JobRequestItem,
    RequestFinishedError,
    RequestNotFinishedError,
    RequestNotFoundError,
    RequestStoreError,
    iso,
)
from formica.store.schedules import CRON_FIRE
from formica.store.slots import AdmitOutcome, SlotCounter, SlotRepository, SlotStore, SlotStoreError
from formica.store.state_machine import StateMachineError

__all__ = [
    "ERR_FILTERED_JOB",
    "Admission",
    "AdmissionResult",
    "CronFireEvent",
    "SchedulerEventError",
    "SchedulingError",
    "SweepReport",
    "admit_request",
    "cron_user_key",
    "fill_slots",
    "fire_cron",
    "handle_event",
    "request_finished",
    "restart_request",
    "start_request",
    "start_waiting",
    "sweep",
    "trigger_now",
]

logger = logging.getLogger(__name__)

ERR_FILTERED_JOB = "ERR_FILTERED_JOB"
"""formicary's error code of a request that its skip_if filtered out ("filtered scheduled job")."""
CRON_PRIORITY = 5
STALE_START_SECONDS = 60.0
"""A request STARTED this long ago whose walk has not begun lost its StartExecution: start it again."""
_CLAIM_WAIT_SECONDS = 2.0
_RECOVERABLE = (
    SlotStoreError,
    RequestStoreError,
    DefinitionStoreError,
    ExecutionError,
    StateMachineError,
    DeliveryStoreError,  # the lost deliveries' repair (notify.repair_lost_deliveries)
)
_filling = threading.local()


class SchedulingError(RuntimeError):
    """Admission or a cron fire could not be completed."""


class SchedulerEventError(SchedulingError):
    """The scheduler function received an event it does not handle."""


class Admission(StrEnum):
    """What became of a request that was offered a start."""

    STARTED = "STARTED"
    WAITING_FOR_SLOT = "WAITING_FOR_SLOT"  # max_concurrency reached: PENDING until a slot frees
    NOT_DUE = "NOT_DUE"  # scheduled_at in the future: PENDING until then
    FILTERED = "FILTERED"  # skip_if: FAILED with ERR_FILTERED_JOB
    NOT_PENDING = "NOT_PENDING"  # someone else started, cancelled or filtered it first


@dataclass(frozen=True)
class AdmissionResult:
    request_id: str
    admission: Admission
    execution_name: str | None = None


@dataclass
class SweepReport:
    """What one sweep did, and the age of the oldest request it found STARTED (0: none)."""

    job_types: int = 0
    released: int = 0
    restarted: int = 0
    started: list[str] = field(default_factory=list)
    repaired: int = 0
    oldest_started_seconds: float = 0.0

    def saw_started(self, request: JobRequestItem, now: datetime) -> None:
        """Count a STARTED request's age (from its admission) towards ``oldest_started_seconds``."""
        since = _moment(request.started_at)
        if since is not None:
            self.oldest_started_seconds = max(self.oldest_started_seconds, (now - since).total_seconds())


def slot_store(runtime: Runtime) -> SlotStore:
    """The slots of the runtime's table (the process's DynamoDB client)."""
    return SlotRepository(runtime.settings.table_name)


def _head(runtime: Runtime, org: str, job_type: str) -> DefinitionHeadItem | None:
    source = runtime.definitions
    if isinstance(source, DefinitionRepository):
        return source.get_head(org, job_type)
    return DefinitionRepository(runtime.settings.table_name).get_head(org, job_type)


def job_limit(runtime: Runtime, org: str, job_type: str) -> int:
    """The job type's max_concurrency (0: unlimited), from its head (PUT .../concurrency wins)."""
    head = _head(runtime, org, job_type)
    return 0 if head is None else max(0, head.max_concurrency)


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _is_due(request: JobRequestItem, now: datetime) -> bool:
    scheduled = _moment(request.scheduled_at)
    return scheduled is None or scheduled <= now


def filtered_reason(runtime: Runtime, request: JobRequestItem, now: datetime) -> str | None:
    """Why ``skip_if`` filters the request out (rendered with its params), or None to run it."""
    raw = runtime.raw_yaml(request.org, request.job_type, request.job_version)
    if raw is None or "skip_if" not in raw:
        return None
    try:
        definition = Walker(runtime).render(request, task_type="", task_retry=0, now=now)
    except DefinitionError:
        return None  # the walk reports it (ERR_INVALID_DEFINITION) with its full message
    if not definition.skipped:
        return None
    return (
        f"job filtered: skip_if rendered {(definition.skip_if or '').strip()!r} with params {request.params}"
    )


def _as_admission(request: JobRequestItem) -> Admission:
    if request.job_state == JobState.FAILED and request.error_code == ERR_FILTERED_JOB:
        return Admission.FILTERED
    if request.job_state == JobState.PENDING:
        return Admission.WAITING_FOR_SLOT
    return Admission.STARTED if not request.is_final else Admission.NOT_PENDING


def try_start(
    runtime: Runtime, slots: SlotStore, request: JobRequestItem, *, now: datetime, limit: int
) -> AdmissionResult:
    """Start one PENDING request now if it is due, not filtered, and a slot is free.

    Raises ``ExecutionError`` when StartExecution is refused (the request is then FAILED with
    ERR_START_FAILED, and its slot released); a transient failure (throttling, a 5xx, no answer)
    leaves the request STARTED for the sweep, which starts it by the same name.
    """
    request_id = request.request_id
    if request.job_state != JobState.PENDING:
        return AdmissionResult(request_id, Admission.NOT_PENDING)
    if not _is_due(request, now):
        return AdmissionResult(request_id, Admission.NOT_DUE)
    reason = filtered_reason(runtime, request, now)
    if reason is not None:
        if not slots.mark_filtered(request_id, error_code=ERR_FILTERED_JOB, message=reason):
            return AdmissionResult(request_id, Admission.NOT_PENDING)
        logger.info("job request filtered", extra={"request_id": request_id, "job_type": request.job_type})
        return AdmissionResult(request_id, Admission.FILTERED)
    name = execution_name(request_id, request.execution_count + 1)
    # The runtime's clock, as every other moment of the walk: a started_at from the wall clock
    # would disagree with the elapsed time and timeouts the walk measures from it.
    started_at = iso(now)
    outcome = slots.admit(request, execution_name=name, limit=limit, started_at=started_at)
    if outcome == AdmitOutcome.HELD:
        # A slot left by an earlier run of this request (a crash before its release): give it back.
        slots.release(request.org, request.job_type, request_id)
        outcome = slots.admit(request, execution_name=name, limit=limit, started_at=started_at)
    if outcome == AdmitOutcome.NO_SLOT:
        return AdmissionResult(request_id, Admission.WAITING_FOR_SLOT)
    if outcome != AdmitOutcome.STARTED:
        return AdmissionResult(request_id, Admission.NOT_PENDING)
    job_started(request.job_type, created_at=request.created_at, started_at=started_at)
    started = request.model_copy(
        update={
            "job_state": JobState.STARTED,
            "execution_name": name,
            "execution_count": request.execution_count + 1,
            "started_at": started_at,
        }
    )
    try:
        # The walk's first decision is taken here and passed as the execution's input (D13).
        begin_execution(runtime, started, name)
    except ExecutionError as exc:
        if exc.transient:
            # Admitted and (usually) decided: the sweep starts it by the same name once Step
            # Functions answers again (``awaiting_execution``); the request is not failed for it.
            logger.warning(
                "job request admitted, start deferred to the sweep",
                extra={"request_id": request_id, "error": str(exc)},
            )
            return AdmissionResult(request_id, Admission.STARTED, name)
        walker = Walker(runtime)
        # Read again: the first decision may have been committed before the start was refused.
        walker.fail_job(runtime.requests.get(request_id) or started, ERR_START_FAILED, str(exc))
        raise
    logger.info("job request admitted", extra={"request_id": request_id, "job_type": request.job_type})
    return AdmissionResult(request_id, Admission.STARTED, name)


def fill_slots(
    runtime: Runtime,
    org: str,
    job_type: str,
    *,
    slots: SlotStore | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Start the job type's due PENDING requests, highest priority then oldest, while slots are free.

    Returns the ids started. A call made while this thread is already filling (a start that failed
    ended its request, whose release would fill again) returns at once: the outer loop goes on.
    """
    if getattr(_filling, "active", False):
        return []
    store = slots or slot_store(runtime)
    cap = job_limit(runtime, org, job_type) if limit is None else limit
    moment = now or runtime.now()
    started: list[str] = []
    _filling.active = True
    try:
        if cap > 0:
            # Requests already running go on first: a resumed pause or a decided approval that
            # found no slot free (``go_on``).
            serve_slot_waiters(runtime, org, job_type, slots=store, limit=cap)
        for request in store.pending(org, job_type):
            try:
                result = try_start(runtime, store, request, now=moment, limit=cap)
            except ExecutionError as exc:
                logger.warning(
                    "job request could not start", extra={"request_id": request.request_id, "error": str(exc)}
                )
                continue
            if result.admission == Admission.STARTED:
                started.append(request.request_id)
            elif result.admission == Admission.WAITING_FOR_SLOT:
                break
    finally:
        _filling.active = False
    return started


def admit_request(request_id: str, runtime: Runtime, *, slots: SlotStore | None = None) -> AdmissionResult:
    """Offer a PENDING request a start (submit, trigger, cron fire, restart).

    Raises ``RequestNotFoundError``, ``RequestFinishedError`` (not PENDING) and ``ExecutionError``
    (StartExecution refused: the request is FAILED with ERR_START_FAILED).
    """
    rt = runtime
    store = slots or slot_store(rt)
    request = rt.requests.get(request_id)
    if request is None:
        raise RequestNotFoundError(request_id)
    if request.job_state != JobState.PENDING:
        raise RequestFinishedError(request_id, request.job_state)
    limit = job_limit(rt, request.org, request.job_type)
    now = rt.now()
    if limit > 0:
        # Requests already waiting go first (priority, then age); this one may be among them.
        fill_slots(rt, request.org, request.job_type, slots=store, limit=limit, now=now)
        current = rt.requests.get(request_id) or request
        if current.job_state == JobState.FAILED and current.error_code == ERR_START_FAILED:
            raise ExecutionError(current.error_message or "the state machine refused to start")
        if current.job_state != JobState.PENDING:
            return AdmissionResult(request_id, _as_admission(current), current.execution_name)
        request = current
    result = try_start(rt, store, request, now=now, limit=limit)
    if result.admission in (Admission.WAITING_FOR_SLOT, Admission.NOT_DUE):
        store.register(request.org, request.job_type)
        logger.info(
            "job request waits",
            extra={"request_id": request_id, "job_type": request.job_type, "reason": str(result.admission)},
        )
    return result


def start_request(request_id: str, runtime: Runtime) -> str | None:
    """Offer a PENDING request a start; returns the execution's name, or None while it waits.

    A future scheduled_at or a full max_concurrency keeps it PENDING, skip_if ends it with
    ERR_FILTERED_JOB. Raises ``RequestFinishedError`` when the request is not PENDING (already
    started or finished), ``RequestNotFoundError`` when it does not exist, ``ExecutionError`` when
    the state machine refuses (the request is then FAILED with ERR_START_FAILED).
    """
    return admit_request(request_id, runtime).execution_name


def request_finished(runtime: Runtime, request: JobRequestItem, *, slots: SlotStore | None = None) -> None:
    """A request reached COMPLETED, FAILED or CANCELLED: release its slot, start the next ones.

    Never raises for store or state machine trouble: a missed release or wake-up is the sweep's.
    """
    store = slots or slot_store(runtime)
    try:
        store.release(request.org, request.job_type, request.request_id)
        fill_slots(runtime, request.org, request.job_type, slots=store)
    except _RECOVERABLE as exc:
        logger.warning(
            "slot release or wake-up failed; the sweep will catch up",
            extra={"request_id": request.request_id, "job_type": request.job_type, "error": str(exc)},
        )


def give_slot_back(runtime: Runtime, request: JobRequestItem, *, slots: SlotStore | None = None) -> None:
    """A request that waits for others (an AWAIT_FORKED_JOB task) gives its max_concurrency slot
    back, so the children it waits for, of its own job type too, can start: a parent never holds the
    slot its children need. It finishes without one; its end releases nothing more."""
    request_finished(runtime, request, slots=slots)


def take_slot_again(runtime: Runtime, request: JobRequestItem, *, slots: SlotStore | None = None) -> bool:
    """Take a slot for a running request that gave its own back (a wait); True when its job type
    has no max_concurrency, or a slot was free."""
    limit = job_limit(runtime, request.org, request.job_type)
    if limit <= 0:
        return True
    store = slots or slot_store(runtime)
    return store.take(request.org, request.job_type, request.request_id, limit=limit)


def go_on(
    runtime: Runtime,
    request: JobRequestItem,
    step: int,
    result: AttemptResult,
    *,
    slots: SlotStore | None = None,
) -> bool:
    """A request that gave its slot back (``give_slot_back``: a pause, an approval) goes on at
    ``step`` with ``result`` (a resume, a verdict): first it takes a slot again when its job type
    has a max_concurrency. With none free it is queued with its answer, highest priority then
    oldest first, ahead of PENDING requests: the next release answers it (``serve_slot_waiters``).
    Returns True when the walk was answered now."""
    store = slots or slot_store(runtime)
    limit = job_limit(runtime, request.org, request.job_type)
    if limit > 0 and not store.take(request.org, request.job_type, request.request_id, limit=limit):
        if store.wait_for_slot(request, step, result.model_dump_json()):
            waiting = {"request_id": request.request_id, "job_type": request.job_type}
            logger.info("waiting for a slot to go on", extra=waiting)
            # A slot freed between the take and the queueing would otherwise wait for the next one.
            serve_slot_waiters(runtime, request.org, request.job_type, slots=store, limit=limit)
        return False
    return complete_container_attempt(runtime, request.request_id, step, result)


def serve_slot_waiters(
    runtime: Runtime, org: str, job_type: str, *, slots: SlotStore | None = None, limit: int | None = None
) -> list[str]:
    """Answer the job type's requests queued for a slot (``go_on``) while slots are free; their ids."""
    store = slots or slot_store(runtime)
    cap = job_limit(runtime, org, job_type) if limit is None else limit
    served: list[str] = []
    for waiter in store.slot_waiters(org, job_type):
        if not store.take(org, job_type, waiter.request_id, limit=cap):
            break
        answer = store.stop_waiting_for_slot(waiter.request_id, waiter.step)
        if answer is None:  # served by another caller, or cancelled meanwhile
            store.release(org, job_type, waiter.request_id)
            continue
        complete_container_attempt(
            runtime, waiter.request_id, waiter.step, AttemptResult.model_validate_json(answer)
        )
        served.append(waiter.request_id)
    return served


def start_waiting(org: str, job_type: str, runtime: Runtime, *, slots: SlotStore | None = None) -> list[str]:
    """Start the job type's due PENDING requests that fit under its limit now (``PUT .../concurrency``
    raised or removed it); returns the ids started.

    Never raises for store or state machine trouble: the sweep starts them within a minute.
    """
    rt = runtime
    try:
        return fill_slots(rt, org, job_type, slots=slots)
    except _RECOVERABLE as exc:
        logger.warning(
            "wake-up after a limit change failed; the sweep will catch up",
            extra={"job_type": job_type, "error": str(exc)},
        )
        return []


def trigger_now(
    org: str, request_id: str, runtime: Runtime, *, slots: SlotStore | None = None
) -> JobRequestItem:
    """Run a PENDING (typically scheduled) request now: it becomes due and is offered a start.

    It still waits for a slot when its job type is at max_concurrency (the limit is never exceeded).
    Raises ``RequestNotFoundError`` (or another org's) and ``RequestFinishedError`` (not PENDING).
    """
    rt = runtime
    store = slots or slot_store(rt)
    request = rt.requests.get_for_org(org, request_id)
    if request is None:
        raise RequestNotFoundError(request_id)
    if request.job_state != JobState.PENDING:
        raise RequestFinishedError(request_id, request.job_state)
    now = rt.now()
    if not _is_due(request, now) and not store.make_due(request_id, scheduled_at=iso(now)):
        current = rt.requests.get(request_id) or request
        raise RequestFinishedError(request_id, current.job_state)
    admit_request(request_id, rt, slots=store)
    return rt.requests.get(request_id) or request


def restart_walk(request: JobRequestItem, *, hard: bool = False) -> WalkState:
    """The walk state a finished request is requeued with by a restart.

    Soft (the default, formicary's restart): the tasks its runs completed are carried, with their
    outputs, so the new run skips them (SKIPPED) and reruns from the task that failed; the engine
    drops always_run and FORK_JOB tasks from them and applies hard_reset_after_retries
    (``formica.engine.walk.start_walk``). Hard, or a request that COMPLETED (no task failed to rerun
    from): nothing is carried and every task runs again.
    """
    walk = request.walk
    restarts = walk.restarts + 1
    if hard or request.job_state == JobState.COMPLETED:
        return WalkState(next_seq=walk.next_seq, restarts=restarts)
    return WalkState(
        next_seq=walk.next_seq,
        restarts=restarts,
        carried={**walk.carried, **walk.completed},
        outputs=walk.outputs,
    )


def restart_request(
    org: str,
    request_id: str,
    runtime: Runtime,
    *,
    hard: bool = False,
    slots: SlotStore | None = None,
) -> JobRequestItem:
    """Run a finished request again: PENDING again, then admitted like a new one.

    The new run reruns from the task that failed, skipping the tasks completed before
    (``restart_walk``); ``hard`` reruns every task. Raises ``RequestNotFoundError`` and
    ``RequestNotFinishedError`` (still PENDING or running).
    """
    rt = runtime
    store = slots or slot_store(rt)
    request = rt.requests.get_for_org(org, request_id)
    if request is None:
        raise RequestNotFoundError(request_id)
    if not request.is_final:
        raise RequestNotFinishedError(request_id, request.job_state)
    store.release(request.org, request.job_type, request_id)  # a slot its last run may still hold
    store.requeue(request, walk=restart_walk(request, hard=hard))
    admit_request(request_id, rt, slots=store)
    return rt.requests.get(request_id) or request


# -- the sweep ----------------------------------------------------------------------------------


def _repair_holders(
    rt: Runtime, store: SlotStore, counter: SlotCounter, now: datetime, report: SweepReport
) -> None:
    org, job_type = counter.org, counter.job_type
    for request_id in store.holders(org, job_type):
        request = rt.requests.get(request_id)
        if request is None or request.is_final or request.job_state == JobState.PENDING:
            if store.release(org, job_type, request_id):
                report.released += 1
                logger.warning("leaked slot released", extra={"request_id": request_id, "job_type": job_type})
            continue
        if request.job_state == JobState.STARTED:
            # Every STARTED request holds a slot (admission takes both in one transaction), so the
            # holders the sweep reads anyway find them all: no Scan, no index of its own.
            report.saw_started(request, now)
        if awaiting_execution(request) and request.execution_name and _stale(request, now):
            # Admitted (or continued), but its StartExecution may never have happened (a crash in
            # between): the name is deterministic, so starting again is a no-op if it did happen.
            try:
                begin_execution(rt, request, request.execution_name)
            except ExecutionError as exc:
                logger.warning("lost start not repaired", extra={"request_id": request_id, "error": str(exc)})
            else:
                report.restarted += 1


def _stale(request: JobRequestItem, now: datetime) -> bool:
    """Long enough since the start (or since its first decision, plus that decision's wait) that
    its execution would have picked the decision up."""
    if request.decision is None:
        since, grace = _moment(request.started_at), 0
    else:
        since, grace = _moment(request.updated_at), request.decision.wait_seconds
    return since is not None and now - since > timedelta(seconds=STALE_START_SECONDS + grace)


def sweep(runtime: Runtime, *, slots: SlotStore | None = None, now: datetime | None = None) -> SweepReport:
    """For every known job type: release slots of finished requests, restart lost starts, and start
    due PENDING requests while slots are free (missed wake-ups, scheduled_at that came due).

    The report also carries the age of the oldest request still STARTED (``handle_event``
    publishes it as the ``OldestStartedAge`` metric)."""
    rt = runtime
    store = slots or slot_store(rt)
    moment = now or rt.now()
    report = SweepReport()
    for counter in store.counters():
        report.job_types += 1
        try:
            if counter.running > 0:
                _repair_holders(rt, store, counter, moment, report)
            report.started.extend(fill_slots(rt, counter.org, counter.job_type, slots=store, now=moment))
        except _RECOVERABLE as exc:
            logger.warning(
                "sweep of a job type failed", extra={"job_type": counter.job_type, "error": str(exc)}
            )
    for repair in rt.repairs:
        try:
            report.repaired += repair(rt)
        except _RECOVERABLE as exc:
            logger.warning("sweep repair failed", extra={"error": str(exc)})
    return report


# -- cron fires ---------------------------------------------------------------------------------


def cron_user_key(job_type: str, slot: datetime) -> str:
    """The user_key of a cron fire: one per job type and slot (``cron:{job_type}:{slot}``)."""
    return f"cron:{job_type}:{slot.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


class CronFireEvent(BaseModel):
    """What a schedule sends (``formica.store.schedules.fire_input``, the time substituted)."""

    model_config = ConfigDict(extra="ignore")

    formica: Literal["cron-fire"]
    org: str
    job_type: str
    scheduled_time: datetime
    cron_trigger: str | None = None


@dataclass(frozen=True)
class CronFireResult:
    request_id: str | None
    created: bool
    admission: Admission | None = None


def _bound_request(rt: Runtime, request_id: str) -> JobRequestItem | None:
    """The request a key is bound to, waiting briefly while its first fire creates it."""
    deadline = time.monotonic() + _CLAIM_WAIT_SECONDS
    while True:
        request = rt.requests.get(request_id)
        if request is not None or time.monotonic() >= deadline:
            return request
        time.sleep(0.05)


def fire_cron(
    org: str,
    job_type: str,
    scheduled_time: datetime,
    runtime: Runtime,
    *,
    slots: SlotStore | None = None,
    idempotency: IdempotencyRepository | None = None,
) -> CronFireResult:
    """Submit the cron request of one slot, once: a repeated fire answers with the first request.

    A fire for a definition that is gone, disabled or has no cron_trigger any more does nothing.
    """
    rt = runtime
    store = slots or slot_store(rt)
    keys = idempotency or IdempotencyRepository(rt.settings.table_name)
    head = _head(rt, org, job_type)
    if head is None or head.disabled or not head.cron_trigger:
        logger.info("cron fire ignored", extra={"job_type": job_type, "org": org})
        return CronFireResult(None, created=False)
    user_key = cron_user_key(job_type, scheduled_time)
    key = f"U#{user_key}"  # the API's user_key namespace: a submit with this user_key finds it too
    request_id = str(uuid.uuid4())
    for _ in range(2):
        bound = keys.claim(org, key, request_id, ttl_seconds=None)
        if bound == request_id:
            break
        first = _bound_request(rt, bound)
        if first is not None:
            logger.info("cron fire repeated", extra={"request_id": first.request_id, "user_key": user_key})
            return CronFireResult(first.request_id, created=False)
        keys.release(org, key, bound)  # bound by a fire that crashed before creating its request
    else:
        raise SchedulingError(f"the cron slot {user_key!r} is being claimed by another fire")
    now = rt.now_iso()
    request = JobRequestItem(
        request_id=request_id,
        org=org,
        job_type=job_type,
        job_version=head.latest_version,
        user_key=user_key,
        description=f"cron_trigger {head.cron_trigger}",
        job_priority=CRON_PRIORITY,
        created_at=now,
        updated_at=now,
    )
    try:
        store.register(org, job_type)
        rt.requests.create(request)
    except (SlotStoreError, RequestStoreError):
        keys.release(org, key, request_id)
        raise
    result = admit_request(request_id, rt, slots=store)
    logger.info(
        "cron fired",
        extra={"request_id": request_id, "user_key": user_key, "admission": str(result.admission)},
    )
    return CronFireResult(request_id, created=True, admission=result.admission)


# -- the scheduler function ---------------------------------------------------------------------


def handle_event(event: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """The scheduler function: the minute sweep ("Scheduled Event") or a cron fire (our input)."""
    if event.get("formica") == CRON_FIRE:
        fire = CronFireEvent.model_validate(event)
        try:
            result = fire_cron(fire.org, fire.job_type, fire.scheduled_time, runtime)
        except IdempotencyStoreError as exc:
            raise SchedulingError(f"cron fire of {fire.job_type!r} failed: {exc}") from exc
        return {
            "fired": result.request_id is not None,
            "request_id": result.request_id,
            "created": result.created,
            "admission": str(result.admission) if result.admission else None,
        }
    if event.get("detail-type") == "Scheduled Event" or event.get("source") == "aws.events":
        report = sweep(runtime)
        # Published here, once a minute, not by ``sweep``: `formica dev` sweeps every 2 seconds.
        oldest_started(report.oldest_started_seconds)
        return {
            "job_types": report.job_types,
            "released": report.released,
            "restarted": report.restarted,
            "started": len(report.started),
            "repaired": report.repaired,
            "oldest_started_seconds": round(report.oldest_started_seconds, 3),
        }
    raise SchedulerEventError("the scheduler function takes a Scheduled Event or a cron fire")
