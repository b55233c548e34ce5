"""The walk: given a request's walk state, its definition and an attempt's result, what happens next.

Pure: no AWS, no clock (``now`` is an argument). ``formica.runtime`` loads the state from DynamoDB,
renders the definition for the attempt, calls one function here and commits the returned
``Transition`` with a conditional write on the request's step.

Semantics beyond exit-code routing (``formica.engine.routing``):

- Polls (EXECUTING) run the same task again after ``delay_between_retries`` until the task's
  timeout, which spans every poll of the task; when the next poll would start at or after the
  deadline the task fails with ERR_TASK_TIMED_OUT. Retries (RESTART_TASK, automatic) get a fresh
  task timeout. A task's attempts are also bounded by the job's timeout: when the job's deadline
  comes first, the attempt's timeout is the job's and its expiry is ERR_JOB_TIMED_OUT.
- The job timeout counts from the request's start (across job restarts). When it expires the job
  fails at once with ERR_JOB_TIMED_OUT: always_run tasks do not run, the job is not retried.
- RESTART_JOB (and the automatic job retry of a failed job while the job's ``retry`` lasts):
  JobRetry + 1, then the walk restarts at the root after the job's ``delay_between_retries``.
  As in formicary, a restart re-runs only what did not complete: tasks that completed in earlier
  job attempts are skipped along the route they took (always_run tasks excepted: they run in every
  job attempt), and their outputs are kept. Every
  ``hard_reset_after_retries + 1``-th retry (when set) is a hard reset: everything runs again.
- An unhandled failure makes the job fail at the end. The walk still follows the failed task's
  on_failed route; when there is none (or the failure was FATAL) the job's always_run tasks that
  have not run in this job attempt run, in definition order, and then the job ends FAILED (or
  restarts, while the job's retry budget lasts and the failure was not FATAL).
- Retry delays: a task's retry waits ``retry_backoff_policy`` (the task's, else its
  ``delay_between_retries``, else the job's policy): ``min * factor ** (n - 1)`` for the n-th retry,
  at most ``max`` (else ``BACKOFF_CEILING_SECONDS``), plus up to ``jitter`` drawn from the clock
  (``Clock.fraction``: the same clock gives the same delays). A job restart waits the job's policy,
  else its ``delay_between_retries``. The delay is the decision's ``wait_seconds``: the state
  machine's Wait state, never a sleeping Lambda.
- ``except``: a task whose ``except`` rendered to text containing ``true`` is not run: it is
  recorded COMPLETED with exit code ``SKIPPED`` and the walk follows its on_completed task.
- A restart of a finished request (``start_walk`` with ``previous``) skips the tasks its earlier
  runs completed, as a job restart does; the runtime passes none of them for a hard restart, and
  every ``hard_reset_after_retries + 1``-th restart of the request is hard too.
- MANUAL tasks wait (AWAIT_APPROVAL, on a task token) for a verdict: its exit code is APPROVED or
  REJECTED (REJECTED fails with ERR_MANUAL_REJECTION unless on_exit_code routes it). When the
  wait's state times out (``approval_policy.sla_deadline``, else the task's timeout, else
  ``DEFAULT_APPROVAL_TIMEOUT_SECONDS``) the policy's ``timeout_action`` decides: AUTO_APPROVE,
  AUTO_REJECT, or FAIL (ERR_APPROVAL_TIMED_OUT). A task routed to WAIT_FOR_APPROVAL waits the
  same way after its attempt (MANUAL_APPROVAL_REQUIRED, its own approval_policy; its task timeout
  no longer counts, the job's does); the verdict is then routed as the task's exit code, as a
  MANUAL task's is (a WAIT_FOR_APPROVAL in on_completed / on_failed is not taken again).
- PAUSE_JOB: the task is PAUSED and the job PAUSED, waiting on a task token (AWAIT_RESUME) for a
  resume (``POST .../resume``) or, when the task sets ``pause_time``, that long (then it resumes
  by itself). Resumed, the task ends COMPLETED (FAILED, handled, when its exit code failed) and the
  walk follows its on_completed task. The job's timeout still counts while it is paused; a pause
  without pause_time and without a job timeout gives up after ``DEFAULT_PAUSE_TIMEOUT_SECONDS``
  (ERR_PAUSE_TIMED_OUT).
- Continue-as-new: every decision is charged the Step Functions history events it will cause
  (``path_events``); when the next decision would take this execution's count past
  ``HISTORY_EVENT_BUDGET`` the walk answers CONTINUE and keeps the decision for the next execution.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from formica.engine.outputs import bounded, publish
from formica.engine.routing import (
    EXIT_SKIPPED,
    AttemptOutcome,
    Failure,
    Move,
    RetryBudget,
    Route,
    RouteAction,
    TaskState,
    route_exit_code,
    route_skipped,
)
from formica.jobs.limits import JOB_OUTPUTS_MAX_BYTES
from formica.jobs.models import (
    EXIT_APPROVED,
    EXIT_REJECTED,
    JobDefinition,
    RetryBackoffPolicy,
    RunnerKind,
    TaskDefinition,
    TaskMethod,
    TimeoutAction,
)

ERR_TASK_TIMED_OUT = "ERR_TASK_TIMED_OUT"
ERR_JOB_TIMED_OUT = "ERR_JOB_TIMED_OUT"
ERR_TASK_CANCELLED = "ERR_TASK_CANCELLED"
ERR_JOB_CANCELLED = "ERR_JOB_CANCELLED"
ERR_UNSUPPORTED_METHOD = "ERR_UNSUPPORTED_METHOD"
ERR_UNEXPECTED = "ERR_UNEXPECTED"
ERR_EXCEPT_LOOP = "ERR_EXCEPT_LOOP"
ERR_MANUAL_REJECTION = "ERR_MANUAL_REJECTION"
"""A MANUAL task was rejected and on_exit_code does not route REJECTED."""
ERR_APPROVAL_TIMED_OUT = "ERR_APPROVAL_TIMED_OUT"
"""A MANUAL task had no verdict in time and its timeout_action is FAIL."""
ERR_PAUSE_TIMED_OUT = "ERR_PAUSE_TIMED_OUT"
"""A paused job was not resumed within ``DEFAULT_PAUSE_TIMEOUT_SECONDS`` (no pause_time, no job timeout)."""

BACKOFF_CEILING_SECONDS = 86_400.0
"""The longest delay a ``retry_backoff_policy`` without ``max`` grows to."""

# Step Functions Standard workflows stop at 25,000 history events. A lambda:invoke Task state
# writes 5 events (Entered, Scheduled, Started, Succeeded, Exited), Choice / Wait / Pass 2 each.
# The walk counts the events of every path it sends the execution on and continues as new at
# 20,000, leaving 5,000 events (over 1,500 Lambda retries) for what it cannot see.
HISTORY_EVENT_BUDGET = 20_000
TASK_STATE_EVENTS = 5
FLOW_STATE_EVENTS = 2
CALLBACK_TASK_STATE_EVENTS = 6
EXECUTION_START_EVENTS = 1 + FLOW_STATE_EVENTS + TASK_STATE_EVENTS  # Started, Route, Begin
PREDECIDED_START_EVENTS = 1
"""An execution started with its first decision as input (the starter took it) begins at Route:
only ExecutionStarted comes before the decision's own path."""
CATCH_EVENTS = 3 + TASK_STATE_EVENTS  # the failed task's events, then Advance
_END_RESERVE = 2 * (FLOW_STATE_EVENTS + TASK_STATE_EVENTS + FLOW_STATE_EVENTS) + CATCH_EVENTS

