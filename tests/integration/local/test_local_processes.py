"""Process-tree cleanup used by `formica dev` on shutdown, on real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from formica.local.processes import descendant_pids, terminate_descendants

SPAWNER = """
import subprocess, sys, time
subprocess.Popen(["sleep", "300"], start_new_session=True)  # like a runner's task process
subprocess.Popen(["sleep", "301"])
print("ready", flush=True)
time.sleep(300)
"""


@pytest.fixture
def spawner() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, "-c", SPAWNER], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    try:
        yield process
    finally:
        terminate_descendants(grace_seconds=1, root=process.pid)
        process.kill()
        process.wait(timeout=5)


def _alive(pid: int) -> bool:
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return bool(state.stdout.strip()) and not state.stdout.strip().startswith("Z")


def test_descendants_include_children_in_their_own_sessions(spawner: subprocess.Popen[str]) -> None:
    pids = descendant_pids(spawner.pid)
    assert len(pids) == 2
    assert all(_alive(pid) for pid in pids)


def test_terminate_descendants_ends_them_all(spawner: subprocess.Popen[str]) -> None:
    pids = descendant_pids(spawner.pid)
    signalled = terminate_descendants(grace_seconds=3, root=spawner.pid)
    assert sorted(signalled) == sorted(pids)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)
    assert spawner.poll() is None  # the root itself is left to its owner


def test_excluded_trees_survive(spawner: subprocess.Popen[str]) -> None:
    # Given the spawner's two children, one of them not ours to end
    first, second = descendant_pids(spawner.pid)
    # When the tree is ended except the excluded child
    terminate_descendants(grace_seconds=3, root=spawner.pid, exclude=frozenset({second}))
    # Then only the excluded one still runs
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(first):
        time.sleep(0.05)
    assert not _alive(first)
    assert _alive(second)
