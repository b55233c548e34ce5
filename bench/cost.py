"""Cost: $ per 1,000 jobs at Standard-workflow prices plus Lambda, Formica's walk against the naive loop.

Inputs, each measured in this run unless said otherwise:
- Formica's states entered per task attempt (HTTP, shell, container), per poll, at a job's start and
  end, Lambda invocations and their local durations: jobs of 1 and 3 tasks of each kind and a poller
  run by the real ASL in an in-process `formica dev` (bench/local_runs.py), counted from moto's
  execution histories, and checked against whole jobs (the seed's sensor job, a 10-task job);
- the naive loop's states and invocations: bench/naive_loop.py under moto (same counting);
- Lambda memory sizes: read from the CDK constructs (cdk/constructs/*.py, ``memory_size=``);
- prices: us-east-1 list prices from the library's one table (formica.engine.pricing, dated):
  state transitions, arm64 Lambda GB-seconds and requests. Billed duration is rounded up to the
  millisecond.
Jobs priced: the seed's sensor job as written (one poll: 404 at 0 s, 200 after its 5 s delay, then
two container tasks complete), the same sensor polling ``SENSOR_POLLS`` times (assumed), and a
10-task SHELL job. Containers' own Fargate
time is the same in both designs and left out; so are DynamoDB and S3 requests.
The naive loop's Lambdas are given Formica's measured durations: Run = the task Lambda, Prepare and
Route = one Advance each (they load the request and commit, as Advance does).

The same runs are also priced as Formica counts them while they run (each request's ``cost``, read
from the API): the ``counted:`` rows compare the counted transitions with the histories' states, and
the counted dollars (DynamoDB and S3 requests included; Lambda time at the local default memory)
with this module's estimate.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formica.engine.pricing import PRICES, billed_ms

from bench.common import REPO, Figure, standalone

BENCHMARK = "cost"
PRICE_REGION = "us-east-1"
PRICE_PER_TRANSITION = PRICES[PRICE_REGION].state_transition
PRICE_PER_GB_SECOND_ARM64 = PRICES[PRICE_REGION].lambda_gb_second
PRICE_PER_REQUEST = PRICES[PRICE_REGION].lambda_request
SENSOR_POLLS = 10
"""Assumed polls of the sensor's first task before its URL answers (the seed as written polls once:
404 at t=0, 200 after its 5 s delay; a real sensor waits longer)."""
TEN_TASKS = 10
DEFAULT_MEMORY_MB = 256
HISTORY_LIMIT = 25_000
"""Step Functions Standard's hard limit on events per execution."""

KINDS = ("http", "shell", "container")
FIRST_DECISION = "first_decision"
"""Advance's start logic, run by the starter (the API's submit) since D13: priced as time added to
the API function (at its memory), not as an invocation."""
ADDED_TIME = frozenset({FIRST_DECISION})
"""Work priced as GB-seconds of a function invoked anyway: no request of its own."""


@dataclass(frozen=True)
class Invocation:
    """Lambda invocations of one function, per unit (per attempt, per job start, ...)."""

    function: str
    count: float = 1.0


@dataclass(frozen=True)
class DesignCounts:
    """States entered and Lambdas invoked by a design, per job start/end, attempt kind and poll.

    ``per_attempt[kind]`` covers one attempt of that kind that is not a poll; a poll is one attempt
    plus ``per_poll_extra`` (its Wait). ``events_per_poll`` is the history events one poll adds.
    """

    label: str
    start_states: float
    end_states: float
    per_attempt: Mapping[str, float]
    per_poll_extra: float
    events_per_poll: float
    start_invocations: tuple[Invocation, ...] = ()
    attempt_invocations: Mapping[str, tuple[Invocation, ...]] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class JobProfile:
    """What one job does: its attempts by kind, and how many of them were polls."""

    name: str
    attempts: Mapping[str, int]
    polls: int = 0
    poll_kind: str = "http"


def sensor_job(polls: int = SENSOR_POLLS) -> JobProfile:
    """The seed's sensor job on its happy path: ``polls`` 404s, a 200, then two containers complete."""
    return JobProfile("sensor job", {"http": polls + 1, "container": 2}, polls=polls)


def chain_job(tasks: int = TEN_TASKS, kind: str = "shell") -> JobProfile:
    return JobProfile(f"{tasks}-task {kind} job", {kind: tasks})


def transitions(design: DesignCounts, job: JobProfile) -> float:
    """State transitions (states entered) of one job: start, every attempt, every poll's wait, end."""
    attempts = sum(design.per_attempt[kind] * count for kind, count in job.attempts.items())
    return design.start_states + attempts + design.per_poll_extra * job.polls + design.end_states