DEFAULT_CALLBACK_TIMEOUT_SECONDS = 24 * 3600
"""How long a container attempt may wait for its callback when neither task nor job sets a timeout."""
CALLBACK_GRACE_SECONDS = 60
"""Extra time the state machine waits past a container's deadline for the runner's own report."""
WORKER_GRACE_SECONDS = 5
"""Extra time a worker task's state waits past its deadline for a worker's report."""
DEFAULT_APPROVAL_TIMEOUT_SECONDS = 30 * 24 * 3600
"""How long a MANUAL task waits when neither its sla_deadline nor a task or job timeout is set."""
DEFAULT_PAUSE_TIMEOUT_SECONDS = 30 * 24 * 3600
"""How long a paused job waits for a resume when neither pause_time nor a job timeout is set."""


class Action(StrEnum):
    """What the state machine does next: the field its Choice state reads."""

    RUN_HTTP = "RUN_HTTP"
    RUN_SHELL = "RUN_SHELL"
    RUN_CONTAINER = "RUN_CONTAINER"
    RUN_FORK = "RUN_FORK"
    """FORK_JOB: start a child request (a task Lambda, like HTTP and SHELL attempts)."""
    AWAIT_FORKS = "AWAIT_FORKS"
    """AWAIT_FORKED_JOB: wait on a task token until the awaited children end (like a container)."""
    AWAIT_APPROVAL = "AWAIT_APPROVAL"
    """MANUAL: wait on a task token until the approvers' verdict (or the sla_deadline)."""
    RUN_EXPIRE = "RUN_EXPIRE"
    """EXPIRE_ARTIFACTS: delete the organisation's old artifacts (a task Lambda, like RUN_FORK)."""
    RUN_WORKER = "RUN_WORKER"
    """WEBSOCKET: queue the attempt for the organisation's workers, wait on a task token for one's report."""
    AWAIT_MESSAGE = "AWAIT_MESSAGE"
    """MESSAGING: send the task's request to its queue, wait on a task token for the correlated reply."""
    AWAIT_RESUME = "AWAIT_RESUME"
    """PAUSE_JOB: wait on a task token until a resume (or the pause_time)."""
    CONTINUE = "CONTINUE"
    SUCCEED = "SUCCEED"
    FAIL = "FAIL"
    CANCELLED = "CANCELLED"


RUN_ACTIONS = frozenset(
    {
        Action.RUN_HTTP,
        Action.RUN_SHELL,
        Action.RUN_CONTAINER,
        Action.RUN_FORK,
        Action.RUN_EXPIRE,
        Action.RUN_WORKER,
        Action.AWAIT_MESSAGE,
        Action.AWAIT_FORKS,
        Action.AWAIT_APPROVAL,
        Action.AWAIT_RESUME,
    }
)
CALLBACK_ACTIONS = frozenset(
    {
        Action.RUN_CONTAINER,
        Action.RUN_WORKER,
        Action.AWAIT_MESSAGE,
        Action.AWAIT_FORKS,
        Action.AWAIT_APPROVAL,
        Action.AWAIT_RESUME,
    }
)
"""Decisions answered by a task token (Launch's state), not by the invoked Lambda's return."""


class JobState(StrEnum):
    """A job request's state (formicary's names).

    PENDING: stored, waiting to be due or for a max_concurrency slot. STARTED: admitted (slot taken,
    execution named) until its first attempt is claimed. EXECUTING: a task has started. Then one of
    the final states. READY is formicary's state between its scheduler picking a request and an ant
    starting it; Formica admits and starts in one conditional write (PENDING -> STARTED), so no
    request is ever stored READY. It is part of the API's vocabulary (a ``job_state=READY`` filter
    is valid and matches nothing) so formicary clients keep working.
    """

    PENDING = "PENDING"
    READY = "READY"
    STARTED = "STARTED"
    EXECUTING = "EXECUTING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


class Phase(StrEnum):
    WALK = "WALK"  # following routes
    ALWAYS_RUN = "ALWAYS_RUN"  # running the always_run tasks of a failing job
    ENDED = "ENDED"


class Decision(BaseModel):
    """The next move, flat, as the state machine reads it (``step`` is filled in by the runtime)."""

    action: Action
    step: int = 0
    task_type: str = ""
    wait_seconds: int = 0
    timeout_seconds: int = 0


class AttemptResult(BaseModel):
    """One attempt's result as the walk records it.

    Its outputs are bounded when it is built (``formica.engine.outputs.bounded``; what was dropped
    or cut becomes a warning): a result is kept on the request item (a recorded attempt, the walk).
    """

    exit_code: str = ""
    error_code: str | None = None
    error_message: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)
    log_key: str | None = None  # where the attempt's log was stored
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bound_outputs(self) -> AttemptResult:
        if self.outputs:
            kept = bounded(self.outputs)
            if kept.notes:
                self.outputs = kept.outputs
                self.warnings = [*self.warnings, *kept.notes]
        return self


EXIT_CODES_KEPT = 20
"""How many attempts' exit codes a task execution keeps (a sensor may poll thousands of times)."""


