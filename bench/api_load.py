"""API: requests per second and p50/p99 latency of submit and status on `formica dev`, on loopback.

``CLIENTS`` threads, each with its own keep-alive httpx client, send requests back to back for
``SECONDS`` per phase against a `formica dev` subprocess. Phases, in order:
- health: ``GET /api/health`` (public: the front door and the API Lambda, no authorizer, no
  DynamoDB): the floor every other figure is compared with;
- submit (scheduled): ``POST /api/jobs/requests`` with a far ``scheduled_at``, so the request is
  stored PENDING and no execution starts: the API, the authorizer and the DynamoDB writes;
- status: ``GET /api/jobs/requests/{id}`` over the requests just created;
- submit + start: ``POST /api/jobs/requests`` of a one-task no-op SHELL job, due now: the above
  plus StartExecution, while the jobs already started run in the same server process.
The load generator and the server share the machine's CPUs: on 2 cores the figures are a floor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from bench.common import BenchError, Figure, percentile, standalone
from bench.devserver import DevProcess, dev_server, upload

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
    result = PhaseResult(name)
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
    start_gate.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for thread in threads:
        thread.join(timeout=seconds + 120)
    result.seconds = time.perf_counter() - began
    if not result.latencies:
        raise BenchError(f"{name}: no request completed")
    return result


def measure(
    clients: int = CLIENTS,
    seconds: float = SECONDS,
    *,
    module: str = "formica.local.cli_dev",
    start: bool = True,
) -> list[PhaseResult]:
    """The phases against `formica dev` run as ``python -m module``; ``start=False`` skips submit + start."""
    with dev_server(module) as server:
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
        if not start:
            return [baseline, submitted, statuses]
        started = load(server, "submit + start", submit_now, clients=clients, seconds=seconds, expect=201)
        return [baseline, submitted, statuses, started]


def nagle_is_on() -> bool:
    """True while the front door leaves Nagle's algorithm on (the 'could be' run is then worth it)."""
    from formica.local.front_door import _GatewayRequestHandler

    return not getattr(_GatewayRequestHandler, "disable_nagle_algorithm", False)


def phase_figures(phases: list[PhaseResult], load_note: str) -> list[Figure]:
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
                note=f"{load_note}, {len(phase.latencies)} requests, {phase.errors} errors",
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


def could_be_figures(now: list[PhaseResult], better: list[PhaseResult]) -> list[Figure]:
    """The same phases with TCP_NODELAY on the front door, against the figures as they are."""
    figures = []
    for current, improved in zip(now, better, strict=False):
        figures += [
            Figure(
                BENCHMARK,
                f"could be, TCP_NODELAY: {improved.name} throughput",
                improved.rps,
                "req/s",
                baseline="as is",
                baseline_value=current.rps,
                note="front door with disable_nagle_algorithm = True (bench/nodelay_dev.py)",
            ),
            Figure(
                BENCHMARK,
                f"could be, TCP_NODELAY: {improved.name} p50",
                improved.p50 * 1000,
                "ms",
                baseline="as is",
                baseline_value=current.p50 * 1000,
                note=f"p99 {improved.p99 * 1000:.1f} ms (as is {current.p99 * 1000:.1f} ms)",
            ),
        ]
    return figures


def run(quick: bool = False) -> list[Figure]:
    clients, seconds = (4, 1.5) if quick else (CLIENTS, SECONDS)
    phases = measure(clients, seconds)
    figures = phase_figures(phases, f"{clients} clients x {seconds:g} s")
    if nagle_is_on():
        better = measure(clients, seconds, module="bench.nodelay_dev", start=False)
        figures += could_be_figures(phases, better)
    return figures


def main() -> None:
    standalone(run, __doc__ or BENCHMARK)


if __name__ == "__main__":
    main()
