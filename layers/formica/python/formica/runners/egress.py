"""The egress guard of HTTP tasks: which addresses a task's URL may reach.

Job definitions are untrusted and HTTP tasks fetch the URLs tenants write, from inside the stack: in
Lambda, 127.0.0.1:9001 is the runtime API and 169.254.169.254 / 169.254.170.2 hand out credentials;
in `formica dev`, moto and the API itself listen on loopback. So an HTTP task may call public
addresses only, plus the networks an operator lists (``FORMICA_HTTP_ALLOWED_NETWORKS``, CDK context
``http_allowed_networks``). Refused: loopback, private (RFC 1918, RFC 4193 ``fc00::/7``), shared
address space (CGNAT ``100.64.0.0/10``), link-local, multicast, unspecified and reserved addresses,
the same addresses written as IPv4-mapped, NAT64 or 6to4 IPv6, and the cloud's metadata and
credentials endpoints (which a listed network opens only when it names that single address).

The check is made on the address actually connected to: ``GuardedBackend`` is httpcore's network
backend for the HTTP runner's client, and its ``connect_tcp`` resolves the host once, keeps the
permitted candidates, and connects to exactly those addresses (never to the name, which the system
would resolve again: no DNS-rebinding gap). TLS is untouched: httpcore starts it on the connected
socket with the URL's host name for SNI and certificate verification. Every redirect hop opens its
connection through the same backend, so each hop is checked. A refusal raises ``ForbiddenAddress``
(an ``httpcore.ConnectError``) before any connection is made.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

Resolver = Callable[[str, int], Sequence[IPAddress]]
"""``(host, port) -> candidate addresses``, in the order to try them."""
Connector = Callable[..., httpcore.NetworkStream]
"""``(address, port, *, timeout, local_address, socket_options) -> stream``: one TCP connection to
an address literal (``httpcore.SyncBackend().connect_tcp`` by default)."""

LOOPBACK = "loopback"
PRIVATE = "private"
SHARED = "shared address space (CGNAT)"
LINK_LOCAL = "link-local"
METADATA = "cloud metadata or credentials endpoint"
MULTICAST = "multicast"
UNSPECIFIED = "unspecified"
RESERVED = "reserved"


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# The instance metadata service (IMDS, IPv4 and IPv6), the ECS / Lambda container credentials
# endpoint, EKS Pod Identity's agent, and the Amazon Time Sync and DNS link-local addresses.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "169.254.169.123",
        "169.254.169.253",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "fd00:ec2::123",
        "fd00:ec2::253",
    )
)

# (networks, what they are), first match wins. Written out rather than taken from ipaddress's
# is_private / is_global, whose tables changed between Python releases.
_CLASSES: tuple[tuple[tuple[IPNetwork, ...], str], ...] = (
    (_networks("127.0.0.0/8", "::1/128"), LOOPBACK),
    (_networks("0.0.0.0/8", "::/128"), UNSPECIFIED),
    (_networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"), PRIVATE),
    (_networks("100.64.0.0/10"), SHARED),
    (_networks("169.254.0.0/16", "fe80::/10"), LINK_LOCAL),
    (_networks("224.0.0.0/4", "ff00::/8"), MULTICAST),
    (
        _networks(
            "192.0.0.0/24",  # IETF protocol assignments
            "192.0.2.0/24",  # documentation
            "192.88.99.0/24",  # 6to4 relay anycast
            "198.18.0.0/15",  # benchmarking
            "198.51.100.0/24",  # documentation
            "203.0.113.0/24",  # documentation
            "240.0.0.0/4",  # reserved, and the limited broadcast 255.255.255.255
            "::/8",  # IPv4-compatible and other reserved forms (IPv4-mapped is read before)
            "64:ff9b:1::/48",  # local-use NAT64
            "100::/64",  # discard-only
            "2001::/23",  # IETF protocol assignments (Teredo among them)
            "2001:db8::/32",  # documentation
            "3fff::/20",  # documentation
            "fec0::/10",  # site-local (deprecated)
        ),
        RESERVED,
    ),
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (``::ffff:a.b.c.d``), NAT64
    (``64:ff9b::a.b.c.d``) or 6to4 (``2002:AABB:CCDD::``); None for anything else."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def classify(address: IPAddress) -> str | None:
    """What kind of non-public address this is (``LOOPBACK``, ``PRIVATE``, ``METADATA``, ...), or
    None for a public address. An IPv6 form of an IPv4 address is classified as that IPv4 address."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return classify(inner)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(int(address))  # fe80::1%eth0 is fe80::1
    if address in METADATA_ADDRESSES:
        return METADATA
    for networks, kind in _CLASSES:
        if any(address in network for network in networks):
            return kind
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return RESERVED
    return None