class WaitKind(StrEnum):
    """What a task that already ran waits for (a MANUAL task waits for its verdict by its method)."""

    APPROVAL = "APPROVAL"  # routed to WAIT_FOR_APPROVAL
    RESUME = "RESUME"  # routed to PAUSE_JOB
    SLOT = "SLOT"  # a wait that timed out goes on, once it has a max_concurrency slot again


class PausedRoute(BaseModel):
    """Where a paused task goes when resumed, and how it ends (its route, taken at the pause)."""

    task_state: TaskState
    failure: Failure = Failure.NONE
    next_task: str | None = None
    error_code: str | None = None


class TaskRun(BaseModel):
    """The task the walk is in: one task execution, with its polls and retries."""

    task_type: str
    seq: int
    runner: RunnerKind
    task_retry: int = 0
    polls: int = 0
    attempts: int = 0
    started_at: str  # this task execution's first attempt
    try_started_at: str  # this (re)try's first attempt: the task timeout counts from here
    deadline: str | None = None  # min(task deadline, job deadline), ISO-8601
    deadline_is_job: bool = False
    last_exit_code: str = ""
    recent_exit_codes: list[str] = Field(default_factory=list)
    """Each attempt's exit code (its error code when it had none), the last ``EXIT_CODES_KEPT``."""
    last_log_key: str | None = None
    last_warnings: list[str] = Field(default_factory=list)
    waiting: WaitKind | None = None
    """The task ran and now waits for approvers (WAIT_FOR_APPROVAL) or a resume (PAUSE_JOB), or its
    wait ended and it waits for a slot (SLOT)."""
    paused: PausedRoute | None = None
    slot_after: WaitKind | None = None
    """SLOT: what the task waited for before (None: a MANUAL task's verdict)."""
    slot_answer: AttemptResult | None = None
    """SLOT: how that wait ended (its timeout), handed back to the walk once the slot is taken."""


class WalkState(BaseModel):
    """Everything the walk needs between calls; stored on the job request item."""

    phase: Phase = Phase.WALK
    job_retry: int = 0
    current: TaskRun | None = None
    next_seq: int = 1
    failing: bool = False
    fatal: bool = False
    error_code: str | None = None
    error_message: str | None = None
    # task_type -> the task it routed to, for tasks that completed in this job attempt.
    completed: dict[str, str | None] = Field(default_factory=dict)
    # Routes of tasks completed in earlier job attempts: skipped after a soft restart.
    carried: dict[str, str | None] = Field(default_factory=dict)
    ran: list[str] = Field(default_factory=list)
    restarts: int = 0
    """How often the request was restarted (POST .../restart): counts toward hard_reset_after_retries."""
    always_run_queue: list[str] = Field(default_factory=list)
    outputs: dict[str, dict[str, str]] = Field(default_factory=dict)
    # The execution whose first call this walk state answered (replays of that call are detected
    # by it), the history events and states charged to it, and a decision kept for the next one.
    execution: str | None = None
    execution_events: int = 0
    execution_states: int = 0
    deferred: Decision | None = None


class TaskUpdate(BaseModel):
    """A change to one task execution record (``TASK#{seq}``) that the transition implies."""

    seq: int
    task_type: str
    task_state: TaskState
    task_retry: int = 0
    job_retry: int = 0
    attempts: int = 0
    polls: int = 0
    exit_code: str = ""
    exit_codes: list[str] = Field(default_factory=list)
    """The last ``EXIT_CODES_KEPT`` attempts' exit codes (or error codes), oldest first."""
    error_code: str | None = None
    error_message: str | None = None
    allowed_failure: bool = False
    started_at: str | None = None
    ended_at: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)
    note: str | None = None
    # The last attempt's log and what its runner warned about.
    log_key: str | None = None
    warnings: list[str] = Field(default_factory=list)


class Transition(BaseModel):
    """The outcome of one walk call: the new state, the decision, what to record."""

    walk: WalkState
    decision: Decision
    job_state: JobState
    error_code: str | None = None
    error_message: str | None = None
    task_updates: list[TaskUpdate] = Field(default_factory=list)
    rule: str = ""


class WalkError(RuntimeError):
    """The walk was asked something that does not fit its state (a bug or a corrupted item)."""


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _ceil_seconds(seconds: float) -> int:
    return max(0, math.ceil(seconds - 1e-9))


def path_events(decision: Decision) -> tuple[int, int]:
    """(history events, states entered) from the Choice that reads ``decision`` to the next report.

    HTTP and shell attempts report their own next decision (the task Lambda advances the walk);
    so does a container attempt, through Launch's callback (its completion commits the attempt and
    sends the next decision as the task's output).
    """
    wait = (FLOW_STATE_EVENTS, 1) if decision.wait_seconds > 0 else (0, 0)
    choice = (FLOW_STATE_EVENTS, 1)
    if decision.action in (Action.RUN_HTTP, Action.RUN_SHELL, Action.RUN_FORK, Action.RUN_EXPIRE):
        body = (TASK_STATE_EVENTS, 1)
    elif decision.action in CALLBACK_ACTIONS:
        # Launch waits for its token (one more event: TaskSubmitted); the callback carries the decision.
        body = (CALLBACK_TASK_STATE_EVENTS, 1)
    elif decision.action == Action.CONTINUE:
        body = (TASK_STATE_EVENTS + FLOW_STATE_EVENTS, 2)
    else:
        body = (FLOW_STATE_EVENTS, 1)
    return choice[0] + wait[0] + body[0], choice[1] + wait[1] + body[1]


class Clock:
    """The moments a call needs: now, the job's start, and its deadline.

    ``seed`` makes the clock's random draws (``fraction``: the jitter of retry delays); it defaults
    to ``now``, so a test that fixes the clock fixes the delays.
    """

    def __init__(
        self,
        now: datetime,
        job_started_at: datetime,
        job_timeout: float | None,
        *,
        seed: str | None = None,
    ) -> None:
        self.now = now
        self.job_started_at = job_started_at
        self.job_deadline = None if not job_timeout else job_started_at + timedelta(seconds=job_timeout)
        self.seed = _iso(now) if seed is None else seed

    def fraction(self, *parts: object) -> float:
        """A number in [0, 1) drawn from the seed and ``parts``: the same inputs give the same number."""
        text = "|".join([self.seed, *(str(part) for part in parts)])
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    @property
    def job_expired(self) -> bool:
        return self.job_deadline is not None and self.now >= self.job_deadline


