"""Attempt capabilities in the table (moto), and the in-memory fake held to the same rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from formica.store.grants import (
    CAPABILITY_PREFIX,
    AttemptGrantItem,
    DynamoGrantRepository,
    GrantRepository,
    GrantRight,
    GrantStoreError,
    hash_capability,
    new_capability,
)

from tests.integration.store.conftest import TABLE

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _scope(capability: str, **changes: Any) -> AttemptGrantItem:
    values: dict[str, Any] = {
        "secret_hash": hash_capability(capability),
        "org": "acme",
        "request_id": "r-1",
        "task_type": "build",
        "step": 4,
        "rights": (GrantRight.UPLOAD, GrantRight.CANCEL),
        "expires_at": NOW + timedelta(hours=1),
        "created_at": NOW,
        "execution": "r-1-1",
        "upload_prefix": "acme/r-1/build/artifacts/",
        "max_bytes": 1024,
        "metadata": ("sha256",),
    }
    values.update(changes)
    return AttemptGrantItem(**values)


def test_a_capability_finds_its_scope_until_it_expires(grants: GrantRepository) -> None:
    capability = new_capability()
    assert capability.startswith(CAPABILITY_PREFIX) and len(capability) == 47
    grants.create(_scope(capability))

    assert grants.find_active(capability, now=NOW) == _scope(capability)
    assert grants.find_active(capability, now=NOW + timedelta(minutes=59)) is not None
    assert grants.find_active(capability, now=NOW + timedelta(hours=1)) is None
    assert grants.find_active(new_capability(), now=NOW) is None
    assert grants.find_active(capability[:-1], now=NOW) is None
    assert grants.find_active("x" * 10_000, now=NOW) is None


def test_the_same_hash_is_never_stored_twice(grants: GrantRepository) -> None:
    capability = new_capability()
    grants.create(_scope(capability))
    with pytest.raises(GrantStoreError):
        grants.create(_scope(capability, org="other"))
    assert grants.find_active(capability, now=NOW) == _scope(capability)


def test_only_the_hash_is_stored_and_ttl_removes_the_item(ddb: Any) -> None:
    capability = new_capability()
    DynamoGrantRepository(TABLE, client=ddb).create(_scope(capability))
    items = ddb.scan(TableName=TABLE)["Items"]
    assert capability not in repr(items)
    [item] = items
    assert item["pk"]["S"] == f"GRANT#{hash_capability(capability)}"
    assert int(item["expires_at"]["N"]) > (NOW + timedelta(hours=1)).timestamp()
