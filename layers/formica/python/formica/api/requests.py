"""Route logic for job requests: submit (idempotent), read, list, cancel, restart, trigger, artifacts, logs.

Tenancy: every read goes through ``RequestRepository.get_for_org``; another organisation's request is
"not found", never its data. Idempotency: an ``Idempotency-Key`` header (24 h) and a ``user_key``
(no expiry) are each claimed with one conditional put before the request is created, so racing
submissions with the same key agree on one request and never start a second run.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from formica.api.costs import cost_response
from formica.api.errors import (
    ConflictError,
    ErrorDetail,
    PayloadTooLargeError,
    ResourceNotFoundError,
    ValidationApiError,
)
from formica.api.models import (
    PARAMS_MAX_BYTES,
    ArtifactListResponse,
    ArtifactResponse,
    ChildRequestSummary,
    GraphEdge,
    GraphTaskState,
    JobRequestListResponse,
    JobRequestResponse,
    RequestGraphResponse,
    SubmitJobRequest,
    TaskExecutionResponse,
)
from formica.api.services import ApiServices
from formica.engine.walk import JobState
from formica.jobs.graph import to_mermaid
from formica.jobs.limits import params_size
from formica.jobs.models import JobDefinition, TaskDefinition
from formica.store.definitions import DefinitionHeadItem, DefinitionVersionItem
from formica.store.pagination import InvalidCursorError, cursor_signer
from formica.store.requests import (
    ArtifactItem,
    ChildItem,
    JobRequestItem,
    RequestFinishedError,
    TaskExecutionItem,
    now_iso,
)
from formica.store.requests.items import CHILD_SK_PREFIX
from formica.store.schema import request_pk

# What API Gateway accepts is 10 MB; nothing Formica takes as JSON comes near 1 MB.
MAX_BODY_BYTES = 1024 * 1024
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
# How long a repeat waits for the first submission (same key, in flight) to finish creating it.
_CLAIM_WAIT_SECONDS = 2.0
_CLAIM_POLL_SECONDS = 0.05
_MERMAID_EDGE = re.compile(r'^\s+(\w+) -->\|"(.*)"\| (\w+)$')
# Colours of a request's graph, per task state (Mermaid classDef bodies).
_STATE_STYLES = {
    "COMPLETED": "fill:#d4edda,stroke:#28a745",
    "FAILED": "fill:#f8d7da,stroke:#dc3545",
    "EXECUTING": "fill:#cce5ff,stroke:#007bff",
    "READY": "fill:#cce5ff,stroke:#007bff",
    "SKIPPED": "fill:#e2e3e5,stroke:#6c757d",
    "CANCELLED": "fill:#fff3cd,stroke:#fd7e14",
}
_FOLLOWED_EDGE_STYLE = "stroke-width:4px,stroke:#007bff"

JobStateFilter = JobState

logger = logging.getLogger(__name__)


def request_body(body: str | None, is_base64_encoded: bool) -> bytes:
    """The raw bytes of a proxy event's body; ValidationApiError for bad base64, 413 when too large."""
    if body is None:
        return b""
    if is_base64_encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationApiError("the request body is not valid base64") from exc
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the request body may have at most {MAX_BODY_BYTES} bytes")
    return raw


def parse_json_body(text: str) -> Any:
    """JSON of a request body; nesting too deep for the parser is a decode error (400), not a crash."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise json.JSONDecodeError("JSON nested too deeply", "", 0) from exc


def is_utf8_body(body: str | None, is_base64_encoded: bool) -> bool:
    """Whether a proxy event's body is UTF-8 text (bad base64 counts as not)."""
    if body is None or not is_base64_encoded:
        return True
    try:
        base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return False
    return True


# -- shapes ---------------------------------------------------------------------------------------


_UNFINISHED_TASK_STATES = frozenset({"READY", "EXECUTING"})


