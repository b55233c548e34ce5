"""API: requests per second and p50/p99 latency of submit and status on `formica dev`, on loopback.

``CLIENTS`` threads, each with its own keep-alive httpx client, send requests back to back for
``SECONDS`` per phase against a `formica dev` subprocess. Phases, in order:
- health: ``GET /api/health`` (public: the front door and the API Lambda, no authorizer, no
  DynamoDB): the floor every other figure is compared with;
- submit (scheduled): ``POST /api/jobs/requests`` with a far ``scheduled_at``, so the request is
  stored PENDING and no execution starts: the API, the authorizer and the DynamoDB writes;
- status: ``GET /api/jobs/requests/{id}`` over the requests just created;
- submit + start: ``POST /api/jobs/requests`` of a one-task no-op SHELL job, due now: the above
  plus StartExecution; first from one client, then from all, while the jobs already started run
  in the same server process.
The load generator and the server share the machine's CPUs: on 2 cores the figures are a floor.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import BenchError, Figure, percentile, standalone
from bench.devserver import DevProcess, dev_server, free_port, upload

BENCHMARK = "api"
CLIENTS = 8
SECONDS = 5.0
FAR_FUTURE = "2099-01-01T00:00:00Z"
NOOP_JOB = "job_type: bench-api-noop\ntasks:\n- task_type: only\n  method: SHELL\n  script:\n    - 'true'\n"

Call = Callable[[httpx.Client, int], httpx.Response]


@dataclass
class PhaseResult:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    clients: int = 0
    created: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)


def load(
    server: DevProcess, name: str, call: Call, *, clients: int, seconds: float, expect: int
) -> PhaseResult:
    """Run ``call`` from ``clients`` threads for ``seconds``; responses other than ``expect`` are errors."""
    result = PhaseResult(name, clients=clients)
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        latencies: list[float] = []
        created: list[str] = []
        errors = 0
        with server.client() as client:
            client.get("/api/health")  # open the keep-alive connection before the clock starts
            start_gate.wait()
            count = 0
            while time.perf_counter() < stop_at[0]:
                sent = time.perf_counter()
                try:
                    response = call(client, index * 1_000_000 + count)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)
                count += 1
                if response.status_code != expect:
                    errors += 1
                elif response.request.method == "POST":
                    created.append(str(response.json()["id"]))
        with lock:
            result.latencies += latencies
            result.created += created
            result.errors += errors

    threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    # The end is set before the gate opens: a worker must never see the 0.0 it starts with.
    stop_at[0] = time.perf_counter() + seconds
    start_gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    result.seconds = time.perf_counter() - began
    if not result.latencies:
        raise BenchError(f"{name}: no request completed")
    return result


def measure(clients: int = CLIENTS, seconds: float = SECONDS) -> list[PhaseResult]:
    """The four phases, in order, against one `formica dev` subprocess."""
    with dev_server() as server:
        with server.client() as client:
            upload(client, NOOP_JOB)

        def health(client: httpx.Client, _: int) -> httpx.Response:
            return client.get("/api/health")

        def submit_scheduled(client: httpx.Client, _: int) -> httpx.Response:
            body = {"job_type": "bench-api-noop", "scheduled_at": FAR_FUTURE}
            return client.post("/api/jobs/requests", json=body)

        baseline = load(server, "health", health, clients=clients, seconds=seconds, expect=200)
        submitted = load(
            server, "submit (scheduled)", submit_scheduled, clients=clients, seconds=seconds, expect=201
        )
        ids = submitted.created or ["missing"]

        def status(client: httpx.Client, number: int) -> httpx.Response:
            return client.get(f"/api/jobs/requests/{ids[number % len(ids)]}")

        def submit_now(client: httpx.Client, _: int) -> httpx.Response:
            return client.post("/api/jobs/requests", json={"job_type": "bench-api-noop"})

        statuses = load(server, "status", status, clients=clients, seconds=seconds, expect=200)
        alone = load(server, "submit + start, 1 client", submit_now, clients=1, seconds=seconds, expect=201)
        started = load(server, "submit + start", submit_now, clients=clients, seconds=seconds, expect=201)
        return [baseline, submitted, statuses, alone, started]


def phase_figures(phases: list[PhaseResult]) -> list[Figure]:
    health = phases[0]
    figures = []
    for phase in phases:
        other = phase is not health
        figures += [
            Figure(
                BENCHMARK,
                f"{phase.name}: throughput",
                phase.rps,
                "req/s",
                baseline="health" if other else "",
                baseline_value=health.rps if other else None,
                note=f"{phase.clients} clients x {phase.seconds:.1f} s, {len(phase.latencies)} requests, "
                f"{phase.errors} errors",
            ),
            Figure(
                BENCHMARK,
                f"{phase.name}: p50 / p99",
                phase.p50 * 1000,
                "ms",
                baseline="health p50" if other else "",
                baseline_value=health.p50 * 1000 if other else None,
                note=f"p99 {phase.p99 * 1000:.1f} ms"
                + (f" (health p99 {health.p99 * 1000:.1f} ms)" if other else ""),
            ),
        ]
    return figures


COULD_BE = {
    "submit (scheduled)": (
        3,
        "token, the definition's head (its version kept by the process), one PutItem",
    ),
    "status": (
        2,
        "token, then one Query on the request's partition (REQ#id holds the request and its tasks)",
    ),
    "submit + start": (
        8,
        "as submit, plus the slot transaction, the first decision's UpdateItem and BatchWriteItem "
        "(taken at the start since D13, no longer by Advance), StartExecution, one read to answer",
    ),
}
"""AWS calls each request could make (the design's minimum as we read it; bench/README.md says why)."""


def aws_calls_per_request() -> dict[str, Counter[str]]:
    """AWS operations one request of each kind makes, counted in-process (botocore before-call).

    Calls made by Lambda invocations (a started job's walk) are left out; the first decision a start
    takes (D13) is in, and so is the authorizer's token lookup (API Gateway caches it in AWS, for
    30 s per token). Each kind is sent twice and the second is counted: a warm process, whose
    definition versions (immutable) are already kept.
    """
    from formica.local.server import DevOptions, DevServer
    from formica.store.aws import get_client

    from bench.local_runs import FIRST_DECISION, LocalRuns, current_function, quiet_handlers, timed_lambdas

    counted: dict[str, Counter[str]] = {}
    active: list[Counter[str]] = []

    def before_call(model: Any, **_: Any) -> None:
        if active and current_function() in (None, FIRST_DECISION):
            active[-1][f"{model.service_model.service_name}.{model.name}"] += 1

    server = DevServer(DevOptions(port=free_port(), token="fmc_bench_" + "y" * 24))
    with quiet_handlers(), timed_lambdas(LocalRuns()), server:
        for service in ("dynamodb", "s3", "stepfunctions"):
            get_client(service).meta.events.register("before-call", before_call)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as client:
            upload(client, NOOP_JOB)
            requests: list[tuple[str, Callable[[], httpx.Response]]] = [
                (
                    "submit (scheduled)",
                    lambda: client.post(
                        "/api/jobs/requests", json={"job_type": "bench-api-noop", "scheduled_at": FAR_FUTURE}
                    ),
                ),
                ("status", lambda: client.get(f"/api/jobs/requests/{created[0]}")),
                (
                    "submit + start",
                    lambda: client.post("/api/jobs/requests", json={"job_type": "bench-api-noop"}),
                ),
            ]
            created: list[str] = []
            for name, send in requests:
                for _ in range(2):  # the second one is counted
                    active.append(Counter())
                    response = send()
                    counted[name] = active.pop()
                    if response.status_code not in (200, 201):
                        raise BenchError(f"{name} answered {response.status_code}: {response.text[:300]}")
                    if response.request.method == "POST":
                        created.append(str(response.json()["id"]))
    return counted


def calls_figures(counted: dict[str, Counter[str]]) -> list[Figure]:
    figures = []
    for name, operations in counted.items():
        could_be, why = COULD_BE.get(name, (None, ""))
        listing = ", ".join(f"{operation} {count}" for operation, count in sorted(operations.items()))
        figures.append(
            Figure(
                BENCHMARK,
                f"{name}: AWS calls per request",
                sum(operations.values()),
                "calls",
                baseline="could be" if could_be else "",
                baseline_value=could_be,
                note=f"{listing}; could be: {why}" if why else listing,
            )
        )
    return figures


def run(quick: bool = False) -> list[Figure]:
    clients, seconds = (4, 1.5) if quick else (CLIENTS, SECONDS)
    phases = measure(clients, seconds)
    figures = phase_figures(phases)
    return figures + calls_figures(aws_calls_per_request())


def main() -> None:
    standalone(run, __doc__ or BENCHMARK)


if __name__ == "__main__":
    main()
