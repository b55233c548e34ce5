"""Workers of the organisation's own (formicary's ants): WEBSOCKET tasks run on machines their users
attach with ``formica worker --tags ...``.

- ``queue_attempt`` (Launch, for a RUN_WORKER decision, which waits on a task token like a
  container): the attempt is claimed and its message ``{request_id, step}`` sent to the queue of the
  request's organisation and the task's pool (its tags, ``store.work_queues.queue_name``).
- ``poll`` (the API, for a token of the organisation with the ``worker`` scope): the worker's tags
  name every pool it can serve (each non-empty subset of its tags: a worker tagged ``web,js`` takes
  tasks tagged ``web``, ``js`` or both). A message received is hidden for ``LEASE_SECONDS`` (SQS's
  visibility timeout is the lease); the worker gets a lease id (stored hashed, ``store.leases``) and
  the attempt as the SHELL sandbox gets it (``attempts.sandbox_request``: the rendered task, its
  context and a capability for its artifacts, exchanged at the grants route). A message whose
  attempt is over (the walk moved on, cancelled, timed out) is deleted.
- ``heartbeat``: extends the lease by ``LEASE_SECONDS``. A worker that stops heartbeating loses the
  lease: the message becomes visible again and the next poll leases the attempt to another worker,
  whose lease replaces the first (the first one's heartbeat and report are then refused).
- ``complete``: the worker's outcome, kept as far as it can be checked (``sandbox.trusted_outcome``),
  recorded and committed by the container path (``completion.complete_container_attempt``), which
  answers Launch's token; the message is deleted. One report per attempt counts (``leases.finish``).

The state's timeout is the task's (plus a grace), so a task no worker takes fails with
ERR_TASK_TIMED_OUT. The worker never holds AWS credentials: the API receives, extends and deletes
on its behalf.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any

from formica.jobs.limits import is_name
from formica.jobs.models import RunnerKind
from formica.runners.sandbox import trusted_outcome
from formica.runtime.attempts import sandbox_request
from formica.runtime.completion import complete_container_attempt
from formica.runtime.deps import Runtime
from formica.runtime.walker import AttemptScope, Walker
from formica.store.grants import DynamoGrantRepository
from formica.store.leases import LeaseItem, LeaseRepository, hash_lease, new_lease
from formica.store.requests import JobRequestItem
from formica.store.schema import artifact_key
from formica.store.work_queues import SqsWorkQueues, WorkQueues, pool_key, queue_name

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60
"""How long a received attempt stays the worker's without a heartbeat."""
HEARTBEAT_SECONDS = 20
"""How often a worker is told to heartbeat."""
MAX_WORKER_TAGS = 4
"""The most tags a worker polls with (it polls one queue per non-empty subset: 15 at most)."""
LEASE_MARGIN_SECONDS = 3600
"""A lease item is kept this long past the attempt's timeout (DynamoDB TTL)."""


class WorkerRequestError(ValueError):
    """A poll whose tags are missing, too many or not names."""


class LeaseNotFoundError(LookupError):
    """No lease by that id in the caller's organisation."""


class LeaseLostError(RuntimeError):
    """The lease is no longer the attempt's (another worker holds it, it was reported, or the walk
    moved on): the worker stops."""


@dataclass
class WorkerPorts:
    """The queues and leases the worker routes use (built from the runtime's settings by default)."""

    queues: WorkQueues
    leases: LeaseRepository


_PORTS: WorkerPorts | None = None


def worker_ports(runtime: Runtime) -> WorkerPorts:
    """The process's worker queues and leases (no client is built until one is used)."""
    global _PORTS  # noqa: PLW0603 - one set per process, like the runtime's own cache
    if _PORTS is None or _PORTS.leases.table_name != runtime.settings.table_name:
        _PORTS = WorkerPorts(queues=SqsWorkQueues(), leases=LeaseRepository(runtime.settings.table_name))
    return _PORTS


def reset_worker_ports() -> None:
    """Forget the process's worker ports (tests that switch moto instances)."""
    global _PORTS  # noqa: PLW0603
    _PORTS = None


def worker_pools(tags: list[str]) -> list[str]:
    """The pools a worker with ``tags`` serves, most specific first.

    Raises
    ------
    WorkerRequestError
        No tag, more than ``MAX_WORKER_TAGS``, or a tag that is not a name.
    """
    distinct = sorted({tag.strip() for tag in tags if tag.strip()})
    if not distinct:
        raise WorkerRequestError("tags: a worker needs at least one tag")
    if len(distinct) > MAX_WORKER_TAGS:
        raise WorkerRequestError(
            f"tags: a worker polls with at most {MAX_WORKER_TAGS} tags, not {len(distinct)}"
        )
    bad = [tag for tag in distinct if not is_name(tag)]
    if bad:
        raise WorkerRequestError(f"tags: {bad[0]!r} is not a valid tag name")
    subsets = [
        pool_key(combo)
        for size in range(len(distinct), 0, -1)
        for combo in itertools.combinations(distinct, size)
    ]
    return subsets


def queue_attempt(runtime: Runtime, request: JobRequestItem, step: int) -> dict[str, Any]:
    """Launch's part for a RUN_WORKER decision (the attempt is claimed): send it to its pool's queue."""
    current = request.walk.current
    assert current is not None  # noqa: S101 - checked by launch_container
    definition = Walker(runtime).render(
        request, task_type=current.task_type, task_retry=current.task_retry, now=runtime.now()
    )
    task = definition.task(current.task_type)
    pool = pool_key(task.tags)
    worker_ports(runtime).queues.send(
        queue_name(request.org, pool), {"request_id": request.request_id, "step": step}
    )
    logger.info("worker attempt queued", extra={"request_id": request.request_id, "step": step, "pool": pool})
    return {"request_id": request.request_id, "step": step, "launched": True, "pool": pool}