def _task_response(
    task: TaskExecutionItem, methods: dict[str, str | None], *, job_cancelled: bool = False
) -> TaskExecutionResponse:
    state = str(task.task_state)
    if job_cancelled and state in _UNFINISHED_TASK_STATES:
        # Nothing runs in a cancelled job. The cancel marks the running task CANCELLED, but the
        # step that entered it may write its record just after (BatchWriteItem has no condition).
        state = "CANCELLED"
    return TaskExecutionResponse(
        task_type=task.task_type,
        method=methods.get(task.task_type),
        task_state=state,
        exit_code=task.exit_code or None,
        exit_codes=task.exit_codes,
        error_code=task.error_code,
        error_message=task.error_message,
        attempts=task.attempts,
        task_retry=task.task_retry,
        job_retry=task.job_retry,
        started_at=task.started_at,
        ended_at=task.ended_at,
    )


def request_response(
    request: JobRequestItem,
    tasks: list[TaskExecutionItem] | None = None,
    methods: dict[str, str | None] | None = None,
    *,
    parent_id: str | None = None,
    children: list[ChildItem] | None = None,
) -> JobRequestResponse:
    """The API's shape of a request: ``parent_id`` as checked by the caller (``_visible_parent``),
    ``children`` only for the read of one request (None: a listing row)."""
    return JobRequestResponse(
        id=request.request_id,
        job_type=request.job_type,
        job_version=request.job_version,
        job_state=str(request.job_state),
        job_priority=request.job_priority,
        description=request.description,
        user_key=request.user_key,
        scheduled_at=request.scheduled_at,
        error_code=request.error_code,
        error_message=request.error_message,
        params=request.params,
        retried=request.job_retry,
        created_at=request.created_at,
        started_at=request.started_at,
        ended_at=request.ended_at,
        tasks=[
            _task_response(task, methods or {}, job_cancelled=request.job_state == JobState.CANCELLED)
            for task in sorted(tasks or [], key=lambda t: t.seq)
        ],
        parent_id=parent_id,
        children=None
        if children is None
        else [
            ChildRequestSummary(
                id=child.child_id,
                job_type=child.job_type,
                fork_task=child.fork_task,
                job_state=str(child.job_state),
                error_code=child.error_code,
            )
            for child in _in_creation_order(children)
        ],
    )


def _in_creation_order(children: list[ChildItem]) -> list[ChildItem]:
    # The store lists them by id, which the fork derives from the parent and step, not by time.
    return sorted(children, key=lambda child: (child.created_at, child.child_id))


def _visible_parent(
    services: ApiServices, org: str, request: JobRequestItem, seen: dict[str, bool] | None = None
) -> str | None:
    """The request's parent_id when that parent is the caller's; None otherwise.

    A fork creates its child in the parent's organisation, so this never hides a real parent; it
    keeps another organisation's id out of an answer should an item ever say otherwise. ``seen``
    remembers the verdicts of one answer (a listing's rows often share a parent).
    """
    parent_id = request.parent_id
    if parent_id is None:
        return None
    verdicts = {} if seen is None else seen
    if parent_id not in verdicts:
        verdicts[parent_id] = services.requests.get_for_org(org, parent_id) is not None
    return parent_id if verdicts[parent_id] else None


def _require(services: ApiServices, org: str, request_id: str) -> JobRequestItem:
    request = services.requests.get_for_org(org, request_id)
    if request is None:
        raise ResourceNotFoundError(f"job request {request_id!r} not found")
    return request


def _methods(services: ApiServices, request: JobRequestItem) -> dict[str, str | None]:
    version = services.definitions.get_version(request.org, request.job_type, request.job_version)
    if version is None:  # the definition was deleted; the request's record still stands
        return {}
    return {task.task_type: task.method_name for task in version.definition.tasks}


def get_request(services: ApiServices, org: str, request_id: str) -> JobRequestResponse:
    """The org's request with its tasks, its parent (if forked), the children it forked and its cost."""
    request = _require(services, org, request_id)
    response = request_response(
        request,
        services.requests.list_tasks(request_id),
        _methods(services, request),
        parent_id=_visible_parent(services, org, request),
        children=services.requests.list_children(request_id),
    )
    response.cost = cost_response(request.usage, services.region)
    return response


