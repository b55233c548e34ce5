"""The HTTP socket of `formica dev`: a threading HTTP server that hands every request to ApiGateway."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from formica.local.gateway import ApiGateway, HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

# API Gateway's payload limit for REST APIs; bigger bodies get 413 before any Lambda runs.
MAX_BODY_BYTES = 10 * 1024 * 1024
# Connection-level headers that http.server writes itself or that do not survive a proxy.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"})


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    gateway: ClassVar[ApiGateway]
    protocol_version = "HTTP/1.1"
    # http.server sends headers and body separately; with Nagle on, a kept-alive connection waits
    # for the client's delayed ACK (~40 ms on Linux) before the body (bench/api_load.py measured it).
    disable_nagle_algorithm = True
    server_version = "formica-dev"

    def _read_body(self) -> bytes | None:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes | None:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                return None
            if size == 0:
                # Trailers end with an empty line.
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                return None
            body.extend(self.rfile.read(size))
            self.rfile.readline(1024)

    def _handle(self) -> None:
        body = self._read_body()
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

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("http request", extra={"client": self.client_address[0], "line": format % args})


class FrontDoor:
    """A ThreadingHTTPServer on (host, port) serving an ApiGateway, run on a daemon thread.

    The socket is bound at construction, so a port in use fails at once; requests are answered
    once ``start(gateway)`` is called (until then they wait in the listen backlog).
    """

    def __init__(self, host: str, port: int) -> None:
        self._handler: type[_GatewayRequestHandler] = type(
            "GatewayRequestHandler", (_GatewayRequestHandler,), {}
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