def parse_networks(text: str | Iterable[str] | None) -> tuple[IPNetwork, ...]:
    """CIDRs, comma-separated or as a list (``"10.0.0.0/8, fd00::/8"``); a bare address is a /32 or
    /128. Raises ValueError naming a malformed entry (host bits set, as in ``10.0.0.1/8``, included)."""
    if text is None:
        return ()
    parts = text.split(",") if isinstance(text, str) else list(text)
    networks = []
    for part in parts:
        entry = str(part).strip()
        if entry:
            networks.append(ipaddress.ip_network(entry))
    return tuple(networks)


@dataclass(frozen=True)
class EgressPolicy:
    """Public addresses, plus the ``allowed`` networks. The default (nothing allowed) is AWS's rule."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: str | Iterable[str] | None) -> EgressPolicy:
        """A policy opening ``networks``: CIDRs, comma-separated or as a list (``parse_networks``)."""
        return cls(parse_networks(networks))

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be called (its class), or None when it may."""
        kind = classify(address)
        if kind is None:
            return None
        inner = embedded_ipv4(address)
        forms = (address,) if inner is None else (address, inner)
        for network in self.allowed:
            if kind == METADATA and network.num_addresses != 1:
                continue  # a credentials endpoint opens only when named as that single address
            if any(form in network for form in forms):
                return None
        return kind


class ForbiddenAddress(httpcore.ConnectError):
    """A URL's host is, or resolves only to, addresses HTTP tasks may not call."""

    def __init__(self, host: str, address: IPAddress, kind: str) -> None:
        self.host = host
        self.address = address
        self.kind = kind
        shown = str(address)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            shown = f"::ffff:{address.ipv4_mapped}"  # as written, not ::ffff:7f00:1
        where = shown if host in (shown, str(address)) else f"{host} ({shown})"
        super().__init__(
            f"refused to connect to {where}: a {kind} address; HTTP tasks may call public addresses "
            "only, unless the deployment's allowed networks list it"
        )


def forbidden_cause(exc: BaseException) -> ForbiddenAddress | None:
    """The ``ForbiddenAddress`` behind an exception httpx raised (it wraps httpcore's), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ForbiddenAddress):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """The system resolver's addresses for ``host``, in its order, each once; a literal is itself."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in answers:
        address = ipaddress.ip_address(str(sockaddr[0]))
        if address not in addresses:
            addresses.append(address)
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend with the egress check: resolve once, check every candidate,
    connect to a permitted address (as a literal), never to the name."""

    def __init__(
        self, policy: EgressPolicy, *, resolve: Resolver | None = None, connect: Connector | None = None
    ) -> None:
        self.policy = policy
        self._resolve = resolve or resolve_host
        self._connect = connect or httpcore.SyncBackend().connect_tcp

    def permitted(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of ``host`` that may be called, in the resolver's order; raises
        ``ForbiddenAddress`` (naming the first refused address) when there is none."""
        candidates = list(self._resolve(host, port))
        if not candidates:
            raise httpcore.ConnectError(f"could not resolve {host}: no address")
        allowed: list[IPAddress] = []
        refused: tuple[IPAddress, str] | None = None
        for address in candidates:
            kind = self.policy.refusal(address)
            if kind is None:
                allowed.append(address)
            elif refused is None:
                refused = (address, kind)
        if not allowed and refused is not None:
            raise ForbiddenAddress(host, *refused)
        return allowed

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.permitted(host, port)
        end = None if timeout is None else time.monotonic() + timeout
        failure: Exception | None = None
        for address in addresses:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host} timed out")
            try:
                return self._connect(
                    str(address),
                    port,
                    timeout=left,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        if failure is None:  # permitted() returns at least one address; never reached
            raise httpcore.ConnectError(f"could not connect to {host}")
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("HTTP tasks do not connect to unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport (TLS verified, no proxies, default limits) over a ``GuardedBackend``."""

    def __init__(self, backend: GuardedBackend, *, limits: httpx.Limits | None = None) -> None:
        ssl_context = httpx.create_ssl_context(trust_env=False)
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx takes no network backend; its pool is the same one, built over the guarded backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
        self.backend = backend


def guarded_client(
    policy: EgressPolicy,
    *,
    max_redirects: int,
    resolve: Resolver | None = None,
    connect: Connector | None = None,
) -> httpx.Client:
    """An httpx client whose every connection, redirect hops included, passes the egress check."""
    transport = GuardedTransport(GuardedBackend(policy, resolve=resolve, connect=connect))
    return httpx.Client(
        transport=transport, follow_redirects=True, max_redirects=max_redirects, trust_env=False
    )
