"""Fixtures for the runner tests: task contexts and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from formica.runners.base import TaskContext

from tests.fakes.loopback import serving, url_of


def make_context(timeout_seconds: float = 10.0, **overrides: Any) -> TaskContext:
    values: dict[str, Any] = {
        "org": "acme",
        "request_id": "req-1",
        "job_type": "sensor-job",
        "task_type": "first",
        "attempt": 1,
        "timeout_seconds": timeout_seconds,
    }
    values.update(overrides)
    return TaskContext(**values)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalServer:
    base_url: str
    requests: list[RecordedRequest] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path


class _Handler(BaseHTTPRequestHandler):
    server_state: LocalServer

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def _record(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        recorded = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
        )
        self.server_state.requests.append(recorded)
        return recorded

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (timeout tests)

    def _handle(self) -> None:
        request = self._record()
        path = request.path
        if path == "/todos/1":
            self._send(200, json.dumps({"userId": 1, "id": 1, "title": "delectus"}).encode())
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"status body", "text/plain")
        elif path == "/echo":
            echoed = {
                "method": request.method,
                "query": request.query,
                "headers": request.headers,
                "body": request.body.decode(),
            }
            self._send(200, json.dumps(echoed).encode())
        elif path == "/slow":
            time.sleep(float(request.query.get("secs", ["2"])[0]))
            self._send(200, b"late", "text/plain")
        elif path == "/drip":
            # Headers at once, then one byte every 0.3 s: each read is quick, the whole is slow.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "40")
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.3)
            except (BrokenPipeError, ConnectionResetError):
                return
        elif path == "/big":
            self._send(200, b"y" * (300 * 1024), "text/plain")
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/todos/1")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, b'{"error": "not found"}')

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle


@pytest.fixture(scope="module")
def http_server() -> Iterator[LocalServer]:
    state = LocalServer(base_url="")
    handler = type("Handler", (_Handler,), {"server_state": state})
    with serving(handler) as server:
        state.base_url = url_of(server)
        yield state


@pytest.fixture
def server(http_server: LocalServer) -> LocalServer:
    http_server.requests.clear()
    return http_server


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


ContextFactory = Callable[..., TaskContext]


@pytest.fixture
def context() -> ContextFactory:
    return make_context
