"""One Slack post through the egress guard to a real HTTP server on loopback: what is retried, what
is not, and the webhook URL (a secret) masked in every result."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from formica.local.server import free_port
from formica.runners.egress import EgressPolicy
from formica.runners.slack import send_slack

from tests.fakes.loopback import serving, url_of

LOOPBACK = EgressPolicy.allowing("127.0.0.0/8")
SECRET_PATH = "/services/T0/B0/xoxsecret"


@pytest.fixture
def slack() -> Iterator[tuple[str, list[int], list[bytes]]]:
    """A receiver answering the statuses queued in the list (200 when empty); the bodies it got."""
    statuses: list[int] = []
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(statuses.pop(0) if statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    with serving(Handler) as server:
        yield f"{url_of(server)}{SECRET_PATH}", statuses, bodies


def test_a_2xx_delivers_the_payload_as_sent(slack: tuple[str, list[int], list[bytes]]) -> None:
    url, _, bodies = slack
    outcome = send_slack(url, b'{"text":"hi"}', egress=LOOPBACK)
    assert (outcome.delivered, outcome.result) == (True, "HTTP 200")
    assert bodies == [b'{"text":"hi"}']


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (503, True), (404, False), (403, False)])
def test_throttling_and_server_errors_are_retried_a_revoked_hook_is_not(
    slack: tuple[str, list[int], list[bytes]], status: int, retryable: bool
) -> None:
    url, statuses, _ = slack
    statuses.append(status)
    outcome = send_slack(url, b"{}", egress=LOOPBACK)
    assert (outcome.delivered, outcome.result, outcome.retryable) == (False, f"HTTP {status}", retryable)


def test_a_connection_error_is_retried_and_its_text_never_holds_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"
    outcome = send_slack(url, b"{}", egress=LOOPBACK)
    assert not outcome.delivered and outcome.retryable
    assert "xoxsecret" not in outcome.result and url not in outcome.result


def test_loopback_is_refused_under_aws_rules_without_retry() -> None:
    outcome = send_slack(f"http://127.0.0.1:9{SECRET_PATH}", b"{}", egress=EgressPolicy())
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert "egress" in outcome.result and "xoxsecret" not in outcome.result


def test_a_url_that_is_not_http_is_refused_without_being_quoted() -> None:
    outcome = send_slack("ftp://hooks.example.com/xoxsecret", b"{}", egress=LOOPBACK)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert "xoxsecret" not in outcome.result
