"""Which addresses the app may connect to, and an HTTP transport that obeys it.

Operators name URLs (feeds today, webhooks next) that the server then fetches
from inside its own network: without a guard, a URL of ``127.0.0.1:5432``,
``169.254.169.254`` or a name that resolves there reaches what only the server
can reach. The rule, as Mastodon's ``Request::Socket`` and Miniflux's fetcher
apply it: only globally routable unicast addresses, unless the operator's
allow list (``MAILER_FEED_ALLOW_NETWORKS``) names the network. It is checked
where the socket is opened: every address a name resolves to, on every
connection (so on every redirect hop), and the connection goes to the very
address that was checked, so a second DNS answer (rebinding) is never used.
TLS still verifies the host name (httpcore passes it as the server name).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

import anyio
import httpcore
import httpx

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052 and 8215).
_NAT64 = (IPv6Network("64:ff9b::/96"), IPv6Network("64:ff9b:1::/48"))
# Not globally reachable (IANA special-purpose registries), yet is_global in some Python 3.11 releases.
_NOT_PUBLIC = (IPv4Network("192.0.0.0/24"), IPv6Network("3fff::/20"), IPv6Network("5f00::/16"))


class GuardError(Exception):
    """A connection the guard did not open; ``str()`` is one line for the operator."""


class RefusedAddress(GuardError):
    """``host`` is (or resolves to) ``address``, which is not public and not allowed."""

    def __init__(self, host: str, address: IPAddress, setting: str) -> None:
        self.host, self.address, self.setting = host, address, setting
        named = str(address) if _same(host, address) else f"{host} ({address})"
        super().__init__(f"refused: {named} is not a public address ({setting})")


class UnresolvedHost(GuardError):
    """``host`` has no address (no such name, or DNS failed)."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(f"could not resolve {host}")


def parse_networks(value: str | Iterable[str | Network]) -> tuple[Network, ...]:
    """Networks from CIDR text (separated by whitespace or commas) or a list; ValueError names a bad one.

    A bare address is its own /32 (/128); host bits under the mask are an error,
    not rounded away, so that a typo cannot widen what is allowed unnoticed.
    """
    items = re.split(r"[\s,]+", value) if isinstance(value, str) else list(value)
    networks: list[Network] = []
    for item in items:
        if isinstance(item, IPv4Network | IPv6Network):
            networks.append(item)
            continue
        if not item:
            continue
        try:
            networks.append(ip_network(item))
        except ValueError:
            try:
                wide = ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not a network: expected CIDR such as 10.1.2.0/24 or fd00::/8") from None
            raise ValueError(f"{item!r} has bits set beyond its mask: did you mean {wide}?") from None
    return tuple(networks)


def embedded_ipv4(address: IPAddress) -> IPv4Address | None:
    """The IPv4 address inside an IPv6 one (IPv4-mapped, 6to4, NAT64), or None."""
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in _NAT64):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses; an IPv4 one inside IPv6 is judged by itself.

    An IPv4-mapped or NAT64 address reaches its IPv4 address; a 6to4 one must
    be public on both counts.
    """
    if isinstance(address, IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None and address.sixtofour is None:
            return is_public(inner)
        if inner is not None and not is_public(inner):
            return False
    if any(address in network for network in _NOT_PUBLIC):
        return False
    special = (address.is_multicast or address.is_reserved or address.is_unspecified or address.is_loopback
               or address.is_link_local or address.is_private)
    if isinstance(address, IPv6Address):
        special = special or address.is_site_local  # fec0::/10: deprecated, still not public
    return address.is_global and not special


def permits(address: IPAddress, allowed: Sequence[Network]) -> bool:
    """May the app connect to ``address``: public, or inside a network of ``allowed``."""
    if is_public(address):
        return True
    candidates = [address, embedded_ipv4(address)]
    return any(candidate in network for candidate in candidates if candidate is not None for network in allowed)


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one (brackets of an IPv6 literal allowed), else None."""
    try:
        return ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (the tests patch this to play DNS tricks)."""
    try:
        answers = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnresolvedHost(host) from None
    return _addresses(answers)


def resolve_sync(host: str, port: int) -> list[IPAddress]:
    """``resolve`` for synchronous clients."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnresolvedHost(host) from None
    return _addresses(answers)


