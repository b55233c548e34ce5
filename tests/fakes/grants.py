"""An in-memory ``GrantRepository`` for tests of the modules that use one (never shipped in the
layer). tests/integration/store/test_attempt_grants.py holds it to the DynamoDB adapter's rules."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from formica.store.grants import (
    AttemptGrantItem,
    GrantRepository,
    GrantStoreError,
    hash_capability,
    is_capability,
)


class InMemoryGrantRepository(GrantRepository):
    """Fake with the adapter's semantics: hashes only, refuses a duplicate, checks expiry."""

    def __init__(self) -> None:
        self.scopes: dict[str, AttemptGrantItem] = {}
        self.live_counts: dict[str, tuple[int, int]] = {}  # live_next, live_used
        self._lock = threading.Lock()

    def create(self, scope: AttemptGrantItem) -> None:
        with self._lock:
            if scope.secret_hash in self.scopes:
                raise GrantStoreError("a capability with this hash already exists")
            self.scopes[scope.secret_hash] = scope

    def find_active(self, capability: str, *, now: datetime | None = None) -> AttemptGrantItem | None:
        if not is_capability(capability):
            return None
        scope = self.scopes.get(hash_capability(capability))
        if scope is None or not scope.is_active(now or datetime.now(UTC)):
            return None
        return scope

    def take_live_chunk(self, scope: AttemptGrantItem, *, start: int, end: int) -> bool:
        with self._lock:
            next_start, used = self.live_counts.get(scope.secret_hash, (0, 0))
            if scope.secret_hash not in self.scopes or start != next_start or used >= scope.live_chunks:
                return False
            self.live_counts[scope.secret_hash] = (end, used + 1)
            return True
