"""What a submit reads: the head every time, a version once per process, nothing after a put it alone made."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from formica.api.errors import ValidationApiError
from formica.api.models import SubmitJobRequest
from formica.api.requests import submit_request
from formica.jobs import parse_definition

from tests.integration.api.conftest import ApiWorld

ORG = "acme"


def define(world: ApiWorld, required: str = "") -> None:
    text = (
        f"job_type: counted\n{required}tasks:\n- task_type: only\n  method: SHELL\n  script:\n    - 'true'\n"
    )
    world.services.definitions.put_version(ORG, text, parse_definition(text))


@pytest.fixture
def calls(world: ApiWorld) -> Iterator[Counter[str]]:
    counted: Counter[str] = Counter()

    def before_call(model: Any, **_: Any) -> None:
        counted[model.name] += 1

    world.ddb.meta.events.register("before-call", before_call)
    yield counted
    world.ddb.meta.events.unregister("before-call", before_call)


def scheduled(**fields: Any) -> SubmitJobRequest:
    later = datetime.now(UTC) + timedelta(days=1)
    return SubmitJobRequest.model_validate(
        {"job_type": "counted", "scheduled_at": later.isoformat(), **fields}
    )


def test_a_scheduled_submit_reads_the_head_and_puts_once_the_version_is_known(
    world: ApiWorld, calls: Counter[str]
) -> None:
    define(world)
    first, status = submit_request(world.services, ORG, scheduled())
    assert (status, first.job_state) == (201, "PENDING")
    calls.clear()
    second, _ = submit_request(world.services, ORG, scheduled())
    assert calls == Counter({"GetItem": 1, "PutItem": 1})  # the head; the request
    stored = world.services.requests.get_for_org(ORG, second.id)
    assert stored is not None and (stored.job_state, stored.scheduled_at) == ("PENDING", second.scheduled_at)


def test_a_job_type_defined_again_after_a_delete_is_read_afresh(world: ApiWorld) -> None:
    define(world)
    submit_request(world.services, ORG, scheduled())  # version 1 kept by this process
    world.services.definitions.delete(ORG, "counted")
    define(world, required="required_params:\n  - Name\n")  # version 1 again, other content
    with pytest.raises(ValidationApiError, match="Name"):
        submit_request(world.services, ORG, scheduled())
    accepted, _ = submit_request(world.services, ORG, scheduled(params={"Name": "x"}))
    assert accepted.job_version == 1
