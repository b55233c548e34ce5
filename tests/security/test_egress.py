"""Tenant isolation: HTTP tasks reach public addresses only, unless the deployment lists a network.

Job definitions are untrusted and an HTTP task fetches the URL its tenant wrote, from inside the
stack (in Lambda, 127.0.0.1:9001 is the runtime API and 169.254.169.254 / 169.254.170.2 hand out
credentials). Every test here aims traffic at loopback only: "public" addresses are answered by an
injected connect that records them and, where a test needs an answer, serves it from a loopback
stand-in; nothing ever connects to them.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httpcore
import pytest
from formica.cli.dev import add_dev_arguments
from formica.jobs.models import TaskDefinition
from formica.local.server import LOOPBACK_NETWORKS, egress_environment
from formica.runners.base import TaskOutcome
from formica.runners.egress import (
    LINK_LOCAL,
    LOOPBACK,
    METADATA,
    MULTICAST,
    PRIVATE,
    RESERVED,
    SHARED,
    UNSPECIFIED,
    EgressPolicy,
    IPAddress,
    classify,
)
from formica.runners.http import (
    ERR_HTTP_CONNECTION,
    ERR_HTTP_FORBIDDEN_ADDRESS,
    http_client,
    run_http,
    shared_client,
)
from formica.runtime.attempts import run_http_attempt
from formica.runtime.walker import AttemptScope
from formica.settings import FormicaSettings, SettingsError, get_settings, reset_settings

from tests.fakes.loopback import serving
from tests.unit.runners.conftest import make_context

STRICT = EgressPolicy()
PUBLIC = "93.184.215.14"  # a public address: only ever handed to the injected connect, never reached


# -- the address classification, as a table ---------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", LOOPBACK),
        ("127.255.255.254", LOOPBACK),
        ("::1", LOOPBACK),
        ("0.0.0.0", UNSPECIFIED),
        ("0.1.2.3", UNSPECIFIED),
        ("::", UNSPECIFIED),
        ("10.0.0.1", PRIVATE),
        ("172.16.0.1", PRIVATE),
        ("172.31.255.255", PRIVATE),
        ("192.168.1.1", PRIVATE),
        ("fc00::1", PRIVATE),
        ("fd12:3456::1", PRIVATE),
        ("100.64.0.1", SHARED),
        ("100.127.255.255", SHARED),
        ("169.254.169.254", METADATA),
        ("169.254.170.2", METADATA),
        ("169.254.170.23", METADATA),
        ("fd00:ec2::254", METADATA),
        ("169.254.1.1", LINK_LOCAL),
        ("fe80::1", LINK_LOCAL),
        ("fe80::1%eth0", LINK_LOCAL),
        ("224.0.0.1", MULTICAST),
        ("239.255.255.250", MULTICAST),
        ("ff02::1", MULTICAST),
        ("240.0.0.1", RESERVED),
        ("255.255.255.255", RESERVED),
        ("192.0.2.1", RESERVED),
        ("198.18.0.1", RESERVED),
        ("203.0.113.9", RESERVED),
        ("2001:db8::1", RESERVED),
        ("::7f00:1", RESERVED),  # IPv4-compatible ::127.0.0.1
        ("fec0::1", RESERVED),
        ("4000::1", RESERVED),  # outside global unicast 2000::/3
        # IPv6 forms of IPv4 addresses are what they stand for.
        ("::ffff:127.0.0.1", LOOPBACK),
        ("::ffff:169.254.169.254", METADATA),
        ("::ffff:10.1.2.3", PRIVATE),
        ("::ffff:100.64.0.1", SHARED),
        ("64:ff9b::a9fe:a9fe", METADATA),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", LOOPBACK),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", PRIVATE),  # 6to4 of 10.0.0.1
        # Public.
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        (PUBLIC, None),
        ("100.63.255.255", None),
        ("100.128.0.0", None),
        ("172.15.255.255", None),
        ("172.32.0.0", None),
        ("169.253.255.255", None),
        ("223.255.255.255", None),
        ("2606:4700:4700::1111", None),
        ("2a00:1450:4001::200e", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
    ],
)
def test_address_classification(address: str, kind: str | None) -> None:
    assert classify(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("allowed", "address", "permitted"),
    [
        ("", "127.0.0.1", False),
        ("", PUBLIC, True),
        ("127.0.0.2/32", "127.0.0.2", True),
        ("127.0.0.2/32", "127.0.0.1", False),
        ("127.0.0.2/32", "127.0.0.3", False),
        ("127.0.0.0/8", "::ffff:127.0.0.1", True),
        ("127.0.0.0/8", "::1", False),
        ("10.0.0.0/8", "10.20.30.40", True),
        ("10.0.0.0/8", "172.16.0.1", False),
        ("10.0.0.0/8", "169.254.169.254", False),
        ("10.0.0.0/8, fd00::/8", "fd12::1", True),
        ("10.0.0.0/8, fd00::/8", "fe80::1", False),
        ("100.64.0.0/10", "100.100.100.100", True),
        ("169.254.0.0/16", "169.254.1.1", True),
        # The metadata and credentials endpoints open only when named as that one address.
        ("169.254.0.0/16", "169.254.169.254", False),
        ("0.0.0.0/0", "169.254.170.2", False),
        ("0.0.0.0/0", "10.0.0.1", True),
        ("169.254.170.2/32", "169.254.170.2", True),
        ("169.254.170.2/32", "169.254.169.254", False),
        ("169.254.170.2", "169.254.170.2", True),
    ],
)
def test_allowed_networks_open_exactly_what_they_list(allowed: str, address: str, permitted: bool) -> None:
    refusal = EgressPolicy.allowing(allowed).refusal(ipaddress.ip_address(address))
    assert (refusal is None) is permitted


def test_a_malformed_network_is_refused() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.1/8"):
        EgressPolicy.allowing("10.0.0.1/8")


# -- servers on loopback, and an injected connect that records ---------------------------------------


@dataclass
class Server:
    host: str
    port: int
    hits: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


@contextmanager
def serve(host: str, port: int = 0) -> Iterator[Server]:
    """An HTTP server on ``host``: ``/ok`` answers JSON, ``/redirect?to=URL`` answers 302 to URL."""
    state = Server(host, 0)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            state.hits.append(parts.path)
            if parts.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", parse_qs(parts.query)["to"][0])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps({"served_by": state.host}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Handler, host=host, port=port) as server:
        state.port = server.server_address[1]
        yield state


@pytest.fixture
def victim() -> Iterator[Server]:
    """What must never be reached: loopback, standing in for the runtime API or moto."""
    with serve("127.0.0.1") as server:
        yield server


@pytest.fixture
def allowed_server() -> Iterator[Server]:
    """A server the tests allow: the only loopback address opened (127.0.0.2/32)."""
    try:
        with serve("127.0.0.2") as server:
            yield server
    except OSError as exc:  # pragma: no cover - 127.0.0.2 is loopback on Linux, not on every OS
        pytest.skip(f"cannot listen on 127.0.0.2: {exc}")


class Connects:
    """The injected TCP connect: records every (address, port) asked for; ``routes`` sends an
    address to a loopback stand-in, anything else is refused (no connection is made)."""

    def __init__(self, routes: dict[str, tuple[str, int]] | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.routes = routes or {}

    def __call__(self, address: str, port: int, **kwargs: Any) -> httpcore.NetworkStream:
        self.calls.append((address, port))
        if address in self.routes:
            host, real_port = self.routes[address]
            return httpcore.SyncBackend().connect_tcp(host, real_port, **kwargs)
        raise httpcore.ConnectError(f"test: no connection to {address}")


def get(*urls: str) -> TaskDefinition:
    return TaskDefinition(task_type="fetch", method="HTTP_GET", script=list(urls))


def run(task: TaskDefinition, policy: EgressPolicy = STRICT, **backend: Any) -> TaskOutcome:
    with http_client(policy, **backend) as client:
        return run_http(task, make_context(timeout_seconds=10), client=client)


def assert_forbidden(outcome: TaskOutcome, host: str, address: str) -> None:
    assert outcome.error_code == ERR_HTTP_FORBIDDEN_ADDRESS, outcome
    assert outcome.exit_code == ""
    message = outcome.error_message or ""
    assert host in message and address in message, message
    assert message in outcome.log


# -- the strict rules (AWS's default) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "address"),
    [
        ("http://127.0.0.1:{port}/ok", "127.0.0.1", "127.0.0.1"),
        ("https://127.0.0.1:{port}/ok", "127.0.0.1", "127.0.0.1"),
        ("http://localhost:{port}/ok", "localhost", "127.0.0.1"),
        ("http://[::1]:{port}/ok", "::1", "::1"),
        ("http://[::ffff:127.0.0.1]:{port}/ok", "::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        (
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "169.254.169.254",
            "169.254.169.254",
        ),
        ("http://169.254.170.2/v2/credentials/abc", "169.254.170.2", "169.254.170.2"),
        ("http://10.0.0.1/", "10.0.0.1", "10.0.0.1"),
        ("http://192.168.0.1:8080/admin", "192.168.0.1", "192.168.0.1"),
        ("http://100.64.0.1/", "100.64.0.1", "100.64.0.1"),
        ("http://0.0.0.0:{port}/ok", "0.0.0.0", "0.0.0.0"),
    ],
)
def test_strict_rules_refuse_without_connecting(url: str, host: str, address: str, victim: Server) -> None:
    connects = Connects()

    outcome = run(get(url.format(port=victim.port)), connect=connects)

    if host == "localhost":  # the system resolver may answer ::1 first
        address = "::1" if "::1" in (outcome.error_message or "") else address
    assert_forbidden(outcome, host, address)
    assert connects.calls == []
    assert victim.hits == []


def test_the_runner_own_client_is_strict_by_default(victim: Server) -> None:
    outcome = run_http(get(victim.url("/ok")), make_context())

    assert_forbidden(outcome, "127.0.0.1", "127.0.0.1")
    assert victim.hits == []


def test_a_refused_url_stops_the_attempt_after_the_urls_before_it(
    allowed_server: Server, victim: Server
) -> None:
    policy = EgressPolicy.allowing("127.0.0.2/32")

    outcome = run(get(allowed_server.url("/ok"), victim.url("/ok"), allowed_server.url("/ok")), policy)

    assert_forbidden(outcome, "127.0.0.1", "127.0.0.1")
    assert allowed_server.hits == ["/ok"]
    assert victim.hits == []


# -- what the allowed networks open -------------------------------------------------------------------


def test_an_allowed_loopback_address_is_reached_and_its_neighbours_are_not(
    allowed_server: Server, victim: Server
) -> None:
    policy = EgressPolicy.allowing("127.0.0.2/32")

    reached = run(get(allowed_server.url("/ok")), policy)
    neighbour = run(get(f"http://127.0.0.3:{allowed_server.port}/ok"), policy)
    loopback = run(get(victim.url("/ok")), policy)

    assert reached.exit_code == "200"
    assert json.loads(reached.outputs["body"]) == {"served_by": "127.0.0.2"}
    assert_forbidden(neighbour, "127.0.0.3", "127.0.0.3")
    assert_forbidden(loopback, "127.0.0.1", "127.0.0.1")
    assert victim.hits == []


def test_a_connection_failure_to_an_allowed_address_is_still_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    outcome = run(get(f"http://127.0.0.2:{port}/ok"), EgressPolicy.allowing("127.0.0.2/32"))

    assert outcome.error_code == ERR_HTTP_CONNECTION


# -- redirects: every hop is checked -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "host", "address"),
    [
        ("http://127.0.0.1:{port}/ok", "127.0.0.1", "127.0.0.1"),
        ("http://localhost:{port}/ok", "localhost", "127.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "169.254.169.254"),
        ("http://[::1]:{port}/ok", "::1", "::1"),
    ],
)
def test_a_redirect_to_a_forbidden_address_is_refused_at_the_hop(
    target: str, host: str, address: str, allowed_server: Server, victim: Server
) -> None:
    connects = Connects(routes={"127.0.0.2": ("127.0.0.2", allowed_server.port)})
    location = target.format(port=victim.port)
    url = allowed_server.url(f"/redirect?to={location}")

    outcome = run(get(url), EgressPolicy.allowing("127.0.0.2/32"), connect=connects)

    if host == "localhost":
        address = "::1" if "::1" in (outcome.error_message or "") else address
    assert_forbidden(outcome, host, address)
    assert allowed_server.hits == ["/redirect"]
    assert connects.calls == [("127.0.0.2", allowed_server.port)]
    assert victim.hits == []


def test_a_redirect_between_allowed_addresses_is_followed(allowed_server: Server) -> None:
    url = allowed_server.url(f"/redirect?to={allowed_server.url('/ok')}")

    outcome = run(get(url), EgressPolicy.allowing("127.0.0.2/32"))

    assert outcome.exit_code == "200"
    assert allowed_server.hits == ["/redirect", "/ok"]


# -- DNS rebinding: the address checked is the address connected to -----------------------------------


class RebindingResolver:
    """Answers a public address the first time, loopback afterwards (a rebinding attacker's DNS)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        answer = PUBLIC if len(self.calls) == 1 else "127.0.0.1"
        return [ipaddress.ip_address(answer)]


def test_dns_rebinding_cannot_reach_loopback(allowed_server: Server, victim: Server) -> None:
    resolver = RebindingResolver()
    # The "public" host is played by the allowed loopback server; nothing connects to PUBLIC itself.
    connects = Connects(routes={PUBLIC: ("127.0.0.2", allowed_server.port)})
    url = f"http://rebind.test:{victim.port}/ok"

    # The server closes each connection (HTTP/1.0), so the second URL opens a new one: resolved again.
    outcome = run(get(url, url), STRICT, resolve=resolver, connect=connects)

    # The first URL: one resolution, and the connection went to exactly the address checked.
    assert outcome.log.startswith(f"HTTP_GET {url} -> 200 (")
    assert allowed_server.hits == ["/ok"]
    # The second: the name now points at loopback, and the connection is refused before it is made.
    assert_forbidden(outcome, "rebind.test", "127.0.0.1")
    assert resolver.calls == ["rebind.test", "rebind.test"]
    assert connects.calls == [(PUBLIC, victim.port)]
    assert victim.hits == []


def test_only_the_permitted_answers_of_a_name_are_connected_to(
    allowed_server: Server, victim: Server
) -> None:
    def mixed(host: str, port: int) -> list[IPAddress]:
        return [
            ipaddress.ip_address("127.0.0.1"),
            ipaddress.ip_address("169.254.169.254"),
            ipaddress.ip_address(PUBLIC),
        ]

    connects = Connects(routes={PUBLIC: ("127.0.0.2", allowed_server.port)})

    outcome = run(get(f"http://mixed.test:{victim.port}/ok"), STRICT, resolve=mixed, connect=connects)

    assert outcome.exit_code == "200"
    assert connects.calls == [(PUBLIC, victim.port)]
    assert victim.hits == []


class TlsProbe(httpcore.NetworkStream):
    """A connected stream that records how TLS is started on it, then refuses the handshake."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self.stream = stream
        self.started: list[tuple[str | None, ssl.SSLContext]] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, timeout)

    def close(self) -> None:
        self.stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        self.started.append((server_hostname, ssl_context))
        raise httpcore.ConnectError("test: no handshake")


def test_https_keeps_the_url_host_name_for_sni_and_verification(allowed_server: Server) -> None:
    """The connection goes to the checked address; TLS starts on it with the URL's host name."""
    connects = Connects(routes={PUBLIC: ("127.0.0.2", allowed_server.port)})
    probes: list[TlsProbe] = []

    def probed(address: str, port: int, **kwargs: Any) -> httpcore.NetworkStream:
        probes.append(TlsProbe(connects(address, port, **kwargs)))
        return probes[-1]

    def public(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(PUBLIC)]

    outcome = run(get("https://tls.test/ok"), STRICT, resolve=public, connect=probed)

    assert connects.calls == [(PUBLIC, 443)]
    [(server_hostname, context)] = probes[0].started
    assert server_hostname == "tls.test"
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert outcome.error_code == ERR_HTTP_CONNECTION
    assert allowed_server.hits == []


# -- the setting, the attempt adapter, `formica dev` ---------------------------------------------------


def attempt_scope(**settings: Any) -> AttemptScope:
    values = FormicaSettings.model_validate({"table_name": "t", "bucket_name": "b", **settings})
    return cast(AttemptScope, SimpleNamespace(runtime=SimpleNamespace(settings=values)))


@pytest.fixture
def fresh_shared_clients() -> Iterator[Callable[[], None]]:
    yield shared_client.cache_clear
    shared_client.cache_clear()


def test_http_attempts_follow_the_setting(
    allowed_server: Server, victim: Server, fresh_shared_clients: Callable[[], None]
) -> None:
    ctx = make_context()
    unset = run_http_attempt(get(victim.url("/ok")), ctx, attempt_scope())
    listed = attempt_scope(http_allowed_networks="127.0.0.2/32")
    reached = run_http_attempt(get(allowed_server.url("/ok")), ctx, listed)
    still_refused = run_http_attempt(get(victim.url("/ok")), ctx, listed)

    assert_forbidden(unset, "127.0.0.1", "127.0.0.1")
    assert reached.exit_code == "200"
    assert_forbidden(still_refused, "127.0.0.1", "127.0.0.1")
    assert victim.hits == []


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORMICA_TABLE_NAME", "t")
    monkeypatch.setenv("FORMICA_BUCKET_NAME", "b")
    monkeypatch.delenv("FORMICA_HTTP_ALLOWED_NETWORKS", raising=False)
    reset_settings()
    try:
        assert get_settings().http_allowed_networks == ()
        monkeypatch.setenv("FORMICA_HTTP_ALLOWED_NETWORKS", "10.0.0.0/8, fd00::/8,127.0.0.2")
        reset_settings()
        assert [str(net) for net in get_settings().http_allowed_networks] == [
            "10.0.0.0/8",
            "fd00::/8",
            "127.0.0.2/32",
        ]
        monkeypatch.setenv("FORMICA_HTTP_ALLOWED_NETWORKS", "10.0.0.1/8")
        reset_settings()
        with pytest.raises(SettingsError, match="FORMICA_HTTP_ALLOWED_NETWORKS"):
            get_settings()
    finally:
        reset_settings()


def test_formica_dev_allows_loopback_unless_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    monkeypatch.delenv("FORMICA_HTTP_ALLOWED_NETWORKS", raising=False)
    assert egress_environment(strict=False) == {"FORMICA_HTTP_ALLOWED_NETWORKS": ",".join(LOOPBACK_NETWORKS)}
    assert egress_environment(strict=True) == {}
    monkeypatch.setenv("FORMICA_HTTP_ALLOWED_NETWORKS", "10.0.0.0/8")
    assert egress_environment(strict=True) == {"FORMICA_HTTP_ALLOWED_NETWORKS": "10.0.0.0/8"}
    assert egress_environment(strict=False) == {
        "FORMICA_HTTP_ALLOWED_NETWORKS": "10.0.0.0/8," + ",".join(LOOPBACK_NETWORKS)
    }

    parser = argparse.ArgumentParser()
    add_dev_arguments(parser)
    assert parser.parse_args([]).strict_egress is False
    assert parser.parse_args(["--strict-egress"]).strict_egress is True