def backoff_delay(policy: RetryBackoffPolicy, retry: int, fraction: float = 0.0) -> float:
    """The delay before the ``retry``-th retry (1 for the first) under ``policy``, in seconds.

    Parameters
    ----------
    policy:
        The task's or job's ``retry_backoff_policy``.
    retry:
        Which retry this delay comes before: 1 waits ``min``, each next one ``factor`` times more,
        until ``max`` (or ``BACKOFF_CEILING_SECONDS`` when the policy sets none).
    fraction:
        A number in [0, 1): the share of ``jitter`` added (``Clock.fraction``).
    """
    ceiling = policy.max if policy.max is not None else BACKOFF_CEILING_SECONDS
    try:
        grown = policy.min * policy.factor ** max(0, retry - 1)
    except OverflowError:
        grown = ceiling
    return min(grown, ceiling) + (policy.jitter or 0.0) * fraction


def failure_message(task_type: str, exit_code: str) -> str:
    """The job's error message when a task failed with no message of its runner's."""
    if exit_code:
        return f"task {task_type} failed with exit code {exit_code}"
    return f"task {task_type} failed"


class _TransitionBuilder:
    """Builds one call's Transition: a working copy of the walk state, mutated step by step (enter a
    task, record an attempt, route, restart, finish), then returned with the decision and the task
    updates."""

    def __init__(self, definition: JobDefinition, walk: WalkState, clock: Clock) -> None:
        self.definition = definition
        self.walk = walk.model_copy(deep=True)
        self.clock = clock
        self.updates: list[TaskUpdate] = []
        self.rule = ""
        self.excepted: set[str] = set()  # tasks skipped by except in this call (a loop guard)

    # -- building blocks ------------------------------------------------------------------------

    def task(self, task_type: str) -> TaskDefinition:
        return self.definition.task(task_type)

    def run_decision(self, run: TaskRun, wait_seconds: float) -> Decision:
        if run.runner == RunnerKind.FORK:
            action = Action.AWAIT_FORKS if self.task(run.task_type).awaits_children else Action.RUN_FORK
        elif run.runner == RunnerKind.MANUAL:
            return self.approval_decision(run, wait_seconds)
        else:
            action = {
                RunnerKind.HTTP: Action.RUN_HTTP,
                RunnerKind.SHELL: Action.RUN_SHELL,
                RunnerKind.CONTAINER: Action.RUN_CONTAINER,
                RunnerKind.EXPIRE: Action.RUN_EXPIRE,
                RunnerKind.WORKER: Action.RUN_WORKER,
                RunnerKind.MESSAGING: Action.AWAIT_MESSAGE,
            }[run.runner]
        wait = _ceil_seconds(wait_seconds)
        timeout = 0
        if action in CALLBACK_ACTIONS:
            # A container's runner reports its own timeout (given a grace to arrive); an await
            # has no runner: its state gives up at the deadline.
            grace = {
                Action.RUN_CONTAINER: CALLBACK_GRACE_SECONDS,
                Action.RUN_WORKER: WORKER_GRACE_SECONDS,
                Action.AWAIT_MESSAGE: WORKER_GRACE_SECONDS,
            }.get(action, 1)
            if run.deadline is None:
                timeout = DEFAULT_CALLBACK_TIMEOUT_SECONDS
            else:
                remaining = (_parse(run.deadline) - self.clock.now).total_seconds()
                timeout = _ceil_seconds(remaining) + wait + grace
        return Decision(action=action, task_type=run.task_type, wait_seconds=wait, timeout_seconds=timeout)

    def approval_decision(self, run: TaskRun, wait_seconds: float) -> Decision:
        """AWAIT_APPROVAL: its state gives up at the sla_deadline or the task's deadline, the earlier
        (after WAIT_FOR_APPROVAL the task's attempts are over: the job's deadline, not the task's)."""
        wait = _ceil_seconds(wait_seconds)
        policy = self.task(run.task_type).approval_policy
        limits: list[float] = []
        if policy is not None and policy.sla_deadline:
            limits.append(policy.sla_deadline)
        deadline = run.deadline if run.waiting is None else self.clock.job_deadline
        if isinstance(deadline, str):
            deadline = _parse(deadline)
        if deadline is not None:
            limits.append((deadline - self.clock.now).total_seconds() - wait)
        timeout = _ceil_seconds(min(limits)) if limits else DEFAULT_APPROVAL_TIMEOUT_SECONDS
        return Decision(
            action=Action.AWAIT_APPROVAL,
            task_type=run.task_type,
            wait_seconds=wait,
            timeout_seconds=max(1, timeout) + wait,
        )

    def resume_decision(self, run: TaskRun, task: TaskDefinition) -> Decision:
        """AWAIT_RESUME: its state gives up at the pause_time (a resume by itself), the job's
        deadline, or ``DEFAULT_PAUSE_TIMEOUT_SECONDS``, the earliest."""
        limits: list[float] = [task.pause_time or DEFAULT_PAUSE_TIMEOUT_SECONDS]
        if self.clock.job_deadline is not None:
            limits.append((self.clock.job_deadline - self.clock.now).total_seconds())
        timeout = max(1, _ceil_seconds(min(limits)))
        return Decision(action=Action.AWAIT_RESUME, task_type=run.task_type, timeout_seconds=timeout)

    def approval_timed_out(self, task: TaskDefinition, result: AttemptResult) -> AttemptResult:
        """A MANUAL task's wait timed out: its policy's timeout_action makes the verdict."""
        policy = task.approval_policy
        action = policy.timeout_action if policy is not None else TimeoutAction.FAIL
        if action == TimeoutAction.AUTO_APPROVE:
            return AttemptResult(exit_code=EXIT_APPROVED, outputs={"ApprovalVerdict": "AUTO_APPROVE"})
        if action == TimeoutAction.AUTO_REJECT:
            return AttemptResult(
                exit_code=EXIT_REJECTED,
                error_code=ERR_MANUAL_REJECTION,
                error_message=f"task {task.task_type} had no verdict in time: rejected (AUTO_REJECT)",
                outputs={"ApprovalVerdict": "AUTO_REJECT"},
            )
        return AttemptResult(
            error_code=ERR_APPROVAL_TIMED_OUT,
            error_message=f"task {task.task_type} had no verdict in time: {result.error_message}",
        )

    def task_retry_delay(self, task: TaskDefinition, retry: int) -> float:
        """The wait before the task's ``retry``-th retry: its own policy, its delay_between_retries,
        then the job's policy."""
        policy = task.retry_backoff_policy
        if policy is None and task.delay_between_retries is None:
            policy = self.definition.retry_backoff_policy
        if policy is None:
            return task.delay_between_retries or 0.0
        jitter = self.clock.fraction("task", task.task_type, self.walk.job_retry, retry)
        return backoff_delay(policy, retry, jitter)

    def job_retry_delay(self, retry: int) -> float:
        """The wait before the job's ``retry``-th restart: its policy, else delay_between_retries."""
        policy = self.definition.retry_backoff_policy
        if policy is None:
            return self.definition.delay_between_retries or 0.0
        return backoff_delay(policy, retry, self.clock.fraction("job", retry))

    def deadline_for(self, task: TaskDefinition, start: datetime) -> tuple[str | None, bool]:
        task_deadline = start + timedelta(seconds=task.timeout) if task.timeout else None
        job_deadline = self.clock.job_deadline
        if job_deadline is not None and (task_deadline is None or job_deadline <= task_deadline):
            return _iso(job_deadline), True
        return (None if task_deadline is None else _iso(task_deadline)), False

    def record(self, run: TaskRun, state: TaskState, **fields: object) -> None:
        ended = state in (TaskState.COMPLETED, TaskState.FAILED, TaskState.SKIPPED, TaskState.CANCELLED)
        self.updates.append(
            TaskUpdate.model_validate(
                {
                    "seq": run.seq,
                    "task_type": run.task_type,
                    "task_state": state,
                    "task_retry": run.task_retry,
                    "job_retry": self.walk.job_retry,
                    "attempts": run.attempts,
                    "polls": run.polls,
                    "exit_code": run.last_exit_code,
                    "exit_codes": run.recent_exit_codes,
                    "outputs": self.walk.outputs.get(run.task_type, {}) if run.attempts else {},
                    "log_key": run.last_log_key,
                    "warnings": run.last_warnings,
                    "started_at": run.started_at,
                    "ended_at": _iso(self.clock.now) if ended else None,
                    **fields,
                }
            )
        )

    # -- moves ----------------------------------------------------------------------------------

    def enter(self, task_type: str | None, wait_seconds: float = 0.0) -> Transition:
        """Start a new task execution of ``task_type`` (None: no route), skipping carried tasks."""
        seen: set[str] = set()
        while task_type is not None and task_type in self.walk.carried and task_type not in seen:
            seen.add(task_type)
            skipped = TaskRun(
                task_type=task_type,
                seq=self.walk.next_seq,
                runner=self.task(task_type).runner,
                started_at=_iso(self.clock.now),
                try_started_at=_iso(self.clock.now),
            )
            self.walk.next_seq += 1
            self.record(skipped, TaskState.SKIPPED, note="completed in an earlier job attempt")
            self.walk.completed[task_type] = self.walk.carried[task_type]
            task_type = self.walk.carried[task_type]
        if task_type is None:
            return self.after_route_end()
        if self.clock.job_expired:
            return self.finish_timed_out(f"before task {task_type} could start")
        task = self.task(task_type)
        if task.excepted:
            return self.skip_excepted(task)
        start = self.clock.now + timedelta(seconds=wait_seconds)
        deadline, is_job = self.deadline_for(task, start)
        run = TaskRun(
            task_type=task_type,
            seq=self.walk.next_seq,
            runner=task.runner,
            started_at=_iso(start),
            try_started_at=_iso(start),
            deadline=deadline,
            deadline_is_job=is_job,
        )
        self.walk.next_seq += 1
        self.walk.current = run
        self.walk.ran.append(task_type)
        manual = task.runner == RunnerKind.MANUAL
        self.record(run, TaskState.MANUAL_APPROVAL_REQUIRED if manual else TaskState.READY)
        return self.running(self.run_decision(run, wait_seconds))

    def skip_excepted(self, task: TaskDefinition) -> Transition:
        """``except`` rendered true: the task is COMPLETED with exit code SKIPPED, not run."""
        if task.task_type in self.excepted:
            return self.finish(
                JobState.FAILED,
                ERR_EXCEPT_LOOP,
                f"task {task.task_type} was skipped by its except twice in one step: the tasks "
                "skipped by except route back to it in a loop",
            )
        self.excepted.add(task.task_type)
        now = _iso(self.clock.now)
        run = TaskRun(
            task_type=task.task_type,
            seq=self.walk.next_seq,
            runner=task.runner,
            started_at=now,
            try_started_at=now,
            last_exit_code=EXIT_SKIPPED,
            recent_exit_codes=[EXIT_SKIPPED],
        )
        self.walk.next_seq += 1
        self.walk.ran.append(task.task_type)
        route = route_skipped(task, {t.task_type for t in self.definition.tasks})
        self.rule = route.rule
        return self.apply(
            task, run, route, AttemptResult(exit_code=EXIT_SKIPPED), note="except rendered true: not run"
        )

    def running(self, decision: Decision) -> Transition:
        return Transition(
            walk=self.walk,
            decision=decision,
            job_state=JobState.EXECUTING,
            task_updates=self.updates,
            rule=self.rule,
        )

    def after_attempt(self, result: AttemptResult) -> Transition:
        run = self.walk.current
        if run is None:
            raise WalkError("an attempt result arrived but the walk is in no task")
        task = self.task(run.task_type)
        if run.waiting == WaitKind.SLOT:
            # The slot is taken: the wait's own ending (``result``, as kept) goes on as it would have.
            if run.slot_after is None:
                run.attempts += 1
            run.waiting, run.slot_after, run.slot_answer = run.slot_after, None, None
        if run.waiting == WaitKind.RESUME:
            return self.resumed(task, run, result)
        verdict = run.runner == RunnerKind.MANUAL or run.waiting == WaitKind.APPROVAL
        if (
            verdict
            and result.error_code == ERR_TASK_TIMED_OUT
            and not ((run.deadline_is_job and run.waiting is None) or self.clock.job_expired)
        ):
            result = self.approval_timed_out(task, result)
        if run.waiting == WaitKind.APPROVAL:
            # The verdict is the task's exit code now; a WAIT_FOR_APPROVAL in on_completed /
            # on_failed already led here and is not taken again.
            run.waiting = None
            task = task.model_copy(
                update={
                    name: None
                    for name in ("on_completed", "on_failed")
                    if getattr(task, name) == RouteAction.WAIT_FOR_APPROVAL
                }
            )
        run.last_exit_code = result.exit_code
        code = result.exit_code or result.error_code or "?"
        run.recent_exit_codes = [*run.recent_exit_codes, code][-EXIT_CODES_KEPT:]
        if result.log_key is not None:
            run.last_log_key = result.log_key
            run.last_warnings = list(result.warnings)
        if result.outputs:
            # result.outputs are bounded per task (AttemptResult); here all tasks' together.
            dropped = publish(self.walk.outputs, run.task_type, result.outputs)
            run.last_warnings = [
                *run.last_warnings,
                *(
                    f"the outputs of task {task_type} were dropped: all tasks' outputs together stay "
                    f"under {JOB_OUTPUTS_MAX_BYTES} bytes"
                    for task_type in dropped
                ),
            ]
        outcome = AttemptOutcome(exit_code=result.exit_code, error_code=result.error_code)
        if result.error_code == ERR_TASK_TIMED_OUT and (run.deadline_is_job or self.clock.job_expired):
            # The runner only knows its attempt's deadline: say whose timeout it was.
            return self.finish_timed_out(f"while task {run.task_type} was running")
        if result.error_code == ERR_TASK_CANCELLED:
            # A cancelled attempt never routes: cancellation ends the job (runtime.cancel_request).
            self.record(run, TaskState.CANCELLED, error_code=ERR_TASK_CANCELLED)
            return self.finish(JobState.CANCELLED, ERR_JOB_CANCELLED, "the job was cancelled")
        route = self.route(task, run, outcome)
        if route.move == Move.POLL:
            delay = task.delay_between_retries or 0.0
            poll_at = self.clock.now + timedelta(seconds=delay)
            if run.deadline is not None and poll_at >= _parse(run.deadline):
                if run.deadline_is_job:
                    return self.finish_timed_out(f"before task {run.task_type}'s next poll could start")
                # A poll that could not start before the deadline is not waited for: the task fails
                # now, so a sensor may fail before its timeout has fully passed (docs: Timeouts).
                left = max(0.0, (_parse(run.deadline) - self.clock.now).total_seconds())
                timed_out = AttemptOutcome(error_code=ERR_TASK_TIMED_OUT)
                route = self.route(task, run, timed_out)
                result = AttemptResult(
                    exit_code=result.exit_code,
                    error_code=ERR_TASK_TIMED_OUT,
                    error_message=(
                        f"task {run.task_type} timed out while polling: its next poll would start "
                        f"{delay:g}s from now, after its timeout of {task.timeout or 0:g}s "
                        f"({left:.1f}s were left)"
                    ),
                )
            else:
                run.polls += 1
                self.rule = route.rule
                self.record(run, TaskState.EXECUTING)
                return self.running(self.run_decision(run, delay))
        self.rule = route.rule
        if route.move == Move.PAUSE:
            return self.pause(task, run, route)
        if route.move == Move.AWAIT_APPROVAL:
            run.waiting = WaitKind.APPROVAL
            self.record(run, TaskState.MANUAL_APPROVAL_REQUIRED)
            return self.running(self.approval_decision(run, 0.0))
        return self.apply(task, run, route, result)

    def pause(self, task: TaskDefinition, run: TaskRun, route: Route) -> Transition:
        """PAUSE_JOB: the task is PAUSED, the job PAUSED; a resume (or the pause_time) goes on."""
        run.waiting = WaitKind.RESUME
        run.paused = PausedRoute(
            task_state=route.task_state,
            failure=route.failure,
            next_task=route.next_task,
            error_code=route.error_code,
        )
        self.record(run, TaskState.PAUSED)
        return Transition(
            walk=self.walk,
            decision=self.resume_decision(run, task),
            job_state=JobState.PAUSED,
            task_updates=self.updates,
            rule=self.rule,
        )

    def resumed(self, task: TaskDefinition, run: TaskRun, result: AttemptResult) -> Transition:
        """A paused job goes on: resumed by hand, by its pause_time, or ended by its timeout."""
        paused = run.paused or PausedRoute(task_state=TaskState.COMPLETED)
        run.waiting, run.paused = None, None
        if result.error_code == ERR_TASK_CANCELLED:
            self.record(run, TaskState.CANCELLED, error_code=ERR_TASK_CANCELLED)
            return self.finish(JobState.CANCELLED, ERR_JOB_CANCELLED, "the job was cancelled")
        if result.error_code == ERR_TASK_TIMED_OUT or (result.error_code and not result.exit_code):
            if self.clock.job_expired:
                return self.finish_timed_out(f"while the job was paused after task {run.task_type}")
            if result.error_code != ERR_TASK_TIMED_OUT or task.pause_time is None:
                message = (
                    f"the job paused after task {run.task_type} was not resumed within "
                    f"{DEFAULT_PAUSE_TIMEOUT_SECONDS // 86_400} days"
                    if result.error_code == ERR_TASK_TIMED_OUT
                    else f"the pause after task {run.task_type} failed: {result.error_message}"
                )
                code = ERR_PAUSE_TIMED_OUT if result.error_code == ERR_TASK_TIMED_OUT else result.error_code
                self.record(run, TaskState.FAILED, error_code=code, error_message=message)
                self.walk.current = None
                return self.finish(JobState.FAILED, code, message)
            note = f"resumed by its pause_time of {task.pause_time:g}s"
        else:
            who = result.outputs.get("ResumedBy", "")
            note = f"resumed by {who}" if who else "resumed"
        route = Route(
            paused.task_state,
            Move.NEXT,
            paused.failure,
            next_task=paused.next_task,
            error_code=paused.error_code,
            rule="resumed",
        )
        self.rule = route.rule
        kept = AttemptResult(exit_code=run.last_exit_code, error_code=paused.error_code)
        return self.apply(task, run, route, kept, note=note)

    def route(self, task: TaskDefinition, run: TaskRun, outcome: AttemptOutcome) -> Route:
        budget = RetryBudget(
            task_retry=run.task_retry,
            job_retry=self.walk.job_retry,
            job_retry_limit=self.definition.retry,
        )
        names = {t.task_type for t in self.definition.tasks}
        return route_exit_code(task, outcome, budget, known_tasks=names)

    def apply(
        self,
        task: TaskDefinition,
        run: TaskRun,
        route: Route,
        result: AttemptResult,
        note: str | None = None,
    ) -> Transition:
        error_code = route.error_code
        message = result.error_message if error_code == result.error_code else None
        if route.move == Move.RETRY_TASK:
            self.record(run, TaskState.EXECUTING, error_code=error_code, error_message=message)
            delay = self.task_retry_delay(task, run.task_retry + 1)
            start = self.clock.now + timedelta(seconds=delay)
            if self.clock.job_deadline is not None and start >= self.clock.job_deadline:
                return self.finish_timed_out(f"before task {run.task_type}'s retry could start")
            run.task_retry += 1
            run.try_started_at = _iso(start)
            run.deadline, run.deadline_is_job = self.deadline_for(task, start)
            return self.running(self.run_decision(run, delay))
        allowed = route.failure == Failure.HANDLED and task.allow_failure
        self.record(
            run,
            route.task_state,
            error_code=error_code,
            error_message=message,
            allowed_failure=allowed,
            note=note,
        )
        self.walk.current = None
        if route.move == Move.RESTART_JOB:
            return self.restart_job()
        if route.failure == Failure.NONE:
            self.walk.completed[run.task_type] = route.next_task
        elif route.failure in (Failure.UNHANDLED, Failure.FATAL):
            self.walk.failing = True
            if self.walk.error_code is None:
                self.walk.error_code = error_code
                self.walk.error_message = message or failure_message(run.task_type, result.exit_code)
            if route.failure == Failure.FATAL:
                self.walk.fatal = True
                return self.after_route_end()
        if self.walk.phase == Phase.ALWAYS_RUN:
            return self.after_route_end()
        return self.enter(route.next_task)

    def after_route_end(self) -> Transition:
        """No route goes on: run pending always_run tasks of a failing job, then finish."""
        if self.walk.failing:
            if self.walk.phase == Phase.WALK:
                self.walk.phase = Phase.ALWAYS_RUN
                self.walk.always_run_queue = [
                    t.task_type
                    for t in self.definition.tasks
                    if t.always_run and t.task_type not in self.walk.ran
                ]
            if self.walk.always_run_queue:
                next_task = self.walk.always_run_queue.pop(0)
                self.walk.carried.pop(next_task, None)
                return self.enter(next_task)
            if not self.walk.fatal and self.walk.job_retry < self.definition.retry:
                return self.restart_job()
            return self.finish(JobState.FAILED, self.walk.error_code, self.walk.error_message)
        return self.finish(JobState.COMPLETED, None, None)

    def restart_job(self) -> Transition:
        walk = self.walk
        walk.job_retry += 1
        hard = self.definition.hard_reset_after_retries
        if hard > 0 and walk.job_retry % (hard + 1) == 0:
            carried: dict[str, str | None] = {}
            walk.outputs = {}
        else:
            # always_run tasks run in every job attempt: they clean up after it. FORK_JOB tasks run
            # again too: the fork reuses its earlier child when that one completed, and forks anew
            # when it did not (a restart re-forks only the children that failed).
            carried = carried_tasks(self.definition, {**walk.carried, **walk.completed})
        self.walk = WalkState(
            job_retry=walk.job_retry,
            next_seq=walk.next_seq,
            carried=carried,
            outputs=walk.outputs,
            restarts=walk.restarts,
            execution=walk.execution,
            execution_events=walk.execution_events,
            execution_states=walk.execution_states,
        )
        return self.enter(self.definition.root_task.task_type, self.job_retry_delay(walk.job_retry))

    def finish_timed_out(self, when: str | None = None) -> Transition:
        """The job's timeout passed (``when``: while what): the job fails now, ERR_JOB_TIMED_OUT."""
        message = f"the job's timeout of {self.definition.timeout or 0:g}s passed"
        if when:
            message += f" {when}"
        run = self.walk.current
        if run is not None:
            self.record(run, TaskState.FAILED, error_code=ERR_JOB_TIMED_OUT, error_message=message)
            self.walk.current = None
        return self.finish(JobState.FAILED, ERR_JOB_TIMED_OUT, message)

    def finish(self, state: JobState, error_code: str | None, message: str | None) -> Transition:
        self.walk.phase = Phase.ENDED
        self.walk.current = None
        action = {
            JobState.COMPLETED: Action.SUCCEED,
            JobState.FAILED: Action.FAIL,
            JobState.CANCELLED: Action.CANCELLED,
        }[state]
        return Transition(
            walk=self.walk,
            decision=Decision(action=action),
            job_state=state,
            error_code=error_code,
            error_message=message,
            task_updates=self.updates,
            rule=self.rule,
        )


