"""Exit-code routing: what one attempt's outcome means for its task and for the walk.

Pure functions over the task definition and the attempt's outcome; no AWS, no clock. The walk
(``formica.engine.walk``) applies the result: it runs the next task, polls, retries, restarts the
job or finishes it.

The rules, in order (docs/job-language.md has the prose; tests/unit/engine/test_routing.py has one
row per rule):

1. An attempt that produced no exit code (timeout, cancellation, runner error) fails the task with
   the runner's error code; on_exit_code does not apply (there is no code to match).
2. An exit code named in ``on_exit_code`` takes the mapped action:
   a task name (a branch: the task ends COMPLETED on a success code, FAILED otherwise, and the
   failure counts as handled), COMPLETED, FAILED, FATAL, EXECUTING (poll), RESTART_TASK,
   RESTART_JOB, PAUSE_JOB (the job pauses; resumed, it follows on_completed), WAIT_FOR_APPROVAL
   (the task waits for approvers; the verdict is routed as its exit code), or an ``ERR_*`` code
   (fail with that code).
3. Otherwise a success code (``0``; for HTTP tasks any 2xx; ``APPROVED``, an approvers' verdict)
   completes the task -> on_completed.
4. Otherwise the task fails -> on_failed.

Failures other than FATAL are retried automatically while the task's ``retry`` budget lasts
(formicary's task retry). RESTART_TASK and RESTART_JOB use the task's / job's ``retry`` budget,
or ``DEFAULT_RESTART_CAP`` when the definition sets none, so an explicit restart never loops forever.
``allow_failure`` turns an unhandled failure (FATAL excepted) into a handled one: the walk follows
on_failed, else on_completed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from formica.jobs.models import EXIT_APPROVED, RunnerKind, TaskDefinition, is_action

DEFAULT_RESTART_CAP = 3
"""How many times an explicit RESTART_TASK / RESTART_JOB restarts when the definition sets no retry."""

ERR_FATAL = "ERR_FATAL"
ERR_RESTART_TASK = "ERR_RESTART_TASK"
ERR_RESTART_JOB = "ERR_RESTART_JOB"
ERR_TASK_FAILED = "ERR_TASK_FAILED"
ERR_INVALID_ROUTE = "ERR_INVALID_ROUTE"


class TaskState(StrEnum):
    """The state of a task execution (formicary's names)."""

    READY = "READY"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"
    PAUSED = "PAUSED"
    """The task ended and routed to PAUSE_JOB: the job waits for a resume."""
    MANUAL_APPROVAL_REQUIRED = "MANUAL_APPROVAL_REQUIRED"
    """The task waits for approvers' verdict (MANUAL, or routed to WAIT_FOR_APPROVAL)."""


class RouteAction(StrEnum):
    """Reserved words of on_exit_code besides task names and ERR_* codes."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    FATAL = "FATAL"
    EXECUTING = "EXECUTING"
    RESTART_TASK = "RESTART_TASK"
    RESTART_JOB = "RESTART_JOB"
    PAUSE_JOB = "PAUSE_JOB"
    WAIT_FOR_APPROVAL = "WAIT_FOR_APPROVAL"


class Move(StrEnum):
    """What the walk does after this attempt."""

    NEXT = "NEXT"  # go to ``next_task`` (None: no route from this task)
    POLL = "POLL"  # run the same task again after delay_between_retries (EXECUTING)
    RETRY_TASK = "RETRY_TASK"  # run the same task again, TaskRetry + 1
    RESTART_JOB = "RESTART_JOB"  # re-walk the job from the root, JobRetry + 1
    PAUSE = "PAUSE"  # pause the job; resumed, record ``task_state`` and go to ``next_task``
    AWAIT_APPROVAL = "AWAIT_APPROVAL"  # wait for approvers; their verdict is routed as the exit code


class Failure(StrEnum):
    """How a failure counts for the job's final state."""

    NONE = "NONE"  # the task did not fail
    HANDLED = "HANDLED"  # failed, but routed by exact code or allowed (allow_failure)
    UNHANDLED = "UNHANDLED"  # fails the job (the walk still follows on_failed and always_run)
    FATAL = "FATAL"  # fails the job now: no on_failed, no job retry


@dataclass(frozen=True)
class AttemptOutcome:
    """The part of a runner's TaskOutcome that routing looks at."""

    exit_code: str = ""
    error_code: str | None = None


@dataclass(frozen=True)
class RetryBudget:
    """Retries used so far and the job's retry setting."""

    task_retry: int = 0  # TaskRetry: retries of this task already done in this job attempt
    job_retry: int = 0  # JobRetry: restarts of the job already done
    job_retry_limit: int = 0  # the job definition's ``retry``


@dataclass(frozen=True)
class Route:
    """The routing decision for one attempt."""

    task_state: TaskState
    move: Move
    failure: Failure = Failure.NONE
    next_task: str | None = None
    error_code: str | None = None
    rule: str = ""  # which rule decided (logs, tests)


def is_success(exit_code: str, runner: RunnerKind) -> bool:
    """``0`` succeeds; an HTTP task's exit code is its status, so any 2xx succeeds; an approvers'
    verdict (a MANUAL task's, or one routed to WAIT_FOR_APPROVAL) is the exit code: ``APPROVED``
    succeeds (``REJECTED`` fails, with ERR_MANUAL_REJECTION)."""
    if exit_code == EXIT_APPROVED:
        return True
    if runner == RunnerKind.MANUAL:
        return False
    if runner == RunnerKind.HTTP:
        return len(exit_code) == 3 and exit_code.startswith("2") and exit_code.isdigit()
    return exit_code == "0"


def restart_limit(retry: int) -> int:
    """The restart budget: the definition's ``retry``, else DEFAULT_RESTART_CAP."""
    return retry if retry > 0 else DEFAULT_RESTART_CAP


def route_exit_code(
    task: TaskDefinition,
    outcome: AttemptOutcome,
    budget: RetryBudget,
    known_tasks: Collection[str] | None = None,
) -> Route:
    """Decide the task's state and the walk's next move for one attempt's outcome.

    Parameters
    ----------
    task:
        The task definition as rendered for this attempt.
    outcome:
        The attempt's exit code (a string, as in formicary: ``"0"``, ``"404"``) and the runner's
        error code when it produced no exit code (``ERR_TASK_TIMED_OUT``, ...).
    budget:
        Retries already used, for RESTART_TASK / RESTART_JOB and automatic task retries.
    known_tasks:
        The job's task names; when given, a target that is neither an action nor one of them
        fails the task with ERR_INVALID_ROUTE (validation refuses such definitions at upload).

    Returns
    -------
    Route
        The task's state, the failure class, the move and the next task named by the route.
    """
    router = _Router(task, outcome, budget, known_tasks)
    if not outcome.exit_code:
        return router.failed(outcome.error_code or ERR_TASK_FAILED, "no exit code")
    target = task.on_exit_code.get(outcome.exit_code)
    if target is not None:
        return router.target(target, f"on_exit_code {outcome.exit_code}: {target}", exact=True)
    if is_success(outcome.exit_code, task.runner):
        return router.completed("success")
    return router.failed(outcome.error_code or ERR_TASK_FAILED, "failure")


EXIT_SKIPPED = "SKIPPED"
"""The exit code of a task not run because its ``except`` rendered true (formicary's form)."""


def route_skipped(task: TaskDefinition, known_tasks: Collection[str] | None = None) -> Route:
    """The route of a task skipped by ``except``: COMPLETED, then on_completed when it names a task.

    The task did not run, so an action named by on_completed (RESTART_TASK, EXECUTING, an ERR_*
    code...) is not taken: it would restart or fail a task that never ran.
    """
    target = task.on_completed
    next_task = target if target and not is_action(target) else None
    rule = "except: skipped"
    if next_task is not None and known_tasks is not None and next_task not in known_tasks:
        return Route(
            TaskState.FAILED,
            Move.NEXT,
            Failure.UNHANDLED,
            error_code=ERR_INVALID_ROUTE,
            rule=rule + f" (unknown target {next_task})",
        )
    return Route(TaskState.COMPLETED, Move.NEXT, next_task=next_task, rule=rule)


class _Router:
    """The rules for one attempt; each method is one kind of target."""

    def __init__(
        self,
        task: TaskDefinition,
        outcome: AttemptOutcome,
        budget: RetryBudget,
        known_tasks: Collection[str] | None,
    ) -> None:
        self.task = task
        self.outcome = outcome
        self.budget = budget
        self.known_tasks = known_tasks

    def _is_action(self, target: str) -> bool:
        return target in RouteAction.__members__ or target.startswith("ERR_")

    def completed(self, rule: str) -> Route:
        """The task completed: follow on_completed (a task, or an action such as RESTART_JOB)."""
        target = self.task.on_completed
        if target and self._is_action(target) and target != RouteAction.COMPLETED:
            return self.target(target, f"{rule}; on_completed: {target}", exact=False)
        next_task = None if not target or self._is_action(target) else target
        return self._checked(Route(TaskState.COMPLETED, Move.NEXT, next_task=next_task, rule=rule))

    def failed(self, error_code: str, rule: str) -> Route:
        """The task failed: retried while its retry budget lasts, else on_failed / allow_failure."""
        target = self.task.on_failed
        if target and self._is_action(target) and target not in (RouteAction.FAILED, error_code):
            return self.target(target, f"{rule}; on_failed: {target}", exact=False)
        if self.budget.task_retry < self.task.retry:
            return Route(
                TaskState.FAILED,
                Move.RETRY_TASK,
                Failure.HANDLED,
                error_code=error_code,
                rule=rule + " (automatic retry)",
            )
        return self.give_up(error_code, rule)

    def give_up(self, error_code: str, rule: str) -> Route:
        on_failed = (
            self.task.on_failed if self.task.on_failed and not self._is_action(self.task.on_failed) else None
        )
        if self.task.allow_failure:
            on_completed = self.task.on_completed
            if on_completed and self._is_action(on_completed):
                on_completed = None
            return self._checked(
                Route(
                    TaskState.FAILED,
                    Move.NEXT,
                    Failure.HANDLED,
                    next_task=on_failed or on_completed,
                    error_code=error_code,
                    rule=rule + " (allow_failure)",
                )
            )
        return self._checked(
            Route(
                TaskState.FAILED,
                Move.NEXT,
                Failure.UNHANDLED,
                next_task=on_failed,
                error_code=error_code,
                rule=rule,
            )
        )

    def target(self, target: str, rule: str, *, exact: bool) -> Route:
        """An on_exit_code target (``exact``), or an action named by on_completed / on_failed."""
        if target == RouteAction.COMPLETED:
            return (
                self.completed(rule)
                if exact
                else self._checked(Route(TaskState.COMPLETED, Move.NEXT, rule=rule))
            )
        if target == RouteAction.FAILED:
            return self.failed(ERR_TASK_FAILED, rule) if exact else self.give_up(ERR_TASK_FAILED, rule)
        if target == RouteAction.FATAL:
            # FATAL wins over allow_failure and retries: the author asked for the job to stop.
            return Route(TaskState.FAILED, Move.NEXT, Failure.FATAL, error_code=ERR_FATAL, rule=rule)
        if target == RouteAction.EXECUTING:
            return Route(TaskState.EXECUTING, Move.POLL, rule=rule)
        if target == RouteAction.RESTART_TASK:
            if self.budget.task_retry < restart_limit(self.task.retry):
                return Route(TaskState.FAILED, Move.RETRY_TASK, Failure.HANDLED, rule=rule)
            return self.give_up(ERR_RESTART_TASK, rule + " (budget spent)")
        if target == RouteAction.PAUSE_JOB:
            return self.pause(rule)
        if target == RouteAction.WAIT_FOR_APPROVAL:
            return Route(TaskState.MANUAL_APPROVAL_REQUIRED, Move.AWAIT_APPROVAL, rule=rule)
        if target == RouteAction.RESTART_JOB:
            if self.budget.job_retry < restart_limit(self.budget.job_retry_limit):
                return Route(TaskState.FAILED, Move.RESTART_JOB, Failure.HANDLED, rule=rule)
            return self.give_up(ERR_RESTART_JOB, rule + " (budget spent)")
        if target.startswith("ERR_"):
            return self.failed(target, rule) if exact else self.give_up(target, rule)
        if self.known_tasks is not None and target not in self.known_tasks:
            return self.give_up(ERR_INVALID_ROUTE, rule + " (unknown target)")
        # A task name: an exact-code branch. The failure (if any) is handled by the branch.
        if is_success(self.outcome.exit_code, self.task.runner):
            return Route(TaskState.COMPLETED, Move.NEXT, next_task=target, rule=rule + " (branch)")
        return Route(TaskState.FAILED, Move.NEXT, Failure.HANDLED, next_task=target, rule=rule + " (branch)")

    def pause(self, rule: str) -> Route:
        """PAUSE_JOB: the job pauses after this task; resumed, the task is COMPLETED (FAILED, handled,
        when its exit code failed) and the walk follows its on_completed task."""
        target = self.task.on_completed
        next_task = target if target and not self._is_action(target) else None
        if not self.outcome.error_code and is_success(self.outcome.exit_code, self.task.runner):
            return self._checked(Route(TaskState.COMPLETED, Move.PAUSE, next_task=next_task, rule=rule))
        error_code = self.outcome.error_code or ERR_TASK_FAILED
        paused = Route(TaskState.FAILED, Move.PAUSE, Failure.HANDLED, next_task, error_code, rule)
        return self._checked(paused)

    def _checked(self, route: Route) -> Route:
        """A route to a task that does not exist ends the task with ERR_INVALID_ROUTE."""
        if route.next_task is None or self.known_tasks is None or route.next_task in self.known_tasks:
            return route
        return Route(
            TaskState.FAILED,
            Move.NEXT,
            Failure.UNHANDLED,
            error_code=ERR_INVALID_ROUTE,
            rule=route.rule + f" (unknown target {route.next_task})",
        )
