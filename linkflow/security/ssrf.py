"""The SSRF guard: outgoing HTTP from nodes reaches only public addresses.

A workflow author chooses the URLs a node requests, so without a guard any
author could read the cloud metadata service (169.254.169.254), the database
next to the worker, or an admin page on loopback. The guard sits where the
connection is made, not where the URL is read:

- `GuardedBackend` is an httpcore network backend. Its `connect_tcp` resolves
  the host once, refuses the connection if any resolved address is not public,
  and connects to the vetted address itself. Nothing resolves the name again,
  so a DNS answer that changes between check and use (DNS rebinding) cannot
  slip a private address in. Every connection passes through it, so every
  redirect hop is checked too. TLS still verifies the certificate against the
  host name, and SNI and the Host header carry the name, because httpcore
  takes them from the URL, not from the address it was handed.
- `GuardedTransport` refuses any scheme but http and https before a request
  leaves (httpcore alone would accept ws and wss).
- `guarded_client` builds the process's shared, pooled client. It never uses a
  proxy from the environment: a proxy would make the connection for us, past
  the guard.

A refusal raises `BlockedRequest`, a non-retryable `NodeError`, so any node
that uses `ctx.http()` fails with a message the user can act on.

- `HostGuard` applies the same policy to connections that are not HTTP (the
  database, SMTP and Redis integrations): it hands back the vetted addresses,
  and the node connects to one of them rather than to the name.

`allow_private=True` (LINKFLOW_HTTP_ALLOW_PRIVATE) turns the address check off
for trusted, self-hosted set-ups; the scheme check stays. `allowed_networks`
lets specific networks through while everything else stays refused; tests use
it to allow 127.0.0.2 and still refuse 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import httpcore
import httpx

from linkflow.nodes.sdk import NodeError

__all__ = [
    "AddressPolicy",
    "BlockedRequest",
    "GuardedBackend",
    "GuardedTransport",
    "HostGuard",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "guarded_client",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`(host, port) -> addresses`: how the guard turns a host name into IP addresses."""

ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
ALLOW_HINT: Final = "set LINKFLOW_HTTP_ALLOW_PRIVATE=true to allow it"

# RFC 6598 carrier-grade NAT space: not "private" to Python, but not the internet either.
_SHARED_ADDRESS_SPACE: Final = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL: Final = ipaddress.IPv6Network("fc00::/7")
# RFC 6052 NAT64 prefix: the last 32 bits are an IPv4 address a translator connects to.
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")

# The defaults a worker needs: generous pooling, and a bound on redirect chains.
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_MAX_CONNECTIONS: Final = 100
DEFAULT_MAX_KEEPALIVE: Final = 20
DEFAULT_MAX_REDIRECTS: Final = 10
DEFAULT_LIMITS: Final = httpx.Limits(
    max_connections=DEFAULT_MAX_CONNECTIONS, max_keepalive_connections=DEFAULT_MAX_KEEPALIVE
)


