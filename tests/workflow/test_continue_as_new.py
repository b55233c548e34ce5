"""A sensor that polls thousands of times finishes across continue-as-new executions."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from formica.engine.walk import HISTORY_EVENT_BUDGET, JobState

from tests.workflow.conftest import Walk

POLLS = int(os.environ.get("FORMICA_TEST_POLLS", "3000"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_three_thousand_polls_complete_across_executions(walk: Walk, web: Any) -> None:
    # Given a sensor whose endpoint answers 404 for the first 3,000 calls, then 200
    answered = {"n": 0}
    original = web.hit

    def hit(path: str) -> tuple[int, str]:
        if path != "/sensor":
            return original(path)
        answered["n"] += 1
        return (404, "not yet") if answered["n"] <= POLLS else (200, "ready")

    web.hit = hit
    walk.upload(
        f"""
job_type: long-sensor
tasks:
- task_type: sense
  method: HTTP_GET
  script:
    - {web.base_url}/sensor
  on_exit_code:
    404: EXECUTING
"""
    )
    # When it runs (no delay between polls: the Choice goes straight to the task)
    started = time.monotonic()
    request_id = walk.submit("long-sensor")
    done = walk.wait(request_id, timeout=800)
    elapsed = time.monotonic() - started

    # Then it completed after exactly 3,000 polls, in more than one execution, none near the limit
    assert done.job_state == JobState.COMPLETED, done
    [task] = walk.tasks(request_id)
    assert (task.polls, task.exit_code, answered["n"]) == (POLLS, "200", POLLS + 1)
    assert done.execution_count >= 2
    names = [f"{request_id}-{n}" for n in range(1, done.execution_count + 1)]
    sizes = [len(walk.history(name)) for name in names]
    assert all(size <= HISTORY_EVENT_BUDGET + 1_000 for size in sizes), sizes
    assert sum(sizes) > HISTORY_EVENT_BUDGET
    print(f"3,000 polls: {elapsed:.1f}s, executions {len(names)}, history events {sizes}")