def list_requests(
    services: ApiServices,
    org: str,
    *,
    job_type: str | None,
    job_state: JobState | None,
    limit: int,
    next_token: str | None,
) -> JobRequestListResponse:
    page = services.requests.list_for_org(
        org, job_type=job_type, job_state=job_state, limit=limit, next_token=next_token
    )
    parents: dict[str, bool] = {}
    return JobRequestListResponse(
        records=[
            request_response(request, parent_id=_visible_parent(services, org, request, parents))
            for request in page.records
        ],
        next_token=page.next_token,
    )


def list_children(
    services: ApiServices,
    org: str,
    parent_id: str,
    *,
    job_type: str | None,
    job_state: JobState | None,
    limit: int,
    next_token: str | None,
) -> JobRequestListResponse:
    """The requests the org's request ``parent_id`` forked, as listing rows, in creation order.

    One page holds at most ``limit`` children (fewer with ``job_state``, which filters the page
    read, like the other listings' filters), each read from its own request item: its state now,
    not the parent's record of it. A child the parent recorded whose request does not exist (its
    fork failed before creating it) has no row. Raises ResourceNotFoundError unless the parent is
    the org's, and InvalidCursorError for a ``next_token`` of another listing.
    """
    _require(services, org, parent_id)
    children = _in_creation_order(services.requests.list_children(parent_id))
    if job_type is not None:
        children = [child for child in children if child.job_type == job_type]
    start = _children_start(children, parent_id, next_token)
    page = children[start : start + limit]
    records: list[JobRequestResponse] = []
    for child in page:
        request = services.requests.get_for_org(org, child.child_id)
        if request is None or (job_state is not None and request.job_state != job_state):
            continue
        records.append(request_response(request, parent_id=parent_id))
    more = start + limit < len(children)
    return JobRequestListResponse(
        records=records, next_token=_children_cursor(parent_id, page[-1]) if more and page else None
    )


def _children_cursor(parent_id: str, last: ChildItem) -> str | None:
    """A signed cursor after ``last``, bound to the parent's partition like a Query's LastEvaluatedKey."""
    return cursor_signer().encode(
        {
            "pk": {"S": request_pk(parent_id)},
            "sk": {"S": f"{CHILD_SK_PREFIX}{last.child_id}"},
            "created_at": {"S": last.created_at},
        }
    )


def _children_start(children: list[ChildItem], parent_id: str, next_token: str | None) -> int:
    """The index of the first child after the cursor's (0 without one)."""
    key = cursor_signer().decode(next_token, partition_attribute="pk", partition_value=request_pk(parent_id))
    if key is None:
        return 0
    sort_key = key.get("sk", {}).get("S", "")
    created_at = key.get("created_at", {}).get("S")
    if not isinstance(created_at, str) or not sort_key.startswith(CHILD_SK_PREFIX):
        raise InvalidCursorError("next_token belongs to another listing")
    after = (created_at, sort_key.removeprefix(CHILD_SK_PREFIX))
    for index, child in enumerate(children):
        if (child.created_at, child.child_id) > after:
            return index
    return len(children)


# -- the walk taken, drawn on the definition's graph ------------------------------------------------


def _route_label(task: TaskDefinition | None, execution: TaskExecutionItem, next_task: str) -> str:
    """Which of ``task``'s routes led from ``execution`` to ``next_task``."""
    if task is None:
        return "always_run"
    code = execution.exit_code
    if code and task.on_exit_code.get(code) == next_task:
        return f"exit {code}"
    completed = execution.task_state in ("COMPLETED", "SKIPPED")
    if completed and task.on_completed == next_task:
        return "completed"
    if not completed and task.on_failed == next_task:
        return "failed"
    for exit_code, target in task.on_exit_code.items():
        if target == next_task and execution.task_state == "SKIPPED":
            return f"exit {exit_code}"  # a skipped task follows the route its earlier run took
    # No route of the task leads there: the job was failing and ran its always_run tasks.
    return "always_run"


