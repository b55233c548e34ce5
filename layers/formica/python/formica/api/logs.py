"""Following a task's log: ``GET .../tasks/{task_type}/logs?since=N[&follow=true][&attempt=K]``.

The task's log stream is its attempts in order, each a ``--- attempt N ---`` line followed by that
attempt's output (with ``attempt``: that attempt's output alone). ``since`` is a byte offset into
that stream's UTF-8 text. Ended attempts are read from their whole log (their sizes from the log's
artifact item, so sections before ``since`` are not downloaded); the running attempt from its chunk
objects (``formica.store.logs``). ``follow`` waits a bounded time for something new (API Gateway
ends an integration at 29 s), so a client loops on ``next_since`` until ``finished``.

With ``instance=N`` the stream is one instance's of a task fan-out (its latest run): while it runs,
what its chunks hold (``store.logs.instance_live_prefix``); once it ended, its whole log, which
begins with the same bytes. It is ``finished`` when the instance has ended.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, Field

from formica.api.errors import ResourceNotFoundError
from formica.api.services import ApiServices
from formica.engine.routing import TaskState
from formica.store.blobs import BlobNotFoundError
from formica.store.logs import TaskLogs, instance_live_prefix, live_prefix
from formica.store.requests import InstanceItem, TaskExecutionItem

FOLLOW_WAIT_SECONDS = 20.0
"""How long ``follow=true`` waits for new text: well within API Gateway's 29 s integration timeout."""
FOLLOW_POLL_SECONDS = 1.0
"""How often a follow looks again while it waits (one Query, and a LIST while the task runs)."""
SECTIONS_PER_READ = 64
"""One answer reads at most this many attempts' logs; ``finished`` stays false until the rest is read."""
_ENDED_TASK_STATES = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED}
)
_ATTEMPT_IN_KEY = re.compile(r"attempt-(\d+)\.log$")


class TaskLogResponse(BaseModel):
    """A piece of a task's log stream: ``text`` from byte ``since`` to ``next_since``."""

    request_id: str
    task_type: str
    attempt: int | None = Field(default=None, description="the one attempt asked for; null: every attempt")
    instance: int | None = Field(
        default=None, description="the task fan-out's instance asked for; null: the task's own log"
    )
    since: int
    next_since: int = Field(description="pass back as `since` for what follows")
    text: str
    finished: bool = Field(description="the task will write no more: stop following")


@dataclass
class _Section:
    attempt: int
    key: str | None  # the ended attempt's whole log; None: it runs, its chunks hold what it wrote
    size: int | None  # the whole log's size when known without reading it


