"""DefinitionRepository against moto's in-process DynamoDB."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from formica.jobs.models import JobDefinition, TaskDefinition
from formica.store.definitions import DefinitionNotFoundError, DefinitionRepository
from formica.store.pagination import InvalidCursorError, encode_cursor

from tests.integration.api.tables import TABLE


@pytest.fixture
def repo(ddb: Any) -> DefinitionRepository:
    return DefinitionRepository(TABLE, client=ddb)


def _definition(job_type: str = "sensor-job", max_concurrency: int = 0) -> JobDefinition:
    return JobDefinition(
        job_type=job_type,
        max_concurrency=max_concurrency,
        tasks=[
            TaskDefinition(task_type="first", script=["echo hi"], on_completed="second"),
            TaskDefinition(task_type="second", script=["echo bye"]),
        ],
    )


RAW = "job_type: sensor-job\ntasks:\n- task_type: first\n  script:\n    - echo hi\n"


def test_first_upload_creates_version_one_and_keeps_the_raw_text(repo: DefinitionRepository) -> None:
    item, created, changed = repo.put_version("acme", RAW, _definition())

    assert (item.version, created, changed) == (1, True, True)
    stored = repo.get_version("acme", "sensor-job")
    assert stored is not None
    assert stored.raw_yaml == RAW
    assert stored.definition.task("first").on_completed == "second"
    head = repo.get_head("acme", "sensor-job")
    assert head is not None and head.latest_version == 1 and head.disabled is False


def test_unchanged_text_returns_the_same_version_and_changed_text_a_new_one(
    repo: DefinitionRepository,
) -> None:
    first, _, _ = repo.put_version("acme", RAW, _definition())

    same, created, changed = repo.put_version("acme", RAW, _definition())
    newer, created2, changed2 = repo.put_version("acme", RAW + "# v2\n", _definition(max_concurrency=2))

    assert (same.version, same.definition_id, created, changed) == (1, first.definition_id, False, False)
    assert (newer.version, created2, changed2) == (2, False, True)
    assert repo.get_version("acme", "sensor-job", 1) is not None
    assert repo.get_version("acme", "sensor-job", 3) is None
    assert repo.list_versions("acme", "sensor-job") == [1, 2]
    head = repo.get_head("acme", "sensor-job")
    assert head is not None and head.max_concurrency == 2


def test_concurrent_uploads_never_share_a_version(repo: DefinitionRepository) -> None:
    versions: list[int] = []
    lock = threading.Lock()

    def upload(n: int) -> None:
        item, _, _ = repo.put_version("acme", RAW + f"# {n}\n", _definition())
        with lock:
            versions.append(item.version)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(versions) == [1, 2, 3, 4, 5, 6]


def test_disabled_and_concurrency_survive_a_new_upload_only_where_they_should(
    repo: DefinitionRepository,
) -> None:
    repo.put_version("acme", RAW, _definition())
    repo.set_disabled("acme", "sensor-job", True)
    repo.set_max_concurrency("acme", "sensor-job", 5)

    repo.put_version("acme", RAW + "# v2\n", _definition(max_concurrency=1))

    head = repo.get_head("acme", "sensor-job")
    assert head is not None and head.disabled is True and head.max_concurrency == 1


class _DisabledDuringUpload(DefinitionRepository):
    """Someone disables the job type right after the upload has read the head."""

    fired = False

    def get_head(self, org: str, job_type: str) -> Any:
        head = super().get_head(org, job_type)
        if head is not None and not self.fired:
            self.fired = True
            self.set_disabled(org, job_type, True)
        return head


def test_a_disable_racing_an_upload_is_not_lost(ddb: Any, repo: DefinitionRepository) -> None:
    repo.put_version("acme", RAW, _definition())
    racing = _DisabledDuringUpload(TABLE, client=ddb)

    version, _, changed = racing.put_version("acme", RAW + "# v2\n", _definition())

    head = repo.get_head("acme", "sensor-job")
    assert racing.fired and changed and version.version == 2
    assert head is not None and head.latest_version == 2 and head.disabled is True


def test_updates_and_delete_of_an_unknown_job_type_raise_not_found(repo: DefinitionRepository) -> None:
    with pytest.raises(DefinitionNotFoundError):
        repo.set_disabled("acme", "nope", True)
    with pytest.raises(DefinitionNotFoundError):
        repo.delete("acme", "nope")


def test_delete_removes_head_and_versions(repo: DefinitionRepository) -> None:
    repo.put_version("acme", RAW, _definition())
    repo.put_version("acme", RAW + "#2", _definition())

    assert repo.delete("acme", "sensor-job") == 2

    assert repo.get_head("acme", "sensor-job") is None
    assert repo.get_version("acme", "sensor-job", 1) is None


def test_list_pages_through_one_org_only(repo: DefinitionRepository) -> None:
    for n in range(5):
        repo.put_version("acme", RAW + f"#{n}", _definition(f"job-{n}"))
    repo.put_version("other", RAW, _definition("secret-job"))

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = repo.list_for_org("acme", limit=2, next_token=token)
        seen.extend(head.job_type for head in page.records)
        pages += 1
        token = page.next_token
        if token is None:
            break

    assert seen == [f"job-{n}" for n in range(5)]
    assert pages >= 3
    other_token = encode_cursor(
        {
            "pk": {"S": "ORG#other#JOB#secret-job"},
            "sk": {"S": "HEAD"},
            "gsi1pk": {"S": "ORG#other#JOBS"},
            "gsi1sk": {"S": "secret-job"},
        }
    )
    with pytest.raises(InvalidCursorError):
        repo.list_for_org("acme", next_token=other_token)
    with pytest.raises(InvalidCursorError):
        repo.list_for_org("acme", next_token="not-a-cursor!!")