def walk_edges(definition: JobDefinition, executions: list[TaskExecutionItem]) -> list[GraphEdge]:
    """The moves of the walk between task executions, in order (``executions`` in any order)."""
    tasks = {task.task_type: task for task in definition.tasks}
    ordered = sorted(executions, key=lambda item: item.seq)
    edges: list[GraphEdge] = []
    for previous, current in itertools.pairwise(ordered):
        label = _route_label(tasks.get(previous.task_type), previous, current.task_type)
        restarted = label == "always_run" and current.task_type == definition.root_task.task_type
        if current.job_retry != previous.job_retry or restarted:
            # A job retry (RESTART_JOB, the job's retry), or POST .../restart (job_retry 0 again).
            label = "restart"
        edges.append(
            GraphEdge(
                from_task=previous.task_type,
                to_task=current.task_type,
                label=label,
                job_retry=current.job_retry,
            )
        )
    return edges


def _decorated_mermaid(
    definition: JobDefinition, nodes: dict[str, str], states: dict[str, str], edges: list[GraphEdge]
) -> str:
    """``to_mermaid`` of the definition, its task nodes coloured by state and the followed edges thick."""
    text = to_mermaid(definition)
    drawn: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        match = _MERMAID_EDGE.match(line)
        if match:
            drawn.append((match.group(1), match.group(3), match.group(2)))
    followed: set[int] = set()
    for edge in edges:
        source, target = nodes.get(edge.from_task), nodes.get(edge.to_task)
        candidates = [i for i, (a, b, _) in enumerate(drawn) if a == source and b == target]
        exact = [i for i in candidates if drawn[i][2] == edge.label]
        followed.update(exact or candidates[:1])
    extra: list[str] = []
    used = sorted({state for state in states.values() if state in _STATE_STYLES})
    extra.extend(f"    classDef {state.lower()} {_STATE_STYLES[state]}" for state in used)
    for state in used:
        members = ",".join(nodes[task] for task, task_state in states.items() if task_state == state)
        extra.append(f"    class {members} {state.lower()}")
    if followed:
        extra.append(f"    linkStyle {','.join(str(i) for i in sorted(followed))} {_FOLLOWED_EDGE_STYLE}")
    return text + "".join(line + "\n" for line in extra)


def request_graph(services: ApiServices, org: str, request_id: str) -> RequestGraphResponse:
    """The definition's graph of the org's request with each task's state and the walk taken.

    Raises ResourceNotFoundError for another organisation's request, and when the request's
    definition version was deleted since (its graph is gone with it).
    """
    request = _require(services, org, request_id)
    version = services.definitions.get_version(org, request.job_type, request.job_version)
    if version is None:
        raise ResourceNotFoundError(
            f"job type {request.job_type!r} version {request.job_version} of job request "
            f"{request_id!r} no longer exists"
        )
    definition = version.definition
    executions = sorted(services.requests.list_tasks(request_id), key=lambda item: item.seq)
    cancelled = request.job_state == JobState.CANCELLED
    # Node ids as to_mermaid numbers them: t{index} in definition order.
    nodes = {task.task_type: f"t{index}" for index, task in enumerate(definition.tasks)}
    latest: dict[str, TaskExecutionItem] = {}
    counts: dict[str, int] = {}
    for execution in executions:
        latest[execution.task_type] = execution
        counts[execution.task_type] = counts.get(execution.task_type, 0) + 1
    states = {
        task_type: _task_response(execution, {}, job_cancelled=cancelled).task_state
        for task_type, execution in latest.items()
        if task_type in nodes
    }
    edges = walk_edges(definition, executions)
    return RequestGraphResponse(
        request_id=request.request_id,
        job_type=request.job_type,
        job_version=request.job_version,
        job_state=str(request.job_state),
        mermaid=_decorated_mermaid(definition, nodes, states, edges),
        tasks=[
            GraphTaskState(
                task_type=task.task_type,
                node=nodes[task.task_type],
                task_state=states.get(task.task_type),
                exit_code=(latest[task.task_type].exit_code or None) if task.task_type in latest else None,
                attempts=latest[task.task_type].attempts if task.task_type in latest else 0,
                executions=counts.get(task.task_type, 0),
            )
            for task in definition.tasks
        ],
        edges=edges,
    )