def invocations(design: DesignCounts, job: JobProfile) -> dict[str, float]:
    """Lambda invocations of one job, by function."""
    totals: dict[str, float] = {}
    for invocation in design.start_invocations:
        totals[invocation.function] = totals.get(invocation.function, 0.0) + invocation.count
    for kind, count in job.attempts.items():
        for invocation in design.attempt_invocations.get(kind, ()):
            totals[invocation.function] = totals.get(invocation.function, 0.0) + invocation.count * count
    return totals


def billed_seconds(seconds: float) -> float:
    """Lambda bills duration rounded up to the millisecond."""
    return billed_ms(seconds) / 1000


def lambda_cost(
    calls: Mapping[str, float], durations: Mapping[str, float], memory_mb: Mapping[str, int]
) -> float:
    """$ of ``calls`` (function -> invocations): requests plus GB-seconds at arm64 prices."""
    total = 0.0
    for function, count in calls.items():
        gb = memory_mb.get(function, DEFAULT_MEMORY_MB) / 1024
        request = 0.0 if function in ADDED_TIME else PRICE_PER_REQUEST
        total += count * (request + gb * billed_seconds(durations[function]) * PRICE_PER_GB_SECOND_ARM64)
    return total


@dataclass(frozen=True)
class JobCost:
    transitions: float
    invocations: float
    states_dollars: float
    lambda_dollars: float

    @property
    def dollars(self) -> float:
        return self.states_dollars + self.lambda_dollars

    @property
    def per_thousand(self) -> float:
        return self.dollars * 1000


def job_cost(
    design: DesignCounts, job: JobProfile, durations: Mapping[str, float], memory_mb: Mapping[str, int]
) -> JobCost:
    count = transitions(design, job)
    calls = invocations(design, job)
    return JobCost(
        transitions=count,
        invocations=sum(value for function, value in calls.items() if function not in ADDED_TIME),
        states_dollars=count * PRICE_PER_TRANSITION,
        lambda_dollars=lambda_cost(calls, durations, memory_mb),
    )