def carried_tasks(definition: JobDefinition, completed: dict[str, str | None]) -> dict[str, str | None]:
    """Of the tasks completed before (task -> the task it routed to), those a soft restart skips.

    always_run tasks run in every job attempt: they clean up after it. FORK_JOB tasks run again
    too: the fork reuses its earlier child when that one completed, and forks anew when it did not
    (a restart re-forks only the children that failed). Names the definition no longer has go.
    """
    runs_again = {t.task_type for t in definition.tasks if t.always_run or t.method == TaskMethod.FORK_JOB}
    known = {t.task_type for t in definition.tasks}
    return {k: v for k, v in completed.items() if k in known and k not in runs_again}


def _charged(transition: Transition, *, extra_events: int = 0) -> Transition:
    """Count the decision's history events; swap it for CONTINUE when the budget would run out."""
    walk = transition.walk
    walk.execution_events += extra_events
    events, states = path_events(transition.decision)
    continue_events, _ = path_events(Decision(action=Action.CONTINUE))
    if (
        transition.decision.action in RUN_ACTIONS
        and walk.execution_events + events + continue_events + _END_RESERVE > HISTORY_EVENT_BUDGET
    ):
        walk.deferred = transition.decision
        transition.decision = Decision(action=Action.CONTINUE, task_type=transition.decision.task_type)
        events, states = path_events(transition.decision)
    walk.execution_events += events
    walk.execution_states += states
    return transition