def _waiting(runtime: Runtime, org: str, request_id: str, step: int) -> JobRequestItem | None:
    """The request when it still waits for a worker at ``step`` in ``org``, else None."""
    request = runtime.requests.get(request_id)
    if request is None or request.org != org or request.is_final or request.step != step:
        return None
    current = request.walk.current
    if current is None or current.runner != RunnerKind.WORKER:
        return None
    return request


def poll(runtime: Runtime, org: str, tags: list[str]) -> dict[str, Any] | None:
    """Lease one waiting attempt of ``org`` for a worker with ``tags``; None when there is none.

    Raises
    ------
    WorkerRequestError
        The tags are not acceptable (``worker_pools``).
    """
    ports = worker_ports(runtime)
    for pool in worker_pools(tags):
        name = queue_name(org, pool)
        while (message := ports.queues.receive(name, visibility_seconds=LEASE_SECONDS)) is not None:
            request_id, step = str(message.body.get("request_id", "")), message.body.get("step")
            request = _waiting(runtime, org, request_id, step) if isinstance(step, int) else None
            if request is None:
                ports.queues.delete(name, message.receipt)
                continue
            now = runtime.now()
            walker = Walker(runtime)
            current = request.walk.current
            assert current is not None  # noqa: S101 - checked by _waiting
            definition = walker.render(
                request, task_type=current.task_type, task_retry=current.task_retry, now=now
            )
            task = definition.task(current.task_type)
            ctx = walker.context(request, request.step, now)
            lease = new_lease()
            expires = int(now.timestamp()) + math.ceil(max(ctx.timeout_seconds, 0)) + LEASE_MARGIN_SECONDS
            item = LeaseItem(
                lease_hash=hash_lease(lease),
                org=org,
                request_id=request_id,
                step=request.step,
                queue=name,
                receipt=message.receipt,
                expires_at=expires,
            )
            if not ports.leases.grant(item):
                ports.queues.delete(name, message.receipt)
                continue
            granting = (
                runtime
                if runtime.grants is not None
                else dataclasses.replace(runtime, grants=DynamoGrantRepository(runtime.settings.table_name))
            )
            attempt = sandbox_request(task, ctx, AttemptScope(granting, request, request.step))
            logger.info(
                "worker attempt leased", extra={"request_id": request_id, "step": request.step, "pool": pool}
            )
            return {
                "lease": lease,
                "lease_seconds": LEASE_SECONDS,
                "heartbeat_seconds": HEARTBEAT_SECONDS,
                "attempt": attempt.model_dump(mode="json"),
            }
    return None


def _held(runtime: Runtime, org: str, lease: str) -> tuple[WorkerPorts, LeaseItem]:
    ports = worker_ports(runtime)
    item = ports.leases.get(lease)
    if item is None or item.org != org:
        raise LeaseNotFoundError("no such lease")
    if not ports.leases.is_current(item):
        raise LeaseLostError("the lease was given to another worker or its attempt was reported")
    if _waiting(runtime, org, item.request_id, item.step) is None:
        raise LeaseLostError("the attempt is over: the request moved on, ended or was cancelled")
    return ports, item


def heartbeat(runtime: Runtime, org: str, lease: str) -> dict[str, Any]:
    """Extend the lease by ``LEASE_SECONDS``.

    Raises
    ------
    LeaseNotFoundError
        No such lease in ``org``.
    LeaseLostError
        The lease is no longer the attempt's: the worker should stop.
    """
    ports, item = _held(runtime, org, lease)
    if not ports.queues.extend(item.queue, item.receipt, visibility_seconds=LEASE_SECONDS):
        raise LeaseLostError("the lease expired: the attempt went back to the pool")
    return {"lease_seconds": LEASE_SECONDS, "heartbeat_seconds": HEARTBEAT_SECONDS}


def complete(runtime: Runtime, org: str, lease: str, answer: dict[str, Any]) -> dict[str, Any]:
    """Record the worker's outcome for the leased attempt and advance the walk.

    Raises
    ------
    LeaseNotFoundError
        No such lease in ``org``.
    LeaseLostError
        The lease is no longer the attempt's, or the attempt was reported already.
    ValueError
        ``answer`` is not an outcome.
    """
    ports, item = _held(runtime, org, lease)
    request = _waiting(runtime, org, item.request_id, item.step)
    assert request is not None and request.walk.current is not None  # noqa: S101 - checked by _held
    task_type = request.walk.current.task_type
    outcome = trusted_outcome(answer, artifact_prefix=artifact_key(org, item.request_id, task_type, ""))
    if not ports.leases.finish(item):
        raise LeaseLostError("the lease was given to another worker or its attempt was reported")
    walker = Walker(runtime)
    result = walker.keep_reported_attempt(request, item.step, task_type, outcome)
    complete_container_attempt(runtime, item.request_id, item.step, result)
    ports.queues.delete(item.queue, item.receipt)
    logger.info("worker attempt reported", extra={"request_id": item.request_id, "step": item.step})
    return {"request_id": item.request_id, "step": item.step, "accepted": True}
