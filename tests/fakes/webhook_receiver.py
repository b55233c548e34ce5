"""A webhook receiver on loopback: records every delivery, verifies its signature the way docs/api.md
tells receivers to, and can fail the first N deliveries of each event."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import serving, url_of


@dataclass
class Delivery:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def signature_valid(self, secret: str, *, max_age_seconds: float = 300.0) -> bool:
        """The receiver's check: the timestamp is recent and the HMAC of ``{timestamp}.{body}`` matches."""
        timestamp = self.headers.get("x-formica-timestamp", "")
        given = self.headers.get("x-formica-signature-256", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_age_seconds:
            return False
        expected = (
            "sha256="
            + hmac.new(secret.encode(), timestamp.encode() + b"." + self.body, hashlib.sha256).hexdigest()
        )
        return hmac.compare_digest(expected, given)


@dataclass
class WebhookReceiver:
    url: str = ""
    fail_first: int = 0
    """Answer 503 to the first ``fail_first`` deliveries of each event id."""
    deliveries: list[Delivery] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, method: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            try:
                key = str(json.loads(body).get("id"))
            except ValueError:
                key = ""
            count = self._seen.get(key, 0) + 1
            self._seen[key] = count
            status = 503 if count <= self.fail_first else 200
            self.deliveries.append(Delivery(path, method, headers, body, time.time(), status))
            return status

    def delivered(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.answered == 200]

    def wait_for(self, predicate: Any, timeout: float, poll: Any = None) -> None:
        """Wait until ``predicate(self)`` holds, calling ``poll()`` (a consumer to drive) meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if poll is not None:
                poll()
            if predicate(self):
                return
            time.sleep(0.1)
        raise AssertionError(
            f"webhook deliveries not as expected: {[(d.path, d.event) for d in self.deliveries]}"
        )


@contextmanager
def webhook_receiver(fail_first: int = 0) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status = receiver.answer(self.path, self.command, headers, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return

    with serving(Handler) as server:
        receiver.url = url_of(server)
        yield receiver