def follow_task_log(
    services: ApiServices,
    org: str,
    request_id: str,
    task_type: str,
    *,
    since: int = 0,
    follow: bool = False,
    attempt: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> TaskLogResponse:
    """The task's log from byte ``since`` (see the module); with ``follow``, wait up to
    ``FOLLOW_WAIT_SECONDS`` for text after ``since`` or for the task's end before answering.

    Raises ``ResourceNotFoundError`` when the request is not the organisation's, the task has not
    run, or ``attempt`` names an attempt that has no log.
    """
    deadline = clock() + (FOLLOW_WAIT_SECONDS if follow else 0.0)
    while True:
        answer = _read(services, org, request_id, task_type, since=since, attempt=attempt)
        if answer.text or answer.finished or clock() + FOLLOW_POLL_SECONDS > deadline:
            return answer
        sleep(FOLLOW_POLL_SECONDS)


@dataclass(frozen=True)
class TaskSections:
    """A task's attempts with a log, in order, and whether the task will write no more."""

    sections: list[_Section]
    ended: bool


def task_sections(
    services: ApiServices, org: str, request_id: str, task_type: str, *, attempt: int | None = None
) -> TaskSections:
    """The task's log sections (one attempt's with ``attempt``); ``ResourceNotFoundError`` when the
    request is not the organisation's, the task has not run, or the attempt has no log."""
    request = services.requests.get_for_org(org, request_id)
    if request is None:
        raise ResourceNotFoundError(f"job request {request_id!r} not found")
    # The state first, the logs after: a task read as ended has stored every attempt's whole log.
    tasks = [task for task in services.requests.list_tasks(request_id) if task.task_type == task_type]
    if not tasks:
        raise ResourceNotFoundError(f"task {task_type!r} has not run in job request {request_id!r}")
    ended = request.is_final or tasks[-1].task_state in _ENDED_TASK_STATES
    sections = _sections(services, org, request_id, task_type, tasks, running=not ended)
    if attempt is not None:
        sections = [section for section in sections if section.attempt == attempt]
        if not sections:
            raise ResourceNotFoundError(f"task {task_type!r} has no log of attempt {attempt}")
    return TaskSections(sections, ended)


def section_bytes(
    services: ApiServices, org: str, request_id: str, task_type: str, section: _Section
) -> bytes:
    """What an attempt's log holds now: its whole log, or what a running attempt (or one whose whole
    log is not stored yet: a cancelled attempt's runner stores it when it stops) has sent so far."""
    if section.key is not None:
        try:
            return services.blobs.get_bytes(section.key)
        except BlobNotFoundError:
            pass
    prefix = live_prefix(org, request_id, task_type, section.attempt)
    return TaskLogs(services.blobs).read_live(prefix, 0).data


def _read(
    services: ApiServices, org: str, request_id: str, task_type: str, *, since: int, attempt: int | None
) -> TaskLogResponse:
    found = task_sections(services, org, request_id, task_type, attempt=attempt)
    sections, ended = found.sections, found.ended
    logs = TaskLogs(services.blobs)
    out = bytearray()
    position = 0
    complete = True
    read = 0
    for section in sections:
        header = b"" if attempt is not None else f"--- attempt {section.attempt} ---\n".encode()
        if since < position + len(header):
            out += header[max(0, since - position) :]
        position += len(header)
        if section.key is None:  # the running attempt: its chunks from where the reader is
            prefix = live_prefix(org, request_id, task_type, section.attempt)
            out += logs.read_live(prefix, max(0, since - position)).data
            complete = False
            break
        size = section.size
        if size is not None and since >= position + size:
            position += size
            continue
        if read >= SECTIONS_PER_READ:
            complete = False
            break
        read += 1
        data = section_bytes(services, org, request_id, task_type, section)
        out += data[max(0, since - position) :]
        position += len(data)
    text = bytes(out).decode("utf-8", errors="replace")
    return TaskLogResponse(
        request_id=request_id,
        task_type=task_type,
        attempt=attempt,
        since=since,
        next_since=since + len(out),
        text=text,
        finished=ended and complete,
    )


def _sections(
    services: ApiServices,
    org: str,
    request_id: str,
    task_type: str,
    tasks: list[TaskExecutionItem],
    *,
    running: bool,
) -> list[_Section]:
    """The task's attempts with a log, in order: the ended ones' whole logs (from the task records and
    the log artifact items, which know their sizes), then the running attempt (numbered after every
    attempt its records count, as the walker numbers it) unless its whole log is stored already."""
    found: dict[int, _Section] = {}
    for task in tasks:
        if task.log_key:
            number = attempt_of(task.log_key)
            found.setdefault(number, _Section(number, task.log_key, None))
    for item in services.requests.list_artifacts(request_id):
        if item.kind == "log" and item.task_type == task_type and item.org == org:
            number = attempt_of(item.key)
            found[number] = _Section(number, item.key, item.size)
    if running:
        number = sum(task.attempts for task in tasks) + 1
        found.setdefault(number, _Section(number, None, None))
    return [found[number] for number in sorted(found)]


def attempt_of(key: str) -> int:
    """The attempt number in a log's key (``.../attempt-N.log``); 0 when it has none."""
    match = _ATTEMPT_IN_KEY.search(key)
    return int(match.group(1)) if match else 0


# -- one instance of a task fan-out ----------------------------------------------------------------


def latest_instance(
    services: ApiServices, org: str, request_id: str, task_type: str, index: int
) -> InstanceItem:
    """The latest run of instance ``index`` of the task's fan-out; ``ResourceNotFoundError`` when the
    request is not the organisation's or the task ran no such instance."""
    request = services.requests.get_for_org(org, request_id)
    if request is None:
        raise ResourceNotFoundError(f"job request {request_id!r} not found")
    runs = [
        found
        for found in services.requests.list_all_instances(request_id)
        if found.task_type == task_type and found.index == index
    ]
    if not runs:
        raise ResourceNotFoundError(
            f"task {task_type!r} ran no instance {index} in job request {request_id!r}"
        )
    return max(runs, key=lambda found: found.step)


@dataclass(frozen=True)
class InstanceRead:
    """What an instance's log holds from ``since``, and whether the instance will write no more."""

    data: bytes
    finished: bool


def read_instance(services: ApiServices, org: str, instance: InstanceItem, *, since: int = 0) -> InstanceRead:
    """The instance's log from byte ``since``: its whole log once it ended (the state is read first,
    so an ended instance's whole log is stored), else what its live chunks hold so far."""
    if instance.is_final and instance.log_key is not None:
        try:
            return InstanceRead(services.blobs.get_bytes(instance.log_key)[since:], True)
        except BlobNotFoundError as exc:
            raise ResourceNotFoundError(
                f"the log of instance {instance.index} of task {instance.task_type!r} is gone"
            ) from exc
    prefix = instance_live_prefix(org, instance.request_id, instance.task_type, instance.step, instance.index)
    read = TaskLogs(services.blobs).read_live(prefix, since)
    return InstanceRead(read.data, instance.is_final and not read.more)


def follow_instance_log(
    services: ApiServices,
    org: str,
    request_id: str,
    task_type: str,
    instance: int,
    *,
    since: int = 0,
    follow: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> TaskLogResponse:
    """Instance ``instance``'s log from byte ``since`` (see the module); with ``follow``, wait up to
    ``FOLLOW_WAIT_SECONDS`` for text after ``since`` or for the instance's end."""
    deadline = clock() + (FOLLOW_WAIT_SECONDS if follow else 0.0)
    # The latest run is found once (one Query of the request's instances); each poll after it reads
    # that one instance's item (a GetItem), however many items the fan-out has.
    found = latest_instance(services, org, request_id, task_type, instance)
    while True:
        read = read_instance(services, org, found, since=since)
        answer = TaskLogResponse(
            request_id=request_id,
            task_type=task_type,
            instance=instance,
            since=since,
            next_since=since + len(read.data),
            text=read.data.decode("utf-8", errors="replace"),
            finished=read.finished,
        )
        if answer.text or answer.finished or clock() + FOLLOW_POLL_SECONDS > deadline:
            return answer
        sleep(FOLLOW_POLL_SECONDS)
        found = services.requests.get_instance(request_id, found.step, found.index) or found
