"""Fixtures for the job-language tests: the seed job read from ../shared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
SEED_DOC = SHARED / "seed-sensor-job.md"


@pytest.fixture(scope="session")
def seed_yaml() -> str:
    """The seed's sensor-job YAML: the first ```yaml block of ../shared/seed-sensor-job.md."""
    if not SEED_DOC.is_file():
        pytest.skip(f"{SEED_DOC} is absent (the shared folder is not next to the repository)")
    found = re.search(r"```yaml\n(.*?)```", SEED_DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert found, "no ```yaml block in the seed document"
    return found.group(1)