def start_walk(
    definition: JobDefinition,
    clock: Clock,
    *,
    start_events: int = EXECUTION_START_EVENTS,
    next_seq: int = 1,
    previous: WalkState | None = None,
) -> Transition:
    """The first decision of a request: enter the root task.

    ``start_events`` are the history events before the decision's path: EXECUTION_START_EVENTS
    when the execution's Begin state takes it, PREDECIDED_START_EVENTS when the starter does.
    ``next_seq`` numbers the first task record: a restarted request goes on after its earlier
    run's records instead of overwriting them. ``previous`` is the walk state a restarted request
    was requeued with (``formica.runtime.restart_request``): its ``next_seq``, the tasks it carries
    (completed in earlier runs: skipped again, SKIPPED records, their outputs kept) and its
    ``restarts``; every ``hard_reset_after_retries + 1``-th restart carries nothing.
    """
    walk = WalkState(next_seq=next_seq)
    if previous is not None:
        walk = WalkState(
            next_seq=max(next_seq, previous.next_seq),
            restarts=previous.restarts,
            carried=carried_tasks(definition, previous.carried),
            outputs=previous.outputs,
        )
        hard = definition.hard_reset_after_retries
        if not walk.carried or (hard > 0 and walk.restarts > 0 and walk.restarts % (hard + 1) == 0):
            walk.carried, walk.outputs = {}, {}
    builder = _TransitionBuilder(definition, walk, clock)
    builder.walk.execution_events = 0
    return _charged(builder.enter(definition.root_task.task_type), extra_events=start_events)


