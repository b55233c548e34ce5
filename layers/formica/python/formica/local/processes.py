"""Find and end every process a `formica dev` process started (shell tasks, host containers).

Runners start task processes in sessions of their own (so a timeout can kill a whole tree), which
takes them out of the server's process group: a Ctrl-C on the terminal does not reach them. On
shutdown the server therefore walks its process tree (``ps``, present on Linux and macOS) and ends
every descendant: SIGTERM to each one's group, a grace period, then SIGKILL.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def _parent_map() -> dict[int, int]:
    try:
        listing = subprocess.run(
            ["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    parents: dict[int, int] = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            parents[int(fields[0])] = int(fields[1])
    return parents


def descendant_pids(root: int | None = None, *, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Every live descendant of ``root`` (default: this process), parents before children.

    Processes in ``exclude`` are skipped together with their own descendants.
    """
    root_pid = os.getpid() if root is None else root
    parents = _parent_map()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    frontier = [root_pid]
    while frontier:
        current = frontier.pop(0)
        for child in sorted(children.get(current, [])):
            if child not in found and child != root_pid and child not in exclude:
                found.append(child)
                frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie answers kill(0) but has already ended; its parent reaps it (Linux: /proc tells).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _signal_tree(pid: int, sig: signal.Signals) -> None:
    try:
        if os.getpgid(pid) == pid:
            # A session leader's group holds its own descendants, including ones already orphaned.
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def terminate_descendants(
    grace_seconds: float = 3.0, root: int | None = None, *, exclude: frozenset[int] = frozenset()
) -> list[int]:
    """End every descendant of ``root`` (but ``exclude``'s trees): SIGTERM, ``grace_seconds``, SIGKILL.

    Returns
    -------
    list[int]
        The pids that were signalled.
    """
    doomed = descendant_pids(root, exclude=exclude)
    if not doomed:
        return []
    logger.info("ending child processes", extra={"pids": doomed})
    for pid in doomed:
        _signal_tree(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        _reap()
        if not any(_alive(pid) for pid in doomed):
            return doomed
        time.sleep(0.05)
    for pid in doomed:
        if _alive(pid):
            _signal_tree(pid, signal.SIGKILL)
    _reap()
    return doomed


def _reap() -> None:
    # Collect exited direct children so they do not linger as zombies (which look alive to kill(0)).
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
