"""A capability's live log chunks are counted by one conditional write each, in the table (moto)
and in the in-memory fake held to the same rules: contiguous from byte 0, at most ``live_chunks``,
a refused chunk changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from formica.store.grants import (
    AttemptGrantItem,
    DynamoGrantRepository,
    GrantRepository,
    GrantRight,
    hash_capability,
    new_capability,
)

from tests.integration.store.conftest import TABLE

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _stored(grants: GrantRepository, *, live_chunks: int) -> AttemptGrantItem:
    capability = new_capability()
    scope = AttemptGrantItem(
        secret_hash=hash_capability(capability),
        org="acme",
        request_id="r-1",
        task_type="build",
        step=4,
        rights=(GrantRight.LIVE_LOG,),
        expires_at=NOW + timedelta(hours=1),
        created_at=NOW,
        live_prefix="acme/r-1/build/logs/live/attempt-1/",
        live_chunks=live_chunks,
        live_chunk_max_bytes=1024,
    )
    grants.create(scope)
    found = grants.find_active(capability, now=NOW)
    assert found == scope  # the counts never change the scope a capability is exchanged for
    return scope


def test_chunks_are_taken_in_order_and_counted(grants: GrantRepository) -> None:
    scope = _stored(grants, live_chunks=3)

    assert not grants.take_live_chunk(scope, start=4, end=8), "the first chunk starts at byte 0"
    assert grants.take_live_chunk(scope, start=0, end=4)
    assert not grants.take_live_chunk(scope, start=0, end=4), "a chunk is never taken twice"
    assert not grants.take_live_chunk(scope, start=5, end=8), "no bytes are skipped"
    assert grants.take_live_chunk(scope, start=4, end=8)
    assert grants.take_live_chunk(scope, start=8, end=9)
    assert not grants.take_live_chunk(scope, start=9, end=10), "three chunks, no more"


def test_a_capability_without_chunks_takes_none(grants: GrantRepository) -> None:
    scope = _stored(grants, live_chunks=0)
    assert not grants.take_live_chunk(scope, start=0, end=4)


def test_an_unknown_capability_takes_no_chunk(grants: GrantRepository) -> None:
    scope = _stored(grants, live_chunks=3)
    forged = scope.model_copy(update={"secret_hash": hash_capability(new_capability())})
    assert not grants.take_live_chunk(forged, start=0, end=4)
    assert grants.take_live_chunk(scope, start=0, end=4)


def test_counts_are_kept_beside_the_scope_not_in_it(ddb: Any) -> None:
    grants = DynamoGrantRepository(TABLE, client=ddb)
    scope = _stored(grants, live_chunks=3)
    grants.take_live_chunk(scope, start=0, end=4)
    [item] = ddb.scan(TableName=TABLE)["Items"]
    assert item["live_next"] == {"N": "4"} and item["live_used"] == {"N": "1"}
