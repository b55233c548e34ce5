"""The HTTP socket of `formica dev`: a threading HTTP server that hands every request to ApiGateway.

Every method goes to the gateway, which answers one API Gateway cannot declare (TRACE, CONNECT,
anything but DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT) as it answers any undeclared route.
A stalled client holds only its own connection's thread, and not for long: a request body gets
``BODY_IDLE_SECONDS`` between bytes and ``BODY_TOTAL_SECONDS`` in all, else 408 and the connection
is closed; a connection that sends nothing for ``IDLE_CONNECTION_SECONDS`` (between requests, or
in the middle of a request line or headers) is closed.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from formica.local.gateway import ApiGateway, HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

# API Gateway's payload limit for REST APIs; bigger bodies get 413 before any Lambda runs.
MAX_BODY_BYTES = 10 * 1024 * 1024
# A request body that pauses this long, or is not complete after BODY_TOTAL_SECONDS, gets 408.
BODY_IDLE_SECONDS = 5.0
BODY_TOTAL_SECONDS = 30.0
# A connection silent this long (no request line, headers that stop) is closed without an answer.
IDLE_CONNECTION_SECONDS = 60.0
# Connection-level headers that http.server writes itself or that do not survive a proxy.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"})


class _BodyTimeout(Exception):
    """The request body stopped arriving (BODY_IDLE_SECONDS) or took too long (BODY_TOTAL_SECONDS)."""


class _ClientGone(Exception):
    """The client closed the connection before its request body was complete."""


class _BodyReader:
    """Reads a request body from the connection's buffered reader under a deadline.

    Each wait on the socket is at most one recv (``read1``, ``peek``) with a timeout of the idle
    bound or what is left of the total, so a client trickling a byte at a time cannot stretch it.
    """

    def __init__(self, rfile: io.BufferedReader, connection: Any, *, idle: float, total: float) -> None:
        self._rfile = rfile
        self._connection = connection
        self._idle = idle
        self._deadline = time.monotonic() + total

    def _wait(self, receive: Callable[[int], bytes], size: int) -> bytes:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _BodyTimeout
        self._connection.settimeout(min(self._idle, remaining))
        try:
            data = receive(size)
        except TimeoutError as exc:
            raise _BodyTimeout from exc
        if not data:
            raise _ClientGone
        return data

    def read(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            data += self._wait(self._rfile.read1, size - len(data))
        return bytes(data)

    def readline(self, limit: int) -> bytes:
        line = bytearray()
        while len(line) < limit:
            buffered = self._wait(self._rfile.peek, 1)
            room = limit - len(line)
            end = buffered.find(b"\n", 0, room)
            # Only bytes already buffered are taken: no further socket read here.
            line += self._rfile.read(end + 1 if end >= 0 else min(len(buffered), room))
            if end >= 0:
                break
        return bytes(line)


def _error_response(status: int, error: str, message: str) -> HttpResponse:
    return HttpResponse(
        status=status,
        headers=[("Content-Type", "application/json")],
        body=json.dumps({"error": error, "message": message}).encode(),
    )


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    gateway: ClassVar[ApiGateway]
    protocol_version = "HTTP/1.1"
    # http.server sends headers and body separately; with Nagle on, a kept-alive connection waits
    # for the client's delayed ACK (~40 ms on Linux) before the body (bench/api_load.py measured it).
    disable_nagle_algorithm = True
    server_version = "formica-dev"
    # Applied to the socket by socketserver; http.server closes a connection whose read times out.
    timeout = IDLE_CONNECTION_SECONDS
    body_idle_seconds: ClassVar[float] = BODY_IDLE_SECONDS
    body_total_seconds: ClassVar[float] = BODY_TOTAL_SECONDS

    def _read_body(self) -> bytes | None:
        length_header = self.headers.get("Content-Length")
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        if not chunked and not length_header:
            return b""
        if not isinstance(self.rfile, io.BufferedReader):  # socketserver's default (rbufsize -1)
            raise TypeError("the request stream is not buffered")
        reader = _BodyReader(
            self.rfile, self.connection, idle=self.body_idle_seconds, total=self.body_total_seconds
        )
        try:
            if chunked:
                return self._read_chunked(reader)
            try:
                length = int(length_header or "")
            except ValueError:
                return None
            if length < 0 or length > MAX_BODY_BYTES:
                return None
            return reader.read(length)
        finally:
            self.connection.settimeout(self.timeout)

    def _read_chunked(self, reader: _BodyReader) -> bytes | None:
        body = bytearray()
        while True:
            line = reader.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                return None
            if size == 0:
                # Trailers end with an empty line.
                while reader.readline(1024) not in (b"\r\n", b"\n"):
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                return None
            body.extend(reader.read(size))
            reader.readline(1024)

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _BodyTimeout:
            self.close_connection = True
            self._write(
                _error_response(
                    408,
                    "REQUEST_TIMEOUT",
                    f"the request body did not arrive in time ({self.body_idle_seconds:g} s without a "
                    f"byte, or {self.body_total_seconds:g} s in all)",
                )
            )
            return
        except _ClientGone:
            self.close_connection = True
            return
        if body is None:
            self.close_connection = True
            self._write(
                HttpResponse(
                    status=413,
                    headers=[("Content-Type", "application/json")],
                    body=b'{"error": "PAYLOAD_TOO_LARGE", "message": "request body too large"}',
                )
            )
            return
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=[(name, value) for name, value in self.headers.items()],
            body=body,
            source_ip=self.client_address[0],
        )
        self._write(self.gateway.handle(request))

    def _write(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        body = b"" if self.command == "HEAD" else response.body
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle
    do_HEAD = _handle
    do_OPTIONS = _handle

    def __getattr__(self, name: str) -> Callable[[], None]:
        # http.server answers a method without a do_<METHOD> with its own 501 page; here every other
        # method (TRACE, CONNECT, PROPFIND, ...) reaches the gateway too, which answers it the way
        # API Gateway answers a method no resource declares (gateway.missing_route_response).
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("http request", extra={"client": self.client_address[0], "line": format % args})


class FrontDoor:
    """A ThreadingHTTPServer on (host, port) serving an ApiGateway, run on a daemon thread.

    The socket is bound at construction, so a port in use fails at once; requests are answered
    once ``start(gateway)`` is called (until then they wait in the listen backlog).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        body_idle_seconds: float = BODY_IDLE_SECONDS,
        body_total_seconds: float = BODY_TOTAL_SECONDS,
    ) -> None:
        self._handler: type[_GatewayRequestHandler] = type(
            "GatewayRequestHandler",
            (_GatewayRequestHandler,),
            {"body_idle_seconds": body_idle_seconds, "body_total_seconds": body_total_seconds},
        )
        self._server = ThreadingHTTPServer((host, port), self._handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self, gateway: ApiGateway) -> None:
        self._handler.gateway = gateway
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="formica-front-door", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