def polls_per_execution(budget_events: int, events_per_poll: float, reserve_events: float = 0.0) -> int:
    """How many polls fit in one execution before continue-as-new, given the walk's event budget."""
    if events_per_poll <= 0:
        raise ValueError("a poll writes at least one event")
    return int((budget_events - reserve_events) // events_per_poll)


_FUNCTION_CALL = re.compile(r"FormicaFunction\((.*?)\n {8}\)", re.DOTALL)
_FOLDER = re.compile(r'folder="([a-z_]+)"')
_MEMORY = re.compile(r"memory_size=(\d+)")
_DEFAULT_MEMORY = re.compile(r"memory_size: int = (\d+)")


def cdk_memory_sizes(constructs: Path = REPO / "cdk" / "constructs") -> dict[str, int]:
    """functions/ folder -> memory_size (MB) as the CDK constructs declare them (the default when unset)."""
    default = DEFAULT_MEMORY_MB
    lambdas = constructs / "lambdas.py"
    if lambdas.is_file() and (found := _DEFAULT_MEMORY.search(lambdas.read_text(encoding="utf-8"))):
        default = int(found.group(1))
    sizes: dict[str, int] = {}
    for path in sorted(constructs.glob("*.py")):
        for call in _FUNCTION_CALL.finditer(path.read_text(encoding="utf-8")):
            folder = _FOLDER.search(call.group(1))
            if folder:
                memory = _MEMORY.search(call.group(1))
                sizes[folder.group(1)] = int(memory.group(1)) if memory else default
    return sizes


# -- the naive loop, measured under moto --------------------------------------------------------


def naive_counts() -> DesignCounts:
    """The naive loop's counts, from three executions: 1 task, 3 tasks, 1 task polling 4 times."""
    from bench.naive_loop import NAIVE_LAMBDAS_PER_ATTEMPT, attempt_script, run_naive

    polls = 4
    one, three, polling = run_naive([attempt_script(0, 1), attempt_script(0, 3), attempt_script(polls, 1)])
    per_attempt = (three.states_entered - one.states_entered) / 2
    per_poll = (polling.states_entered - one.states_entered) / polls
    fixed = one.states_entered - per_attempt
    per_kind = dict.fromkeys(KINDS, per_attempt)
    calls = {
        kind: (
            Invocation("naive_prepare"),
            Invocation("naive_run_" + kind),
            Invocation("naive_route"),
            *((Invocation("container_events"),) if kind == "container" else ()),
        )
        for kind in KINDS
    }
    if (three.lambda_invocations - one.lambda_invocations) / 2 != NAIVE_LAMBDAS_PER_ATTEMPT:
        raise RuntimeError("the naive loop's history does not show 3 Lambda invocations per attempt")
    return DesignCounts(
        label="naive loop",
        start_states=0.0,
        end_states=fixed,
        per_attempt=per_kind,
        per_poll_extra=per_poll - per_attempt,
        events_per_poll=(polling.events - one.events) / polls,
        attempt_invocations=calls,
        source="bench/naive_loop.py executed by moto",
    )


def naive_durations(formica: Mapping[str, float]) -> dict[str, float]:
    """The naive loop's Lambdas given Formica's measured durations (see the module's docstring).

    Prepare and Route load the request and commit as Advance does; Advance runs only on Catch paths
    since D13, so its start logic (``first_decision``, timed in the starter) stands in for it."""
    advance = formica.get("advance", formica[FIRST_DECISION])
    return {
        "naive_prepare": advance,
        "naive_route": advance,
        "naive_run_http": formica["http_task"],
        "naive_run_shell": formica["shell_task"],
        "naive_run_container": formica["launch"],
        "container_events": formica.get("container_events", advance),
    }


def naive_memory(memory: Mapping[str, int]) -> dict[str, int]:
    return {
        "naive_prepare": memory.get("advance", DEFAULT_MEMORY_MB),
        "naive_route": memory.get("advance", DEFAULT_MEMORY_MB),
        "naive_run_http": memory.get("http_task", DEFAULT_MEMORY_MB),
        # The script's memory: the sandbox's since SHELL scripts run there (D18).
        "naive_run_shell": memory.get("shell_sandbox", memory.get("shell_task", DEFAULT_MEMORY_MB)),
        "naive_run_container": memory.get("launch", DEFAULT_MEMORY_MB),
        "container_events": memory.get("container_events", DEFAULT_MEMORY_MB),
    }


# -- Formica's walk, measured under moto through an in-process `formica dev` ---------------------

COUNT_JOBS = ("shell", "http", "container")


def count_definitions(base_url: str) -> dict[str, str]:
    """The jobs whose histories give Formica's counts: 1 and 3 tasks of each kind, and a poller."""
    from bench.local_runs import chain, polling, sensor_definition

    definitions = {
        "sensor-job": sensor_definition(base_url)[0],
        "ten-shell": chain("ten-shell", "shell", 10, base_url),
    }
    for kind in COUNT_JOBS:
        for tasks in (1, 3):
            definitions[f"count-{kind}-{tasks}"] = chain(f"count-{kind}-{tasks}", kind, tasks, base_url)
    definitions["count-poll"] = polling("count-poll", base_url)
    return definitions


def formica_counts(jobs: Mapping[str, Any]) -> DesignCounts:
    """Formica's counts from the histories of ``count_definitions``' jobs (``local_runs.JobRun``)."""

    def states(name: str) -> float:
        return float(jobs[name].history.states_entered)

    def calls(name: str) -> float:
        return float(jobs[name].history.lambda_invocations)

    per_attempt = {kind: (states(f"count-{kind}-3") - states(f"count-{kind}-1")) / 2 for kind in COUNT_JOBS}
    calls_per_attempt = {
        kind: (calls(f"count-{kind}-3") - calls(f"count-{kind}-1")) / 2 for kind in COUNT_JOBS
    }
    fixed = states("count-shell-1") - per_attempt["shell"]
    start_calls = calls("count-shell-1") - calls_per_attempt["shell"]  # Lambdas the execution invokes
    poller = jobs["count-poll"]
    polls = max(1, sum(poller.attempts.values()) - 1)
    per_poll = (states("count-poll") - states("count-http-1")) / polls
    events_per_poll = (poller.history.events - jobs["count-http-1"].history.events) / polls
    container_calls = calls_per_attempt["container"]
    return DesignCounts(
        label="Formica",
        start_states=fixed,
        end_states=0.0,
        per_attempt=per_attempt,
        per_poll_extra=per_poll - per_attempt["http"],
        events_per_poll=events_per_poll,
        start_invocations=(Invocation("advance", start_calls), Invocation(FIRST_DECISION)),
        attempt_invocations={
            "http": (Invocation("http_task", calls_per_attempt["http"]),),
            # In AWS the shell-task function hands the script to the sandbox and waits (D18).
            "shell": (
                Invocation("shell_task", calls_per_attempt["shell"]),
                Invocation("shell_sandbox", calls_per_attempt["shell"]),
            ),
            # Launch (its callback carries the next decision: no Advance, D13); in AWS also
            # container_events (EventBridge, outside the state machine), which commits the step and
            # which the local runner does not need.
            "container": (
                Invocation("launch"),
                Invocation("advance", container_calls - 1),
                Invocation("container_events"),
            ),
        },
        source="histories of jobs run by the real ASL in an in-process `formica dev` (bench/local_runs.py)",
    )


def history_budget() -> tuple[int, float, str]:
    """(events budget per execution, events reserved, where from): the walk's own constants."""
    try:
        walk = importlib.import_module("formica.engine.walk")
    except ImportError:
        return HISTORY_LIMIT, 0.0, "no formica.engine.walk: the hard limit"
    budget = int(getattr(walk, "HISTORY_EVENT_BUDGET", HISTORY_LIMIT))
    reserve = float(getattr(walk, "EXECUTION_START_EVENTS", 0)) + float(getattr(walk, "_END_RESERVE", 0))
    return budget, reserve, "formica.engine.walk.HISTORY_EVENT_BUDGET"


NOTES: list[str] = []


def _cost_figures(
    formica: DesignCounts,
    naive: DesignCounts,
    durations: Mapping[str, float],
    memory: Mapping[str, int],
) -> list[Figure]:
    naive_time = naive_durations(durations)
    naive_mem = naive_memory(memory)
    figures = []
    for job in (sensor_job(1), sensor_job(SENSOR_POLLS), chain_job(TEN_TASKS, "shell")):
        ours = job_cost(formica, job, durations, memory)
        theirs = job_cost(naive, job, naive_time, naive_mem)
        label = job.name if job.polls != 1 else "sensor job as written"
        polls = f" ({job.polls} poll{'s' if job.polls != 1 else ''})" if job.polls else ""
        figures.append(
            Figure(
                BENCHMARK,
                f"$ per 1,000 jobs: {label}{polls}",
                ours.per_thousand,
                "$",
                baseline="naive loop",
                baseline_value=theirs.per_thousand,
                note=(
                    f"{ours.transitions:.0f} transitions (naive {theirs.transitions:.0f}), "
                    f"{ours.invocations:.0f} Lambda calls (naive {theirs.invocations:.0f}); "
                    f"states ${ours.states_dollars * 1000:.3f} + Lambda "
                    f"${ours.lambda_dollars * 1000:.3f} per 1,000"
                ),
            )
        )
    return figures


def run(quick: bool = False) -> list[Figure]:
    from bench.local_runs import http_stub, run_jobs

    with http_stub() as base_url:
        runs = run_jobs(count_definitions(base_url))
    failed = [name for name, job in runs.jobs.items() if job.state != "COMPLETED"]
    if failed:
        raise RuntimeError(f"jobs did not complete: {failed}")
    formica = formica_counts(runs.jobs)
    naive = naive_counts()
    durations = runs.median_durations()
    durations.setdefault("container_events", durations.get("launch", 0.05))
    durations.setdefault("advance", durations[FIRST_DECISION])  # invoked 0 times on these paths
    # Locally the script runs inside shell_task; in AWS the sandbox runs it while shell_task waits,
    # so both are billed about that long (bench/sandbox.py measures the sandbox's own overhead).
    durations.setdefault("shell_sandbox", durations["shell_task"])
    memory = cdk_memory_sizes()
    memory.setdefault(FIRST_DECISION, memory.get("api", DEFAULT_MEMORY_MB))
    budget, reserve, budget_source = history_budget()
    NOTES.clear()
    NOTES.append(
        "cost: Formica's states per attempt are counted from the histories of the jobs bench/local_runs.py "
        "runs (1 and 3 tasks of each kind, a poller); the states rows of bench/states_per_attempt.py, when "
        "present, count them on their own"
    )
    figures = [
        Figure(
            BENCHMARK,
            f"states per {kind} attempt",
            formica.per_attempt[kind],
            "states",
            baseline="naive loop",
            baseline_value=naive.per_attempt[kind],
            note="goal: at most 3",
        )
        for kind in KINDS
    ]
    figures += [
        Figure(
            BENCHMARK,
            "states per poll",
            formica.per_attempt["http"] + formica.per_poll_extra,
            "states",
            baseline="naive loop",
            baseline_value=naive.per_attempt["http"] + naive.per_poll_extra,
            note="an HTTP attempt that answers EXECUTING, plus its Wait; goal: at most 3",
        ),
        Figure(
            BENCHMARK,
            "history events per poll",
            formica.events_per_poll,
            "events",
            baseline="naive loop",
            baseline_value=naive.events_per_poll,
        ),
        Figure(
            BENCHMARK,
            "polls per execution before continue-as-new",
            polls_per_execution(budget, formica.events_per_poll, reserve),
            "polls",
            baseline="naive loop, to the 25,000 hard limit",
            baseline_value=polls_per_execution(HISTORY_LIMIT, naive.events_per_poll),
            note=(
                f"budget {budget:,} events ({budget_source}), {reserve:.0f} reserved; the naive loop has no "
                "continue-as-new: its execution fails there"
            ),
        ),
    ]
    for function in (FIRST_DECISION, "advance", "http_task", "shell_task", "launch"):
        if runs.durations.get(function):
            figures.append(
                Figure(
                    BENCHMARK,
                    f"{function} duration (local)",
                    durations[function] * 1000,
                    "ms",
                    note=(
                        f"median of {len(runs.durations[function])} in-process calls; priced at "
                        f"{memory.get(function, DEFAULT_MEMORY_MB)} MB"
                    ),
                )
            )
    for function in (FIRST_DECISION, "advance", "http_task", "shell_task", "launch"):
        if runs.calls.get(function):
            operations = ", ".join(f"{name} {count}" for name, count in sorted(runs.calls[function].items()))
            figures.append(
                Figure(
                    BENCHMARK,
                    f"{function}: AWS calls per invocation",
                    runs.calls_per_invocation(function),
                    "calls",
                    note=f"all invocations: {operations} (DynamoDB and S3 requests are not priced here)",
                )
            )
    figures += model_checks(formica, runs.jobs)
    figures += _cost_figures(formica, naive, durations, memory)
    figures += counted_figures(formica, runs.jobs, durations, memory)
    return figures


def counted_figures(
    formica: DesignCounts, jobs: Mapping[str, Any], durations: Mapping[str, float], memory: Mapping[str, int]
) -> list[Figure]:
    """What Formica counted for the whole jobs while they ran (their ``cost``), against the histories'
    states and this module's estimate of the same job."""
    figures = []
    for name, label in (("sensor-job", "sensor job as run"), ("ten-shell", "10-task shell job")):
        run = jobs[name]
        cost = run.cost
        if not cost:
            continue
        profile = run_profile(name, run)
        estimate = job_cost(formica, profile, durations, memory)
        dollars = cost["dollars"]
        figures.append(
            Figure(
                BENCHMARK,
                f"counted: {label} transitions",
                cost["transitions"],
                "states",
                baseline="states entered in its histories",
                baseline_value=run.history.states_entered,
            )
        )
        figures.append(
            Figure(
                BENCHMARK,
                f"counted: {label}, $ per 1,000",
                dollars["total"] * 1000,
                "$",
                baseline="this module's estimate",
                baseline_value=estimate.per_thousand,
                note=(
                    f"transitions ${dollars['transitions'] * 1000:.3f}, "
                    f"Lambda ${dollars['lambdas'] * 1000:.4f} "
                    f"({cost['lambda_invocations']} calls, {cost['lambda_gb_seconds']:.4f} GB-s), DynamoDB "
                    f"${dollars['dynamodb'] * 1000:.4f} ({cost['dynamodb_read_units']} read, "
                    f"{cost['dynamodb_write_units']} write units), S3 ${dollars['s3'] * 1000:.4f} "
                    f"({cost['s3_write_requests']} PUT, {cost['s3_read_requests']} GET) per 1,000; "
                    "the estimate leaves DynamoDB and S3 out"
                ),
            )
        )
    return figures


def run_profile(name: str, run: Any) -> JobProfile:
    """The profile of a whole job as it ran: the sensor job's first task polled, the rest containers;
    the 10-task job's attempts, all SHELL."""
    if name == "sensor-job":
        first = run.attempts.get("first", 1)
        others = sum(run.attempts.values()) - first
        return JobProfile(name, {"http": first, "container": others}, polls=first - 1)
    return chain_job(sum(run.attempts.values()), "shell")


def model_checks(formica: DesignCounts, jobs: Mapping[str, Any]) -> list[Figure]:
    """The per-attempt model against whole jobs counted in the same run (ratio 1.00x: the model holds)."""
    figures = []
    for name, label in (("sensor-job", "sensor job"), ("ten-shell", "10-task shell job")):
        run = jobs[name]
        profile = run_profile(name, run)
        figures.append(
            Figure(
                BENCHMARK,
                f"check: {label} states, counted",
                run.history.states_entered,
                "states",
                baseline="per-attempt model",
                baseline_value=transitions(formica, profile),
                note=(
                    f"attempts {dict(run.attempts)}, {run.executions} execution(s), "
                    f"{run.history.events} events"
                ),
            )
        )
    return figures


def main() -> None:
    standalone(run, __doc__ or BENCHMARK)


if __name__ == "__main__":
    main()
