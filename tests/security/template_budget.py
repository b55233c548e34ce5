"""How a template bomb is shown refused: at upload, quickly (relative to a plain render measured in
this process, compile included, never in absolute seconds), cheaply (tracemalloc's peak), naming
the task, the line and the limit. Used by the bomb tests of this folder; ``plain_seconds`` (the
folder's conftest) is ``plain_render_seconds`` measured once a module.
"""

from __future__ import annotations

import contextlib
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from formica.jobs import DefinitionError, budget, parse_definition

RATIO = 50
"""A refusal may take at most RATIO plain renders..."""
SLACK_SECONDS = 0.5
"""...plus this (interpreter noise on a shared machine). The bombs took 19 s and more."""
PEAK_BYTES = 32 * 1024 * 1024
"""What refusing a bomb may allocate at its peak (the bombs allocated 100 MB to 4.6 GB)."""

BOMB_LINE = 6


def definition(bomb: str) -> str:
    """A definition whose task ``bomb`` holds the template on line 6."""
    return f"job_type: bombs\ntasks:\n- task_type: bomb\n  method: SHELL\n  script:\n    - echo {bomb}\n"


PLAIN = """job_type: plain-{nonce}
tasks:
- task_type: first
  method: HTTP_GET
  script:
    {{{{ if lt .JobElapsedSecs 3 }}}}
    - https://example.com/a/{{{{ .Name }}}}
    {{{{ else }}}}
    - https://example.com/b
    {{{{ end }}}}
  on_completed: second
- task_type: second
  method: SHELL
  script:
    {{{{ range $i := Iterate 3 }}}}
    - echo {{{{ $i }}}} {{{{ Random 0 5 }}}}
    {{{{ end }}}}
"""


def plain_render_seconds() -> float:
    """A plain upload validation of a small definition, a fresh text each time (compile included):
    the best of 5."""
    best = float("inf")
    for _ in range(5):
        text = PLAIN.format(nonce=uuid.uuid4().hex)
        started = time.perf_counter()
        parse_definition(text)
        best = min(best, time.perf_counter() - started)
    return best


def refused(call: Callable[[], Any]) -> tuple[DefinitionError, float]:
    started = time.perf_counter()
    with pytest.raises(DefinitionError) as caught:
        call()
    return caught.value, time.perf_counter() - started


def peak_bytes(call: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(DefinitionError):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_refused_upload(bomb: str, limit: str, plain_seconds: float) -> str:
    """The bomb's definition is refused at upload, quickly, cheaply, naming the task and the limit."""
    text = definition(bomb)
    error, elapsed = refused(lambda: parse_definition(text))
    (problem,) = error.problems
    assert (problem.line, problem.task_type) == (BOMB_LINE, "bomb"), str(error)
    assert problem.message.startswith("template refused: "), problem.message
    assert f"over the limit {budget.describe(limit)}" in problem.message, problem.message
    assert elapsed < RATIO * plain_seconds + SLACK_SECONDS, (elapsed, plain_seconds)
    assert peak_bytes(lambda: parse_definition(text)) < PEAK_BYTES
    return problem.message
