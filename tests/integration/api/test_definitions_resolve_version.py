"""DefinitionRepository.resolve_version: the version a fork asks for, on moto's DynamoDB."""

from __future__ import annotations

from typing import Any

import pytest
from formica.jobs.models import JobDefinition, TaskDefinition
from formica.store.definitions import DefinitionRepository

from tests.integration.api.tables import TABLE


@pytest.fixture
def repo(ddb: Any) -> DefinitionRepository:
    return DefinitionRepository(TABLE, client=ddb)


def _upload(repo: DefinitionRepository, sem_version: str | None, marker: str) -> int:
    definition = JobDefinition(
        job_type="child",
        sem_version=sem_version,
        tasks=[TaskDefinition(task_type="only", script=[f"echo {marker}"])],
    )
    item, _, _ = repo.put_version("acme", f"job_type: child\n# {marker}\n", definition)
    return item.version


@pytest.fixture
def versions(repo: DefinitionRepository) -> list[int]:
    # v1 1.0-dev, v2 without a sem_version, v3 1.0-dev again, v4 2.0
    return [
        _upload(repo, "1.0-dev", "one"),
        _upload(repo, None, "two"),
        _upload(repo, "1.0-dev", "three"),
        _upload(repo, "2.0", "four"),
    ]


def test_the_sem_version_is_stored_on_the_version_item(
    repo: DefinitionRepository, versions: list[int]
) -> None:
    stored = [repo.get_version("acme", "child", number) for number in versions]

    assert [item.sem_version if item else "missing" for item in stored] == ["1.0-dev", None, "1.0-dev", "2.0"]


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (None, 4),
        ("latest", 4),
        (2, 2),
        (1, 1),
        ("1.0-dev", 3),  # the newest of the two versions that carry it
        ("2.0", 4),
        ("1.0", None),  # matched exactly, not as a prefix
        (5, None),
        (0, None),
    ],
)
def test_resolve_version_finds_the_version_a_fork_asks_for(
    repo: DefinitionRepository, versions: list[int], wanted: int | str | None, expected: int | None
) -> None:
    found = repo.resolve_version("acme", "child", wanted)

    assert (found.version if found else None) == expected


def test_a_disabled_or_unknown_job_type_resolves_to_nothing(
    repo: DefinitionRepository, versions: list[int]
) -> None:
    repo.set_disabled("acme", "child", True)

    assert [repo.resolve_version("acme", "child", wanted) for wanted in (None, 2, "2.0")] == [None] * 3
    assert repo.resolve_version("acme", "nothing", None) is None
    assert repo.resolve_version("other-org", "child", None) is None


def test_a_sem_version_match_is_found_behind_pages_that_hold_none(
    repo: DefinitionRepository, ddb: Any, versions: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two newer versions without a sem_version, and a query that reads one item per page
    _upload(repo, None, "five")
    _upload(repo, None, "six")
    original = ddb.query
    monkeypatch.setattr(ddb, "query", lambda **kwargs: original(**{**kwargs, "Limit": 1}))

    # When a fork asks for 2.0 (version 4, the third page newest first)
    found = repo.resolve_version("acme", "child", "2.0")

    # Then the filter's empty pages are followed to it
    assert found is not None and found.version == 4