class BlockedRequest(NodeError):
    """The guard refused a request: its scheme, or an address its host resolves to.

    Never retryable: the same URL will be refused again.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


# --- the address policy ------------------------------------------------------


def _translated_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a connection to `address` really reaches: IPv4-mapped
    (`::ffff:a.b.c.d`, the socket layer connects over IPv4) or NAT64 (a translator does)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _tunnelled_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 endpoint a 6to4 or Teredo address carries, if any."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _kind(address: IPAddress) -> str | None:
    """Why the address is not a public unicast address; None when it is one.

    Checked in this order so that the message names the most specific reason
    (169.254.169.254 is "link-local", not just "private").
    """
    if address.is_unspecified:
        return "unspecified address"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local, e.g. cloud metadata"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL:
        return "unique-local network"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return "shared address space"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private network"
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses outgoing requests may connect to.

    `allow_private` allows every address. Otherwise an address must be public
    unicast, or lie in one of `allowed_networks` (an explicit exception, e.g. a
    partner's VPN range, or 127.0.0.2 in tests).
    """

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` is refused (a short reason), or None when it is allowed."""
        if self.allow_private or any(address in net for net in self.allowed_networks):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            translated = _translated_ipv4(address)
            if translated is not None:
                inner = self.refusal(translated)
                return f"{inner}, as {translated} in IPv6 form" if inner else None
            tunnelled = _tunnelled_ipv4(address)
            inner = self.refusal(tunnelled) if tunnelled is not None else None
            if inner:
                return f"{inner}, as {tunnelled} tunnelled in IPv6"
        return _kind(address)


def _parse_address(text: str) -> IPAddress:
    # getaddrinfo may append an IPv6 zone ("fe80::1%eth0"); the zone is not part of the address.
    return ipaddress.ip_address(text.split("%", 1)[0])


def _describe_host(host: str, address: IPAddress) -> str:
    try:
        literal = _parse_address(host.strip("[]"))
    except ValueError:
        return f"the address {address} of {host!r}"
    return f"the address {literal}"


# --- resolution and connection --------------------------------------------


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The operating system's resolver (getaddrinfo), run off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, vets, and connects to the vetted address (see the module docstring)."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver: Resolver = resolver or system_resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def resolve(
        self, host: str, port: int, *, timeout_s: float | None = None
    ) -> list[IPAddress]:
        """The addresses `host` resolves to, all of them vetted; raises `BlockedRequest`."""
        try:
            answers: Sequence[str] = [str(_parse_address(host))]
        except ValueError:
            answers = await self._lookup(host, port, timeout_s)
        addresses: list[IPAddress] = []
        for answer in answers:
            address = _parse_address(answer)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise httpcore.ConnectError(f"{host!r} resolves to no address")
        # One refused address refuses the host: a name that mixes public and private
        # answers is either misconfigured or an attack, and which one we would pick is luck.
        for address in addresses:
            reason = self._policy.refusal(address)
            if reason is not None:
                raise BlockedRequest(
                    f"{_describe_host(host, address)} is not allowed ({reason}); {ALLOW_HINT}"
                )
        return addresses

    async def _lookup(self, host: str, port: int, timeout_s: float | None) -> Sequence[str]:
        try:
            async with asyncio.timeout(timeout_s):
                return await self._resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {error}") from None

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.resolve(host, port, timeout_s=timeout)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout,
                    local_address=local_address, socket_options=socket_options,
                )  # fmt: skip
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # addresses is never empty
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedRequest("requests over Unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class HostGuard:
    """The SDK's `AddressGuard`: `GuardedBackend.resolve` with node errors only.

    A refused address is `BlockedRequest` (not retryable); a name that does not
    resolve, or not in time, is a retryable `NodeError` (DNS may come back).
    """

    def __init__(self, policy: AddressPolicy, *, resolver: Resolver | None = None) -> None:
        self._backend = GuardedBackend(policy, resolver=resolver)

    async def resolve(self, host: str, port: int, *, timeout_s: float) -> list[str]:
        try:
            addresses = await self._backend.resolve(host, port, timeout_s=timeout_s)
        except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
            raise NodeError(str(error) or f"cannot resolve {host!r}", retryable=True) from None
        return [str(address) for address in addresses]


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with its connections made by a `GuardedBackend`."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(verify=verify, limits=limits)
        # httpx builds its pool with the default backend and has no parameter for
        # another one, so the pool is rebuilt with the same settings and ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, resolver=resolver),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if scheme not in ALLOWED_SCHEMES:
            # httpx turns a URL without a host ("file:///etc/passwd") into a bare path.
            shown = f"scheme {scheme}://" if scheme else f"{str(request.url)[:200]!r}"
            raise BlockedRequest(
                f"the URL {shown} is not allowed; only http:// and https:// URLs are"
            )
        return await super().handle_async_request(request)


def guarded_client(
    *,
    allow_private: bool,
    allowed_networks: Iterable[str | IPNetwork] = (),
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_keepalive_connections: int = DEFAULT_MAX_KEEPALIVE,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    user_agent: str = "LinkFlow",
) -> httpx.AsyncClient:
    """A pooled `httpx.AsyncClient` whose every connection passes the SSRF guard.

    Build one per process (the wiring keeps it) and close it with `aclose()` at
    shutdown. `allowed_networks` are CIDR strings or networks let through even
    when `allow_private` is false; `resolver` replaces the system resolver
    (tests); `verify` is True, False or an `ssl.SSLContext`. Requests do not
    follow redirects unless asked (`follow_redirects=True` per request); each
    followed hop is checked like the first.
    """
    policy = AddressPolicy(
        allow_private=allow_private,
        allowed_networks=tuple(ipaddress.ip_network(net) for net in allowed_networks),
    )
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_keepalive_connections
    )
    transport = GuardedTransport(policy, resolver=resolver, verify=verify, limits=limits)
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout_s,
        max_redirects=max_redirects,
        # Environment proxies and .netrc credentials are not for workflow requests.
        trust_env=False,
        headers={"User-Agent": user_agent},
    )
