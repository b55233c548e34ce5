"""`formica dev`: start the local server and keep it up until Ctrl-C or SIGTERM.

Also runnable on its own: ``python -m formica.cli.dev --port 8080``.

The token never needs to be on the command line, where every user of the machine reads it (``ps``,
``/proc/<pid>/cmdline``): it comes from ``FORMICA_DEV_TOKEN`` or ``--token-file PATH`` (a file only
its owner may read); ``--token TEXT`` still works and warns. The variable is removed from this
process's environment as soon as it is read, so no child process inherits it.
"""

from __future__ import annotations

import argparse
import ctypes
import getpass
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from formica.local.server import DEFAULT_ORG, DEV_TOKEN_ENV, DevOptions, DevServer, DevServerError

SECURITY_DOC = "docs/security.md"
TOKEN_ARGV_WARNING = (
    "formica dev: warning: --token puts the token on this process's command line, where every user "
    "of this machine can read it (ps, /proc/<pid>/cmdline), and so can every task the server runs; "
    f"pass it in {DEV_TOKEN_ENV} or with --token-file PATH instead"
)
# A token file holds one short line; anything much longer is not a token file.
_TOKEN_FILE_MAX_BYTES = 4096


def add_dev_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="API port (default: 8080; 0 picks a free one)")
    token = parser.add_mutually_exclusive_group()
    token.add_argument(
        "--token-file",
        default=None,
        metavar="PATH",
        help=f"read the ready Bearer token (16+ characters) from the first line of PATH, a file only its "
        f"owner may read (chmod 600); or set {DEV_TOKEN_ENV}; default: a fresh token",
    )
    token.add_argument(
        "--token",
        default=None,
        help=f"the token's text on the command line: discouraged (every user of this machine sees it "
        f"with ps); use {DEV_TOKEN_ENV} or --token-file",
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
    parser.add_argument(
        "--strict-egress",
        action="store_true",
        help="HTTP tasks may not call loopback, private or link-local addresses, as in AWS "
        "(default: loopback is allowed)",
    )
    parser.add_argument(
        "--email-outbox",
        default=None,
        metavar="DIR",
        help="write notify.email messages as .eml files into DIR (default: an outbox folder in the "
        "server's temporary directory, printed at start)",
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


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}"


def banner(server: DevServer) -> str:
    """What `formica dev` prints once it is ready."""
    egress = (
        "strict, as in AWS: HTTP tasks may not call loopback, private or link-local addresses"
        if server.options.strict_egress
        else "HTTP tasks may call loopback (127.0.0.0/8, ::1); --strict-egress refuses it, as AWS does"
    )
    return "\n".join(
        [
            f"Formica is running at {server.url} (data lives until this process stops)",
            f"  Single-user: it runs every task on this host as you ({_user_name()}), so a task can read",
            f"  whatever you can read. Do not share it or its token with anyone. See {SECURITY_DOC}.",
            f"  API docs:  {server.url}/api/docs",
            f"  dashboard: {server.url}/   (sign in with the token below)",
            f"  token:     {server.token}   (organisation {server.options.org})",
            f"  AWS (moto): {server.moto_url}   table {server.options.table_name}, "
            f"bucket {server.options.bucket_name}",
            f"  egress:    {egress}",
            f"  email:     {server.email_outbox}   (notify.email: one .eml file per message, none sent)",
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


def read_token_file(path: str) -> str:
    """The token in ``path``: its first line, from a regular file of this user that only it may read.

    Raises
    ------
    DevServerError
        The file cannot be read, is not the user's, is open to group or others, or holds no token.
    """
    try:
        # O_NONBLOCK: a FIFO opens at once (and is refused below) instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise DevServerError(f"--token-file {path}: {exc.strerror or exc}") from exc
    try:
        # Checked on the open file, not the name: what is checked is what is read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DevServerError(f"--token-file {path}: not a regular file")
        if info.st_uid != os.getuid():
            raise DevServerError(f"--token-file {path}: owned by uid {info.st_uid}, not by you")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise DevServerError(
                f"--token-file {path}: group or others may access it (mode {mode:04o}); "
                f"a token file must be readable by its owner only: chmod 600 {path}"
            )
        data = os.read(fd, _TOKEN_FILE_MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _TOKEN_FILE_MAX_BYTES:
        raise DevServerError(f"--token-file {path}: larger than {_TOKEN_FILE_MAX_BYTES} bytes")
    lines = data.decode("utf-8", errors="replace").strip().splitlines()
    if not lines or not lines[0].strip():
        raise DevServerError(f"--token-file {path}: empty")
    return lines[0].strip()


def _environment_entries(name: str) -> list[tuple[int, int]]:
    """Where the C environment keeps ``name=...`` (address, length); Linux only, else none."""
    if not sys.platform.startswith("linux"):
        return []
    prefix = name.encode() + b"="
    found = []
    try:
        entries = ctypes.POINTER(ctypes.c_void_p).in_dll(ctypes.CDLL(None), "environ")
        index = 0
        while (address := entries[index]) is not None:
            entry = ctypes.string_at(address)
            if entry.startswith(prefix):
                found.append((address, len(entry)))
            index += 1
    except (OSError, ValueError, AttributeError):
        return []
    return found


def _pop_environment_variable(name: str) -> str | None:
    """Unset ``name`` in this process and wipe the bytes /proc/<pid>/environ shows (Linux, best effort).

    Unsetting removes the variable for getenv and for child processes, but /proc/<pid>/environ reads
    the block the kernel handed over at exec, which any process of the same user (a task) can read.
    Once unset, nothing refers to those bytes any more, so they are overwritten with zeros.
    """
    entries = _environment_entries(name)
    value = os.environ.pop(name, None)  # unsetenv: the C environment lets go of those entries
    for address, length in entries:
        ctypes.memset(address, 0, length)
    return value


def resolve_token(
    args: argparse.Namespace, *, environ: MutableMapping[str, str] | None = None, err: TextIO | None = None
) -> str | None:
    """The token to start with: ``--token``, ``--token-file``, else ``FORMICA_DEV_TOKEN``, else None (fresh).

    ``FORMICA_DEV_TOKEN`` leaves the environment here, whichever source wins, so that no process the
    server starts inherits it. ``--token`` prints a warning on ``err``.
    """
    if environ is None:
        from_env = _pop_environment_variable(DEV_TOKEN_ENV)
    else:
        from_env = environ.pop(DEV_TOKEN_ENV, None)
    if getattr(args, "token", None) is not None:
        print(TOKEN_ARGV_WARNING, file=err or sys.stderr, flush=True)
        return str(args.token)
    if getattr(args, "token_file", None) is not None:
        return read_token_file(str(args.token_file))
    return from_env or None


def run_dev(args: argparse.Namespace) -> int:
    try:
        token = resolve_token(args)
    except DevServerError as exc:
        print(f"formica dev: {exc}", file=sys.stderr)
        return 1
    options = DevOptions(
        host=args.host,
        port=args.port,
        token=token,
        org=args.org,
        container_runtime=args.container_runtime,
        strict_egress=bool(getattr(args, "strict_egress", False)),
        email_outbox=Path(args.email_outbox) if getattr(args, "email_outbox", None) else None,
        announce=lambda line: print(line, flush=True),
    )
    return serve_until_signalled(DevServer(options), out=sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="formica dev", description="Run Formica locally.")
    add_dev_arguments(parser)
    return run_dev(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