# -- submit ---------------------------------------------------------------------------------------


def _existing(services: ApiServices, org: str, request_id: str) -> JobRequestItem | None:
    """The request a key is bound to, waiting briefly while its first submission creates it."""
    deadline = time.monotonic() + _CLAIM_WAIT_SECONDS
    while True:
        request = services.requests.get_for_org(org, request_id)
        if request is not None or time.monotonic() >= deadline:
            return request
        time.sleep(_CLAIM_POLL_SECONDS)


def _claim(
    services: ApiServices, org: str, key: str, request_id: str, ttl: int | None
) -> JobRequestItem | None:
    """Bind ``key`` to ``request_id``; the first request when the key is bound already, else None."""
    for _ in range(2):
        bound = services.idempotency.claim(org, key, request_id, ttl_seconds=ttl)
        if bound == request_id:
            return None
        first = _existing(services, org, bound)
        if first is not None:
            return first
        # Bound to a request that never came to be (its submission failed): free the key, retry.
        services.idempotency.release(org, key, bound)
    raise ConflictError("a submission with the same key is in progress; try again")


def check_params_size(params: dict[str, Any]) -> None:
    """413 when the params take more than ``PARAMS_MAX_BYTES`` as the request item stores them."""
    if not params:
        return
    size = params_size(params)
    if size > PARAMS_MAX_BYTES:
        message = (
            f"params take {size} bytes as JSON; the limit is {PARAMS_MAX_BYTES} bytes "
            f"({PARAMS_MAX_BYTES // 1024} KiB)"
        )
        raise PayloadTooLargeError(message, [ErrorDetail(message=message, field="params")])


def _check_params(required: list[str], params: dict[str, Any]) -> None:
    missing = [name for name in required if name not in params]
    if missing:
        raise ValidationApiError(
            "missing required params: " + ", ".join(missing),
            [ErrorDetail(message="required param is missing", field=f"params.{name}") for name in missing],
        )


def _is_due(scheduled_at: datetime | None) -> bool:
    if scheduled_at is None:
        return True
    moment = scheduled_at if scheduled_at.tzinfo is not None else scheduled_at.replace(tzinfo=UTC)
    return moment <= datetime.now(UTC)


_VERSIONS_KEPT = 64
_versions: OrderedDict[tuple[str, str, str, int, str], DefinitionVersionItem] = OrderedDict()
_versions_lock = threading.Lock()


def _version(services: ApiServices, head: DefinitionHeadItem, version: int) -> DefinitionVersionItem | None:
    """A version of the head's job type, kept per process: versions never change, and the head's
    ``created_at`` (new when a deleted job type is defined again, its versions counting from 1
    again) tells a version from the one of the same number before a delete."""
    key = (services.definitions.table_name, head.org, head.job_type, version, head.created_at)
    with _versions_lock:
        kept = _versions.get(key)
        if kept is not None:
            _versions.move_to_end(key)
            return kept
    found = services.definitions.get_version(head.org, head.job_type, version)
    if found is not None:
        with _versions_lock:
            _versions[key] = found
            while len(_versions) > _VERSIONS_KEPT:
                _versions.popitem(last=False)
    return found