def checked_addresses(host: str, addresses: Sequence[IPAddress], allowed: Sequence[Network],
                      setting: str) -> list[IPAddress]:
    """``addresses`` if every one is permitted; RefusedAddress names the first that is not.

    Every answer counts, not only the one that would be tried first: a name
    that mixes a public and an internal address is refused, as Mastodon does.
    """
    if not addresses:
        raise UnresolvedHost(host)
    for address in addresses:
        if not permits(address, allowed):
            raise RefusedAddress(host, address, setting)
    return list(dict.fromkeys(addresses))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to permitted, pinned addresses."""

    def __init__(self, allowed: Sequence[Network], setting: str) -> None:
        self.allowed, self.setting = tuple(allowed), setting
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        """Resolve ``host`` once, check every answer, connect to the checked addresses in turn."""
        literal = literal_address(host)
        found = [literal] if literal is not None else await resolve(host, port)
        error: Exception | None = None
        for address in checked_addresses(host, found, self.allowed, self.setting):
            try:
                return await self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc  # the next address of the name, as a browser would
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        """No Unix sockets: a URL never names one."""
        raise httpcore.ConnectError("unix sockets are not used by guarded clients")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedSyncBackend(httpcore.NetworkBackend):
    """``GuardedBackend`` for synchronous clients (outgoing webhooks)."""

    def __init__(self, allowed: Sequence[Network], setting: str) -> None:
        self.allowed, self.setting = tuple(allowed), setting
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        """Resolve ``host`` once, check every answer, connect to the checked addresses in turn."""
        literal = literal_address(host)
        found = [literal] if literal is not None else resolve_sync(host, port)
        error: Exception | None = None
        for address in checked_addresses(host, found, self.allowed, self.setting):
            try:
                return self.inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        """No Unix sockets: a URL never names one."""
        raise httpcore.ConnectError("unix sockets are not used by guarded clients")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def guarded_transport(allowed: Sequence[Network], setting: str, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through ``GuardedBackend``; no proxy from the environment."""
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    # httpx offers no network_backend argument: the pool it built is replaced
    # by the same pool on the guarded backend (tests/feeds/test_netguard.py
    # fails at once if a new httpx stops reading this attribute).
    transport._pool = httpcore.AsyncConnectionPool(
        network_backend=GuardedBackend(allowed, setting), **_pool_settings(limits))
    return transport


def guarded_sync_transport(allowed: Sequence[Network], setting: str,
                           limits: httpx.Limits | None = None) -> httpx.HTTPTransport:
    """``guarded_transport`` for ``httpx.Client``."""
    limits = limits or httpx.Limits()
    transport = httpx.HTTPTransport(limits=limits, trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        network_backend=GuardedSyncBackend(allowed, setting), **_pool_settings(limits))
    return transport


def _pool_settings(limits: httpx.Limits) -> dict[str, Any]:
    """What httpx itself gives its connection pool, without proxies from the environment."""
    return {
        "ssl_context": httpx.create_ssl_context(trust_env=False),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


def _addresses(answers: Iterable[tuple[Any, ...]]) -> list[IPAddress]:
    """The addresses of getaddrinfo's answers, in its order, once each."""
    found: list[IPAddress] = []
    for *_rest, sockaddr in answers:
        found.append(ip_address(str(sockaddr[0])))  # a scope (fe80::1%eth0) is kept
    return list(dict.fromkeys(found))


def _same(host: str, address: IPAddress) -> bool:
    """True when ``host`` is the literal ``address`` itself."""
    return literal_address(host) == address