def record_attempt(
    definition: JobDefinition,
    walk: WalkState,
    result: AttemptResult,
    clock: Clock,
    *,
    via_catch: bool = False,
) -> Transition:
    """Record the current task's attempt and decide what comes next.

    Parameters
    ----------
    definition:
        The job definition rendered for the attempt that produced ``result``.
    walk:
        The walk state as committed with the step this result answers.
    result:
        The attempt's exit code / error code and outputs.
    clock:
        Now, and the job's start and deadline.
    via_catch:
        True when the result came through the state machine's Catch (its events are charged).
    """
    builder = _TransitionBuilder(definition, walk, clock)
    if builder.walk.current is not None and builder.walk.current.waiting is None:
        # A verdict after WAIT_FOR_APPROVAL, or a resume, is not another attempt of the task.
        builder.walk.current.attempts += 1
    return _charged(builder.after_attempt(result), extra_events=CATCH_EVENTS if via_catch else 0)


def wait_for_slot(walk: WalkState, result: AttemptResult, clock: Clock, *, paused: bool) -> Transition:
    """A wait (an approval, a pause) ended by its own timeout must take a max_concurrency slot
    before it goes on, and none is free: wait for one, on a task token again (AWAIT_RESUME), with
    the wait's ending kept for when the slot is taken (``record_attempt`` then goes on with it)."""
    waited = walk.model_copy(deep=True)
    run = waited.current
    if run is None:
        raise WalkError("a slot wait asked but the walk is in no task")
    run.slot_after, run.slot_answer, run.waiting = run.waiting, result, WaitKind.SLOT
    limits: list[float] = [DEFAULT_PAUSE_TIMEOUT_SECONDS]
    if clock.job_deadline is not None:
        limits.append((clock.job_deadline - clock.now).total_seconds())
    decision = Decision(
        action=Action.AWAIT_RESUME,
        task_type=run.task_type,
        timeout_seconds=max(1, _ceil_seconds(min(limits))),
    )
    state = JobState.PAUSED if paused else JobState.EXECUTING
    return _charged(Transition(walk=waited, decision=decision, job_state=state, rule="waiting for a slot"))