def submit_request(
    services: ApiServices,
    org: str,
    body: SubmitJobRequest,
    *,
    idempotency_key: str | None = None,
    user_id: str = "",
) -> tuple[JobRequestResponse, int]:
    """Create and start a request; returns (response, 201), or (the first request, 200) on a repeat.

    ``user_id`` is who submitted it (the name of the caller's token), stored on the request and
    seen by its templates as ``UserID``.
    """
    check_params_size(body.params)
    head = services.definitions.get_head(org, body.job_type)
    if head is None:
        raise ResourceNotFoundError(f"job type {body.job_type!r} is not defined")
    if head.disabled:
        raise ConflictError(f"job type {body.job_type!r} is disabled")
    version = _version(services, head, body.job_version or head.latest_version)
    if version is None:
        raise ResourceNotFoundError(f"job type {body.job_type!r} has no version {body.job_version}")
    _check_params(version.definition.required_params, body.params)

    request_id = str(uuid.uuid4())
    keys: list[str] = []
    try:
        for key, ttl in (
            (f"H#{idempotency_key}" if idempotency_key else None, IDEMPOTENCY_TTL_SECONDS),
            (f"U#{body.user_key}" if body.user_key else None, None),
        ):
            if key is None:
                continue
            first = _claim(services, org, key, request_id, ttl)
            if first is not None:
                _release(services, org, keys, request_id)
                return request_response(first), 200
            keys.append(key)
        now = now_iso()
        scheduled_at = body.scheduled_at
        if scheduled_at is not None and scheduled_at.tzinfo is None:
            scheduled_at = scheduled_at.replace(tzinfo=UTC)
        request = JobRequestItem(
            request_id=request_id,
            org=org,
            job_type=body.job_type,
            job_version=version.version,
            user_id=user_id,
            user_key=body.user_key,
            description=body.description,
            params=body.params,
            job_priority=body.job_priority,
            created_at=now,
            updated_at=now,
            scheduled_at=scheduled_at.astimezone(UTC).isoformat(timespec="microseconds")
            if scheduled_at
            else None,
        )
        services.requests.create(request)
    except Exception:
        _release(services, org, keys, request_id)
        raise
    if not _is_due(scheduled_at):
        return request_response(request), 201  # stored as written: nothing else has touched it
    _start_stored(services, request_id)
    current = services.requests.get_for_org(org, request_id) or request
    return request_response(current), 201


def _start_stored(services: ApiServices, request_id: str) -> None:
    """Start a request that is already stored: a refused StartExecution is the request's state
    (FAILED with ERR_START_FAILED, or left STARTED for the sweep), not a 500 that would hide the
    id of an accepted request from its caller (who might then submit it twice)."""
    # Cold start: the read routes never load the runtime (see services.ModuleRuntime).
    from formica.runtime.executions import ExecutionError  # noqa: PLC0415

    try:
        services.runtime.start(request_id)
    except ExecutionError as exc:
        logger.warning("stored request did not start", extra={"request_id": request_id, "error": str(exc)})
    except RequestFinishedError:
        # The sweep (or a wake-up after another request's end) admitted it between our write and
        # this start: the request is accepted and running, which is all the caller asked.
        logger.info("stored request already admitted", extra={"request_id": request_id})


def _release(services: ApiServices, org: str, keys: list[str], request_id: str) -> None:
    for key in keys:
        services.idempotency.release(org, key, request_id)


# -- lifecycle ------------------------------------------------------------------------------------


def cancel_job(services: ApiServices, org: str, request_id: str) -> JobRequestResponse:
    """Cancel the org's running or PENDING request through the runtime; the request as it now reads."""
    request = _require(services, org, request_id)
    if request.is_final:
        raise ConflictError(f"job request {request_id!r} already finished ({request.job_state})")
    services.runtime.cancel(org, request_id)
    return get_request(services, org, request_id)


def restart_job(
    services: ApiServices, org: str, request_id: str, *, hard: bool = False
) -> JobRequestResponse:
    """Run the org's finished request again through the runtime; the request as it now reads.

    The new run reruns from the task that failed, skipping the tasks completed before; ``hard``
    reruns every task.
    """
    request = _require(services, org, request_id)
    if not request.is_final:
        raise ConflictError(f"job request {request_id!r} is still {request.job_state}; cancel it first")
    services.runtime.restart(org, request_id, hard=hard)
    return get_request(services, org, request_id)


