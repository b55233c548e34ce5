"""`formica dev`: start the local server and keep it up until Ctrl-C or SIGTERM.

Also runnable on its own: ``python -m formica.cli.dev --port 8080``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TextIO

from formica.local.server import DEFAULT_ORG, DevOptions, DevServer, DevServerError


def add_dev_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="API port (default: 8080; 0 picks a free one)")
    parser.add_argument(
        "--token", default=None, help="use this text as the ready Bearer token (16+ characters)"
    )
    parser.add_argument(
        "--org", default=DEFAULT_ORG, help=f"organisation of that token (default: {DEFAULT_ORG})"
    )
    parser.add_argument(
        "--container-runtime",
        choices=("auto", "docker", "host"),
        default="auto",
        help="container tasks: Docker, the host shell, or Docker when an engine answers (default: auto)",
    )


def register(subparsers: Any) -> None:
    """Add the ``dev`` subcommand to the ``formica`` parser's subparsers."""
    parser = subparsers.add_parser(
        "dev",
        help="run Formica locally: moto, the state machine and the API in one process",
        description="Run Formica on this machine with no AWS account. Data lives as long as the process.",
    )
    add_dev_arguments(parser)
    parser.set_defaults(func=run_dev, handler=run_dev)


def banner(server: DevServer) -> str:
    """What `formica dev` prints once it is ready."""
    return "\n".join(
        [
            f"Formica is running at {server.url} (data lives until this process stops)",
            f"  API docs:  {server.url}/api/docs",
            f"  token:     {server.token}   (organisation {server.options.org})",
            f"  AWS (moto): {server.moto_url}   table {server.options.table_name}, "
            f"bucket {server.options.bucket_name}",
            "",
            "Use it from another shell:",
            f"  export SERVER={server.url}",
            f"  export TOKEN={server.token}",
            f"  export FORMICA_SERVER={server.url} FORMICA_TOKEN={server.token}",
            '  curl -H "Authorization: Bearer $TOKEN" $SERVER/api/jobs/definitions',
            "",
            "Press Ctrl-C to stop.",
        ]
    )


def serve_until_signalled(
    server: DevServer, *, out: TextIO, on_ready: Callable[[DevServer], None] | None = None
) -> int:
    """Start ``server``, print the banner, block until SIGINT/SIGTERM, stop it. Returns the exit status."""
    stop = threading.Event()

    def _request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server.start()
        except DevServerError as exc:
            print(f"formica dev: {exc}", file=sys.stderr)
            return 1
        print(banner(server), file=out, flush=True)
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(0.5):
            pass
        print("stopping formica dev ...", file=out, flush=True)
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_dev(args: argparse.Namespace) -> int:
    options = DevOptions(
        host=args.host,
        port=args.port,
        token=args.token,
        org=args.org,
        container_runtime=args.container_runtime,
    )
    return serve_until_signalled(DevServer(options), out=sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="formica dev", description="Run Formica locally.")
    add_dev_arguments(parser)
    return run_dev(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
