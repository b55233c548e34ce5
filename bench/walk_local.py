"""Walk overhead locally: a job of N no-op SHELL tasks through `formica dev`, N = 1, 10, 100.

Each job is a chain of N tasks whose script is ``true``. Its time is the server's own
``ended_at - created_at`` (submit to final state, polling cost excluded). The bare cost is running
``sh -c true`` N times from this process in the same run. The figure is the overhead per task,
``(job time - bare time) / N``: what the walk (API submit, moto's state machine, Advance, the shell
task Lambda, DynamoDB and S3 writes, all local) adds to each task. A straight-line fit
``job time = fixed + per_task * N`` over the three sizes says how it grows: a flat per-task figure
means linear cost, a rising one means each task costs more in longer jobs.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.common import BenchError, Figure, median, standalone
from bench.devserver import StatusErrors, dev_server, submit, upload, wait_final

BENCHMARK = "walk (local)"
SIZES = (1, 10, 100)
QUICK_SIZES = (1, 10)


def chain_definition(tasks: int) -> str:
    """A job of ``tasks`` SHELL tasks in a chain, each running ``true``."""
    if tasks < 1:
        raise ValueError("a job has at least one task")
    lines = [f"job_type: bench-walk-{tasks}", "tasks:"]
    for index in range(tasks):
        lines += [f"- task_type: t{index:03d}", "  method: SHELL", "  script:", "    - 'true'"]
        if index + 1 < tasks:
            lines.append(f"  on_completed: t{index + 1:03d}")
    return "\n".join(lines) + "\n"


def bare_seconds(count: int) -> float:
    """Seconds to run ``sh -c true`` ``count`` times, one after the other."""
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run(["sh", "-c", "true"], check=True)
    return time.perf_counter() - started


def linear_fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through ``points``."""
    if len(points) < 2:
        raise ValueError("a line needs two points")
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        raise ValueError("the points share one x")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return mean_y - slope * mean_x, slope


def _server_seconds(status: dict[str, object]) -> float | None:
    created, ended = status.get("created_at"), status.get("ended_at")
    if not isinstance(created, str) or not isinstance(ended, str):
        return None
    return (datetime.fromisoformat(ended) - datetime.fromisoformat(created)).total_seconds()


@dataclass(frozen=True)
class WalkResult:
    tasks: int
    job_seconds: float
    bare_seconds: float
    runs: int
    label: str = ""

    @property
    def overhead_per_task(self) -> float:
        return (self.job_seconds - self.bare_seconds) / self.tasks


NOTES: list[str] = []
"""Anything the last run saw that the figures do not show (run.py prints and records these)."""


def _job(client: Any, size: int, runs: int, errors: StatusErrors, label: str = "") -> WalkResult:
    job_samples, bare_samples = [], []
    for _ in range(runs):
        started = time.perf_counter()
        request_id = submit(client, f"bench-walk-{size}")
        status = wait_final(client, request_id, timeout=60 + 3 * size, errors=errors)
        elapsed = time.perf_counter() - started
        if status["job_state"] != "COMPLETED":
            raise BenchError(f"bench-walk-{size} ended {status['job_state']}: {status}")
        job_samples.append(_server_seconds(status) or elapsed)
        bare_samples.append(bare_seconds(size))
    return WalkResult(size, median(job_samples), median(bare_samples), runs, label or f"N={size}")


def measure(sizes: Sequence[int] = SIZES, repeats: int = 3) -> tuple[list[WalkResult], WalkResult, float]:
    """(one result per size, the first size > 1 again at the end, server start-up seconds).

    Sizes of 100+ run once. The repeat at the end runs on a table that every earlier job has filled.
    """
    results = []
    errors = StatusErrors()
    with dev_server() as server, server.client() as client:
        for size in sizes:
            upload(client, chain_definition(size))
        # Warm-up: the first job pays for lazy imports in the server (handlers, runners).
        wait_final(client, submit(client, "bench-walk-1"), timeout=120, errors=errors)
        for size in sizes:
            results.append(_job(client, size, 1 if size >= 100 else repeats, errors))
        again_size = next((size for size in sizes if size > 1), sizes[-1])
        again = _job(client, again_size, repeats, errors, f"N={again_size} again, after N={sizes[-1]}")
        NOTES.clear()
        if errors.answers:
            NOTES.append(
                f"walk: {len(errors.answers)} status poll(s) of `formica dev` answered an error and were "
                f"polled past: {errors.answers[0]}"
            )
        return results, again, server.startup_seconds