def resume_job(services: ApiServices, org: str, request_id: str, *, by: str) -> JobRequestResponse:
    """Resume the org's PAUSED request (PAUSE_JOB) through the runtime; the request as it now reads.

    409 when it is not paused (or was resumed already); ``by`` (the caller's token name) is noted
    on the paused task.
    """
    # Cold start: the runtime loads only for the routes that change a walk.
    from formica.runtime.pauses import NotPausedError  # noqa: PLC0415

    request = _require(services, org, request_id)
    if request.job_state != JobState.PAUSED:
        raise ConflictError(f"job request {request_id!r} is {request.job_state}, not PAUSED")
    try:
        services.runtime.resume(org, request_id, by=by)
    except NotPausedError as exc:
        raise ConflictError(str(exc)) from exc
    return get_request(services, org, request_id)


def trigger_job(services: ApiServices, org: str, request_id: str) -> JobRequestResponse:
    """Start a PENDING (typically scheduled) request now (it still waits for a max_concurrency slot);
    the request as it now reads."""
    request = _require(services, org, request_id)
    if request.job_state != JobState.PENDING:
        raise ConflictError(f"job request {request_id!r} is {request.job_state}, not PENDING")
    services.runtime.trigger(org, request_id)
    return get_request(services, org, request_id)


# -- artifacts and logs ---------------------------------------------------------------------------


def artifact_route(request_id: str, artifact_id: str) -> str:
    return f"/api/jobs/requests/{request_id}/artifacts/{artifact_id}/download"


def _artifact_response(artifact: ArtifactItem) -> ArtifactResponse:
    return ArtifactResponse(
        id=artifact.artifact_id,
        task_type=artifact.task_type,
        name=artifact.name,
        size=artifact.size,
        sha256=artifact.sha256,
        content_type=artifact.content_type,
        download_url=artifact_route(artifact.request_id, artifact.artifact_id),
        instance=artifact.instance,
    )


def list_artifacts(services: ApiServices, org: str, request_id: str) -> ArtifactListResponse:
    _require(services, org, request_id)
    artifacts = [item for item in services.requests.list_artifacts(request_id) if item.kind == "artifact"]
    artifacts.sort(key=lambda item: (item.created_at, item.name))
    return ArtifactListResponse(records=[_artifact_response(item) for item in artifacts])


def artifact_download_url(services: ApiServices, org: str, request_id: str, artifact_id: str) -> str:
    """A short-lived presigned URL of the artifact (checked to be the org's)."""
    _require(services, org, request_id)
    artifact = services.requests.get_artifact(request_id, artifact_id)
    if artifact is None or artifact.org != org or artifact.kind != "artifact":
        raise ResourceNotFoundError(f"artifact {artifact_id!r} not found")
    return services.blobs.presign_get(artifact.key, services.presign_seconds)


def instance_log(services: ApiServices, org: str, request_id: str, task_type: str, instance: int) -> str:
    """The log of one instance (item ``instance``, from 0) of a task fan-out, the task's latest run's:
    its whole log once it ended, what it has sent so far while it runs (``formica.api.logs``).

    Raises ``ResourceNotFoundError`` when the request is not the organisation's or the task ran no
    such instance."""
    # Cold start: the log reader loads only for this route.
    from formica.api.logs import latest_instance, read_instance  # noqa: PLC0415

    found = latest_instance(services, org, request_id, task_type, instance)
    return read_instance(services, org, found).data.decode("utf-8", errors="replace")


def task_log(
    services: ApiServices, org: str, request_id: str, task_type: str, *, attempt: int | None = None
) -> str:
    """The task's log text: one attempt, or every attempt in order with a header between them; a
    running attempt's as far as it has been sent (``formica.api.logs``)."""
    # Cold start: the log reader loads only for this route.
    from formica.api.logs import section_bytes, task_sections  # noqa: PLC0415

    sections = task_sections(services, org, request_id, task_type, attempt=attempt).sections
    parts: list[str] = []
    for section in sections:
        text = section_bytes(services, org, request_id, task_type, section).decode("utf-8", errors="replace")
        if len(sections) > 1:
            parts.append(f"--- attempt {section.attempt} ---\n")
        parts.append(text if text.endswith("\n") or not text else text + "\n")
    return "".join(parts)
