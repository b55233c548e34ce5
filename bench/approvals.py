"""What one MANUAL approval adds to a job's execution, whatever the wait, counted from moto histories.

The real ASL runs in-process under moto (the same host as ``bench.states_per_attempt``, whose runner
and history counting this uses). A job of two SHELL tasks is compared with the same job with a
MANUAL task between them, approved by one vote (``formica.runtime.approvals.cast_vote``: what the
API's approve route does) as soon as it waits, and again after a wait of a few seconds: the
approval waits on a task token, so neither its states nor its Lambda invocations grow with the
wait. States entered, history events and Lambda invocations (``TaskScheduled`` and
``LambdaFunctionScheduled`` events) are counted from the executions' histories; the vote is the
API's own invocation, outside the execution, priced with it.

    .venv/bin/python -m bench.approvals [--quick]
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from bench.common import BenchError, Figure, median, standalone
from bench.cost import (
    DEFAULT_MEMORY_MB,
    PRICE_PER_GB_SECOND_ARM64,
    PRICE_PER_REQUEST,
    PRICE_PER_TRANSITION,
    billed_seconds,
    cdk_memory_sizes,
)
from bench.local_runs import LocalRuns, timed_lambdas
from bench.states_per_attempt import ORG, Counted, _run_job, _walk_host

BENCHMARK = "approvals"
GOAL = 2
"""At most 2 states per approval: the dispatching Choice and the task-token wait."""
WAIT_SECONDS = 3.0
QUICK_WAIT_SECONDS = 1.0
API_FUNCTION = "api"
LAUNCH_FUNCTION = "launch"
NOTES = [
    "approvals: states, history events and Lambda invocations of the job's execution from moto's history "
    "of the real ASL, a job of 2 SHELL tasks against the same job with a MANUAL task between them "
    "(min_approvals 1); the approving vote is an API invocation outside the execution, priced with it",
]

PLAIN = """job_type: bench-unapproved
tasks:
- task_type: build
  method: SHELL
  script: ['true']
  on_completed: deploy
- task_type: deploy
  method: SHELL
  script: ['true']
"""
MANUAL = """job_type: bench-approved
tasks:
- task_type: build
  method: SHELL
  script: ['true']
  on_completed: sign-off
- task_type: sign-off
  method: MANUAL
  on_completed: deploy
- task_type: deploy
  method: SHELL
  script: ['true']
"""
MANUAL_JOB_TYPE = "bench-approved"
MANUAL_TASK = "sign-off"


@dataclass
class _Approver:
    """Approves the MANUAL job's wait ``after`` seconds once it is recorded, on its own thread."""

    after: float
    waited: float = 0.0
    vote_seconds: float = 0.0
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-approver", daemon=True)

    def __enter__(self) -> _Approver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise BenchError(f"the approval was not cast: {self.error}") from self.error

    def _run(self) -> None:
        from formica.runtime import get_runtime
        from formica.runtime.approvals import cast_vote, pending_approvals

        try:
            while not self._stop.is_set():
                runtime = get_runtime()
                waiting = [
                    approval
                    for approval, _ in pending_approvals(runtime.requests, ORG)
                    if approval.job_type == MANUAL_JOB_TYPE
                ]
                if not waiting:
                    time.sleep(0.02)
                    continue
                found = time.monotonic()
                self._stop.wait(self.after)
                self.waited = time.monotonic() - found
                started = time.perf_counter()
                cast_vote(runtime, ORG, waiting[0].request_id, MANUAL_TASK, voter="bench", approve=True)
                self.vote_seconds = time.perf_counter() - started
                return
        except BaseException as exc:  # reported by __exit__ on the benchmark's thread
            self.error = exc


def measure(wait_seconds: float) -> tuple[Counted, list[tuple[Counted, _Approver]], dict[str, float]]:
    """The plain job's counts; the MANUAL job's, approved at once and after ``wait_seconds``; and the
    local durations (seconds) of the Launch invocations that recorded the approvals."""
    timings = LocalRuns()
    approved: list[tuple[Counted, _Approver]] = []
    with _walk_host() as sfn, timed_lambdas(timings):
        plain = _run_job(sfn, PLAIN, "bench-unapproved", 201)
        timings.durations.clear()
        for serial, after in ((202, 0.0), (203, wait_seconds)):
            with _Approver(after) as approver:
                counted = _run_job(sfn, MANUAL, MANUAL_JOB_TYPE, serial)
            approved.append((counted, approver))
        durations = timings.median_durations()
    if LAUNCH_FUNCTION not in durations:
        raise BenchError("no Launch invocation was timed: the MANUAL task did not wait on its token")
    return plain, approved, durations


def approval_dollars(states: float, launch_seconds: float, vote_seconds: float) -> float:
    """$ of one approval: its state transitions, the Launch invocation that records it and the API
    invocation of the deciding vote (requests plus GB-seconds at the memory the CDK gives each)."""
    memory = cdk_memory_sizes()
    total = states * PRICE_PER_TRANSITION
    for function, seconds in ((LAUNCH_FUNCTION, launch_seconds), (API_FUNCTION, vote_seconds)):
        gb = memory.get(function, DEFAULT_MEMORY_MB) / 1024
        total += PRICE_PER_REQUEST + gb * billed_seconds(seconds) * PRICE_PER_GB_SECOND_ARM64
    return total


def run(quick: bool = False) -> list[Figure]:
    wait_seconds = QUICK_WAIT_SECONDS if quick else WAIT_SECONDS
    plain, approved, durations = measure(wait_seconds)
    (at_once, first), (later, second) = approved
    states = at_once.states - plain.states
    events = at_once.events - plain.events
    calls = at_once.invocations - plain.invocations
    launch = durations[LAUNCH_FUNCTION]
    vote = median([first.vote_seconds, second.vote_seconds])
    dollars = approval_dollars(states, launch, vote)
    return [
        Figure(
            BENCHMARK,
            "states one approval adds to a job",
            states,
            "states",
            "goal",
            GOAL,
            note=f"{events} history events; job of 2 SHELL tasks: {plain.states} states, with a MANUAL "
            f"task between them: {at_once.states}; the two: Route (Choice) and AwaitApproval",
        ),
        Figure(
            BENCHMARK,
            f"states of the same job, approved {second.waited:.1f} s later",
            later.states,
            "states",
            f"approved at once ({first.waited:.2f} s)",
            at_once.states,
            note=f"{later.events - plain.events} history events added (at once: {events}); the wait is "
            "a task token: no state, no event, no invocation while it lasts",
        ),
        Figure(
            BENCHMARK,
            "Lambda invocations one approval adds to the execution",
            calls,
            "calls",
            "-",
            None,
            note=f"approved {second.waited:.1f} s later: {later.invocations - plain.invocations}; Launch "
            "records the token and the pending approval, the vote that decides answers it with "
            "SendTaskSuccess (one API invocation per vote, outside the execution)",
        ),
        Figure(
            BENCHMARK,
            "$ per 1,000 approvals (one vote)",
            dollars * 1000,
            "$",
            "-",
            None,
            note=f"{states} transitions ${states * PRICE_PER_TRANSITION * 1000:.3f}, Lambda "
            f"${(dollars - states * PRICE_PER_TRANSITION) * 1000:.4f}: Launch {launch * 1000:.1f} ms "
            f"and the vote {vote * 1000:.1f} ms (local, median of 2) at the CDK's memory sizes; each "
            "further vote adds one API invocation; API Gateway requests are not priced",
        ),
    ]


if __name__ == "__main__":
    standalone(run, "States, Lambda calls and dollars one MANUAL approval adds to a job")
