"""An HTTP server on loopback for one test or fixture: the stand-in every fake service here runs in.

``serving`` starts it on a free port (or the one given) in a daemon thread and shuts it down when
the block ends, whatever happened inside; ``url_of`` is its base URL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    poll_interval: float = 0.5,
) -> Iterator[ThreadingHTTPServer]:
    """Serve ``handler`` on ``host``:``port`` (0: a free port) until the block ends.

    ``poll_interval`` is how often the serving thread looks for the shutdown: shorter makes the
    block end sooner, for fixtures started many times.
    """
    server = ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def url_of(server: ThreadingHTTPServer) -> str:
    """``http://host:port`` of a server ``serving`` started."""
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"
