"""worker_pools (D55): a SHELL task tagged with a pool the job declares runs on the organisation's
workers; tags without the declaration keep running on Formica's runners; what cannot run on a worker
is refused at upload, naming the task and the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from formica.engine.walk import Action, Clock, start_walk
from formica.jobs import DefinitionError, parse_definition
from formica.jobs.models import RunnerKind

POOLED = """\
job_type: build
worker_pools: [builder]
tasks:
- task_type: compile
  method: SHELL
  tags: [builder, go]
  script:
    - make
  on_completed: publish
- task_type: publish
  method: SHELL
  tags: [pulsar]
  script:
    - echo published
"""


def problems(text: str) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    return [(p.line, p.task_type, p.message) for p in caught.value.problems]


def test_a_shell_task_tagged_with_a_declared_pool_runs_on_a_worker() -> None:
    job = parse_definition(POOLED)
    compile_task, publish = job.tasks
    assert compile_task.runner == RunnerKind.WORKER and compile_task.in_worker_pool
    assert compile_task.method_name == "SHELL"
    # a tag the job does not declare is kept, as before: Formica's sandbox runs the task
    assert publish.runner == RunnerKind.SHELL and not publish.in_worker_pool


def test_without_worker_pools_tags_change_nothing() -> None:
    job = parse_definition(POOLED.replace("worker_pools: [builder]\n", ""))
    assert [task.runner for task in job.tasks] == [RunnerKind.SHELL, RunnerKind.SHELL]


def test_the_walk_queues_a_pooled_task_for_workers() -> None:
    job = parse_definition(POOLED)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    transition = start_walk(job, Clock(now, now, None))
    assert transition.decision.action == Action.RUN_WORKER
    assert transition.decision.task_type == "compile"


def test_a_pool_no_task_uses_is_refused_with_a_suggestion() -> None:
    found = problems(POOLED.replace("worker_pools: [builder]", "worker_pools: [buildr]"))
    assert found == [
        (2, None, "worker_pools names 'buildr', which no task's tags use (did you mean \"builder\"?)")
    ]


def test_a_task_a_worker_cannot_run_is_refused_when_tagged_with_a_pool() -> None:
    text = POOLED.replace(
        "  tags: [pulsar]\n  script:\n    - echo published\n",
        "  tags: [builder]\n  url: https://example.com\n",
    ).replace("- task_type: publish\n  method: SHELL", "- task_type: publish\n  method: HTTP_GET")
    assert problems(text) == [
        (
            12,
            "publish",
            "tags name the worker pool 'builder' (worker_pools), but method HTTP_GET does not run on "
            "workers: only SHELL and WEBSOCKET tasks do; remove the tag or the pool",
        )
    ]


def test_a_pooled_task_has_at_most_four_tags() -> None:
    text = POOLED.replace("tags: [builder, go]", "tags: [builder, go, a, b, c]")
    assert problems(text) == [(6, "compile", "a SHELL task on a worker pool takes at most 4 tags")]
