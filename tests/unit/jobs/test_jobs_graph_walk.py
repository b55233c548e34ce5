"""formica graph draws what the walk does: an exit code mapped to COMPLETED / FAILED / ERR_* goes on."""

from __future__ import annotations

import textwrap

from formica.jobs import parse_definition
from formica.jobs.graph import to_mermaid

FLOW = """
    job_type: g
    tasks:
    - task_type: one
      method: SHELL
      on_exit_code:
        3: COMPLETED
        4: ERR_BLAH
        5: FAILED
        6: FATAL
      on_completed: two
      on_failed: cleanup
    - task_type: two
      container:
        image: alpine
    - task_type: cleanup
      method: SHELL
      on_exit_code:
        3: COMPLETED
"""


def chart() -> list[str]:
    return to_mermaid(parse_definition(textwrap.dedent(FLOW).lstrip())).splitlines()


def test_an_exit_code_that_completes_the_task_continues_on_on_completed() -> None:
    assert '    t0 -->|"exit 3: COMPLETED"| t1' in chart()


def test_an_exit_code_that_fails_the_task_continues_on_on_failed() -> None:
    lines = chart()
    assert '    t0 -->|"exit 4: ERR_BLAH"| t2' in lines
    assert '    t0 -->|"exit 5: FAILED"| t2' in lines


def test_fatal_and_a_task_without_a_route_still_end() -> None:
    lines = chart()
    assert any(line.startswith('    t0 -->|"exit 6: FATAL"| a') for line in lines)
    # cleanup has no on_completed: its COMPLETED code ends the walk
    assert any(line.startswith('    t2 -->|"exit 3: COMPLETED"| a') for line in lines)


def test_a_container_task_without_a_method_is_named_container() -> None:
    assert '    t1["two<br/><small>CONTAINER</small>"]' in chart()
