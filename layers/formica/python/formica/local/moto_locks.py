"""moto's DynamoDB backend, made safe for the threads of the local host (tests and `formica dev`).

moto 5.2's ``DynamoDBBackend`` has no lock: ``transact_write_items`` deep-copies each table it
touches (its rollback copy) while other threads write to it ("dictionary changed size during
iteration"), and when a transaction's condition fails it restores that copy, silently undoing
writes other threads made in between. Real DynamoDB isolates transactions; Formica's slots rely on
it (a refused admission must not erase a concurrent one). While ``serialize_dynamodb()`` is active
every call of the backend holds one process-wide lock, so moto behaves as a serial DynamoDB.

Pinned, like ``formica.local.lambda_dispatch``, to moto 5.2 (the methods below); tested by
tests/integration/scheduling/test_slots.py (racing admissions and releases).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SERIALIZED_METHODS = (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
)

_lock = threading.RLock()
_install = threading.Lock()
_depth = 0
_originals: dict[str, Callable[..., Any]] = {}


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(self, *args, **kwargs)

    return call


@contextmanager
def serialize_dynamodb() -> Iterator[None]:
    """Serialize moto's DynamoDB backend while active (re-entrant; the outermost exit restores it)."""
    global _depth  # noqa: PLW0603 - one process-wide patch, counted like the shim it mirrors
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415 - moto: development only

    with _install:
        if _depth == 0:
            for name in SERIALIZED_METHODS:
                original = getattr(DynamoDBBackend, name)
                _originals[name] = original
                setattr(DynamoDBBackend, name, _locked(original))
        _depth += 1
    try:
        yield
    finally:
        with _install:
            _depth -= 1
            if _depth == 0:
                for name, original in _originals.items():
                    setattr(DynamoDBBackend, name, original)
                _originals.clear()