def moto_transact_ms(item_counts: Sequence[int] = (100, 3000), repeats: int = 5) -> list[tuple[int, float]]:
    """(items in the table, ms per 2-action TransactWriteItems) under an in-process moto.

    moto backs a transaction up by deep-copying the whole table, so its cost grows with the table;
    DynamoDB's does not. A walk that committed its steps with transactions slowed down as a
    `formica dev` process aged; this row keeps the reason measured.
    """
    import boto3
    from moto import mock_aws

    measured = []
    with mock_aws():
        client: Any = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106
        )
        client.create_table(
            TableName="bench",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        stored = 0
        for count in item_counts:
            while stored < count:
                item = {
                    "pk": {"S": f"REQ#{stored // 10}"},
                    "sk": {"S": f"TASK#{stored:04d}"},
                    "d": {"S": "x" * 500},
                }
                client.put_item(TableName="bench", Item=item)
                stored += 1
            samples = []
            for index in range(repeats):
                actions = [
                    {"Put": {"TableName": "bench", "Item": {"pk": {"S": key}, "sk": {"S": str(index)}}}}
                    for key in ("A", "B")
                ]
                started = time.perf_counter()
                client.transact_write_items(TransactItems=actions)
                samples.append(time.perf_counter() - started)
            measured.append((count, median(samples) * 1000))
    return measured


def run(quick: bool = False) -> list[Figure]:
    results, again, startup = measure(QUICK_SIZES if quick else SIZES, repeats=1 if quick else 3)
    figures = [
        Figure(
            BENCHMARK,
            f"{result.label}: overhead per task",
            result.overhead_per_task,
            "s/task",
            baseline="sh -c true",
            baseline_value=result.bare_seconds / result.tasks,
            note=(
                f"job {result.job_seconds:.2f} s (submit to end, server clock), "
                f"bare {result.bare_seconds:.3f} s; median of {result.runs}"
            ),
        )
        for result in [*results, again]
    ]
    fixed, per_task = linear_fit([(r.tasks, r.job_seconds - r.bare_seconds) for r in results])
    reference = results[-2] if len(results) > 1 else results[0]
    figures.append(
        Figure(
            BENCHMARK,
            f"growth: marginal cost per task (N={results[0].tasks}..{results[-1].tasks})",
            per_task,
            "s/task",
            baseline=f"overhead per task at N={reference.tasks}",
            baseline_value=reference.overhead_per_task,
            note=(
                f"slope of (job - bare) time over N, fixed part {fixed:.2f} s per job; "
                "ratio ~1 = linear, above 1 = later tasks cost more"
            ),
        )
    )
    (small, small_ms), (large, large_ms) = moto_transact_ms()
    figures.append(
        Figure(
            BENCHMARK,
            f"moto TransactWriteItems, table of {large:,} items",
            large_ms,
            "ms",
            baseline=f"same, table of {small} items",
            baseline_value=small_ms,
            note=(
                "moto deep-copies the table per transaction (DynamoDB does not): why a walk step "
                "commits with one conditional UpdateItem, not TransactWriteItems"
            ),
        )
    )
    figures.append(
        Figure(BENCHMARK, "formica dev start-up", startup, "s", note="process start to /api/health = 200")
    )
    return figures


def main() -> None:
    standalone(run, __doc__ or BENCHMARK)


if __name__ == "__main__":
    main()
