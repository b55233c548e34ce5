"""``formica worker --tags web,js``: attach this machine to the organisation's worker pool.

The reference worker for WEBSOCKET tasks (formicary's ants): it polls the API for an attempt its
tags cover, runs the task's script on this host as the SHELL sandbox would (the same code:
``runners.sandbox.run_sandboxed``: dependencies downloaded and artifacts uploaded through the
attempt's capability, exchanged at the API's grants route), heartbeats while it runs, and reports
the outcome. It needs a token of the organisation with the ``worker`` scope and no AWS credentials.
Scripts run as the user who started the worker: attach only machines meant to run your jobs.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

from formica.cli.client import ClientConfig, FormicaApiError, FormicaClient, FormicaClientError

EXIT_OK = 0
EXIT_FAILED = 1
CONFLICT = 409


def register(subparsers: Any) -> None:
    """Add ``formica worker`` to the ``formica`` parser's subparsers."""
    worker = subparsers.add_parser(
        "worker", help="run WEBSOCKET tasks of your organisation on this machine (a worker pool member)"
    )
    worker.add_argument(
        "--tags", required=True, help="the pools this worker serves, comma-separated (web,js)"
    )
    worker.add_argument("--server", default=None, help="API base URL (default: $FORMICA_SERVER)")
    worker.add_argument(
        "--token", default=None, help="a token with the worker scope (default: $FORMICA_TOKEN)"
    )
    worker.add_argument("--poll-interval", type=float, default=1.0, help="seconds between empty polls")
    worker.add_argument("--max-tasks", type=int, default=0, help="stop after this many tasks (0: never)")
    worker.add_argument("--work-dir", type=Path, default=None, help="where attempts' working directories go")
    worker.set_defaults(handler=cmd_worker)


class _Heartbeat(threading.Thread):
    """Extends the lease every ``interval`` seconds until stopped; ``lost`` when the API says 409."""

    def __init__(self, client: FormicaClient, lease: str, interval: float) -> None:
        super().__init__(name="formica-worker-heartbeat", daemon=True)
        self.client, self.lease, self.interval = client, lease, max(interval, 0.2)
        self.stopped = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.client.worker_heartbeat(self.lease)
            except FormicaApiError as exc:
                if exc.status == CONFLICT:
                    self.lost.set()
                    return
            except FormicaClientError:
                continue  # a blip: the next beat may get through before the lease lapses


def run_one(client: FormicaClient, leased: dict[str, Any], *, work_root: Path | None = None) -> str:
    """Run one leased attempt and report it; returns what happened, for the worker's output."""
    # The sandbox runner brings httpx and the shell runner: loaded when there is work.
    from formica.runners.sandbox import SandboxRequest, run_sandboxed  # noqa: PLC0415

    lease = str(leased["lease"])
    attempt = SandboxRequest.model_validate(leased["attempt"])
    beat = _Heartbeat(client, lease, float(leased.get("heartbeat_seconds") or 20))
    beat.start()
    try:
        outcome = run_sandboxed(attempt, work_root=work_root)
    finally:
        beat.stopped.set()
    name = f"{attempt.context.request_id} {attempt.context.task_type}"
    if beat.lost.is_set():
        return f"{name}: lease lost while running (another worker has the task); not reported"
    try:
        client.worker_report(lease, outcome.model_dump(mode="json"))
    except FormicaApiError as exc:
        return f"{name}: report refused: {exc}"
    result = outcome.error_code or f"exit code {outcome.exit_code}"
    return f"{name}: {result}"


def cmd_worker(args: argparse.Namespace) -> int:
    """Poll, run and report until interrupted (or ``--max-tasks``)."""
    tags = [tag.strip() for tag in str(args.tags).split(",") if tag.strip()]
    try:
        config = ClientConfig.from_environment(args.server, args.token)
    except FormicaClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    done = 0
    print(f"worker: serving tags {','.join(tags)} at {config.server}", flush=True)
    with FormicaClient(config) as client:
        try:
            while args.max_tasks <= 0 or done < args.max_tasks:
                try:
                    leased = client.worker_poll(tags)
                except FormicaApiError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return EXIT_FAILED
                except FormicaClientError as exc:
                    print(f"warning: {exc}", file=sys.stderr)
                    time.sleep(args.poll_interval)
                    continue
                if not leased.get("lease"):
                    time.sleep(args.poll_interval)
                    continue
                print(run_one(client, leased, work_root=args.work_dir), flush=True)
                done += 1
        except KeyboardInterrupt:
            print("worker: stopped", file=sys.stderr)
    return EXIT_OK