def resume_walk(walk: WalkState, *, start_events: int = EXECUTION_START_EVENTS) -> Transition:
    """The first decision of a fresh execution after CONTINUE: the decision kept for it."""
    if walk.deferred is None:
        raise WalkError("resume asked but no decision was kept for the next execution")
    resumed = walk.model_copy(deep=True)
    decision = resumed.deferred
    assert decision is not None  # noqa: S101 - narrowed above
    resumed.deferred = None
    resumed.execution_events = 0
    resumed.execution_states = 0
    paused = decision.action == Action.AWAIT_RESUME
    transition = Transition(
        walk=resumed, decision=decision, job_state=JobState.PAUSED if paused else JobState.EXECUTING
    )
    return _charged(transition, extra_events=start_events)


def end_walk(
    walk: WalkState,
    state: JobState,
    error_code: str | None,
    message: str | None,
    now: datetime,
) -> Transition:
    """End the job now (cancellation, an unexpected error): the current task ends with it."""
    ended = walk.model_copy(deep=True)
    updates: list[TaskUpdate] = []
    run = ended.current
    if run is not None:
        task_state = TaskState.CANCELLED if state == JobState.CANCELLED else TaskState.FAILED
        updates.append(
            TaskUpdate(
                seq=run.seq,
                task_type=run.task_type,
                task_state=task_state,
                task_retry=run.task_retry,
                job_retry=ended.job_retry,
                attempts=run.attempts,
                polls=run.polls,
                exit_code=run.last_exit_code,
                exit_codes=run.recent_exit_codes,
                error_code=error_code,
                error_message=message,
                log_key=run.last_log_key,
                warnings=run.last_warnings,
                started_at=run.started_at,
                ended_at=_iso(now),
            )
        )
    ended.current = None
    ended.phase = Phase.ENDED
    ended.deferred = None
    action = {
        JobState.COMPLETED: Action.SUCCEED,
        JobState.FAILED: Action.FAIL,
        JobState.CANCELLED: Action.CANCELLED,
    }[state]
    return Transition(
        walk=ended,
        decision=Decision(action=action),
        job_state=state,
        error_code=error_code,
        error_message=message,
        task_updates=updates,
        rule="ended",
    )


def terminal_decision(state: JobState) -> Decision:
    """The decision that ends an execution of a request already in a final state."""
    if state == JobState.COMPLETED:
        return Decision(action=Action.SUCCEED)
    if state == JobState.CANCELLED:
        return Decision(action=Action.CANCELLED)
    return Decision(action=Action.FAIL)
