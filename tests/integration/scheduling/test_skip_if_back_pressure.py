"""skip_if back-pressure under moto: ``CountByJobTypeAndState`` counts the organisation's OWN requests.

Two organisations define the same job types. Organisation A has a backlog of ``worker`` requests,
organisation B has none: A's ``picker`` is filtered by its skip_if, B's starts, and every count a
template of B renders leaves A's requests out (and the other way round).
"""

from __future__ import annotations

import uuid

import pytest
from formica.engine.walk import JobState
from formica.jobs import DefinitionError, parse_definition
from formica.runtime.scheduling import ERR_FILTERED_JOB, Admission, admit_request
from formica.runtime.walker import Walker
from formica.store.requests import JobRequestItem, now_iso

from tests.integration.scheduling.conftest import World

ORG_A = "acme"
ORG_B = "globex"

WORKER = """\
job_type: worker
tasks:
- task_type: only
  method: SHELL
  script:
    - echo work
"""

PICKER = """\
job_type: picker
skip_if: {{ if ge (CountByJobTypeAndState "worker" "PENDING,EXECUTING") 3 }}true{{ end }}
tasks:
- task_type: pick
  method: SHELL
  script:
    - echo {{ CountByJobTypeAndState "worker" "PENDING" "EXECUTING" }}
    - echo {{ CountByJobTypeAndState "worker" "COMPLETED" }}
"""


def define(world: World, org: str, text: str) -> None:
    world.definitions.put_version(org, text, parse_definition(text))


def create(world: World, org: str, job_type: str, state: JobState = JobState.PENDING) -> str:
    head = world.definitions.get_head(org, job_type)
    assert head is not None
    request_id = str(uuid.uuid4())
    now = now_iso()
    world.runtime.requests.create(
        JobRequestItem(
            request_id=request_id,
            org=org,
            job_type=job_type,
            job_version=head.latest_version,
            job_state=state,
            created_at=now,
            updated_at=now,
        )
    )
    return request_id


def rendered_counts(world: World, request_id: str) -> str:
    """What the picker's task script says: ``<PENDING+EXECUTING> <COMPLETED>``."""
    definition = Walker(world.runtime).render(
        world.request(request_id), task_type="pick", task_retry=0, now=world.clock()
    )
    return " ".join(line.removeprefix("echo ") for line in definition.tasks[0].script)


def test_skip_if_counts_only_its_own_organisations_requests(world: World) -> None:
    # Given both organisations define worker and picker; A has 2 pending and 1 executing workers
    for org in (ORG_A, ORG_B):
        define(world, org, WORKER)
        define(world, org, PICKER)
    for state in (JobState.PENDING, JobState.PENDING, JobState.EXECUTING, JobState.COMPLETED):
        create(world, ORG_A, "worker", state)
    create(world, ORG_B, "worker", JobState.COMPLETED)

    # When each organisation's picker is admitted
    picker_a = create(world, ORG_A, "picker")
    picker_b = create(world, ORG_B, "picker")
    admitted_a = admit_request(picker_a, world.runtime)
    admitted_b = admit_request(picker_b, world.runtime)

    # Then A's is filtered by its own backlog and B's, which sees none of A's, starts
    assert admitted_a.admission == Admission.FILTERED
    request_a = world.request(picker_a)
    assert (request_a.job_state, request_a.error_code) == (JobState.FAILED, ERR_FILTERED_JOB)
    assert admitted_b.admission == Admission.STARTED
    assert rendered_counts(world, picker_b) == "0 1"
    assert rendered_counts(world, picker_a) == "3 1"


def test_a_count_follows_the_organisations_requests_as_they_change(world: World) -> None:
    for org in (ORG_A, ORG_B):
        define(world, org, WORKER)
        define(world, org, PICKER)
    probe_b = create(world, ORG_B, "picker", JobState.COMPLETED)
    for _ in range(5):
        create(world, ORG_A, "worker")
    assert rendered_counts(world, probe_b) == "0 0"

    create(world, ORG_B, "worker")
    create(world, ORG_B, "worker", JobState.EXECUTING)

    assert rendered_counts(world, probe_b) == "2 0"
    store = world.runtime.requests
    assert store.count_by_job_type_and_state(ORG_A, "worker", ["PENDING"]) == 5
    assert store.count_by_job_type_and_state(ORG_B, "worker", ["PENDING", "EXECUTING"]) == 2
    assert store.count_by_job_type_and_state(ORG_B, "worker", ["READY"]) == 0
    assert store.count_by_job_type_and_state(ORG_B, "picker", ["COMPLETED", "FAILED"]) == 1


def test_upload_validation_counts_nothing() -> None:
    definition = parse_definition(PICKER)
    assert not definition.skipped
    assert definition.tasks[0].script == ["echo 0", "echo 0"]


def test_a_picker_defined_with_an_unknown_state_is_refused_at_upload() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(PICKER.replace('"COMPLETED"', '"RUNNING"'))
    (problem,) = caught.value.problems
    assert (problem.line, problem.task_type) == (8, "pick")
    assert "unknown job state 'RUNNING'" in problem.message
