"""The e2e suite's fixtures: one `formica dev` per test module, and an API client on it.

A module that needs its server started differently (other environment, other arguments, jobs
uploaded first) defines its own ``dev`` fixture with ``devserver.running_dev``; ``api`` then uses
that one. The helpers themselves are in ``tests/e2e/devserver.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.devserver import DevHandle, running_dev


@pytest.fixture(scope="module")
def dev(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHandle]:
    """`formica dev` with its defaults, for the whole module; its log under a folder named after it."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    with running_dev(tmp_path_factory.mktemp(module)) as handle:
        yield handle


@pytest.fixture(scope="module")
def api(dev: DevHandle) -> Iterator[httpx.Client]:
    """An API client on ``dev`` with its own (admin) token."""
    with dev.client() as client:
        yield client
