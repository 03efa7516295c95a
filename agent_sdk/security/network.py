"""Client addresses and IP allowlists.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only when the
direct peer is one of our own proxies (``AGENT_SDK_TRUSTED_PROXIES``). Each proxy appends the
address it saw, so the list is read from the right: past our proxies, the first address is the
one our outermost proxy saw, and everything to its left is the client's word, never trusted.

IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``, what a dual-stack socket reports for an IPv4
client) are compared as the IPv4 address they carry, in addresses and in CIDRs alike.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from agent_sdk.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_ip(text: str | None) -> IPAddress | None:
    """An address as peers and proxies write it (``1.2.3.4``, ``1.2.3.4:5678``, ``::1``,
    ``[::1]:443``), IPv4-mapped ones as IPv4; None when it is not an address (``unknown``,
    a host name, garbage)."""
    if not text:
        return None
    text = text.strip()
    port: str | None = None
    if text.startswith("["):  # [v6] or [v6]:port
        text, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    elif text.count(":") == 1:  # v4:port (a bare v6 has at least two colons)
        text, _, port = text.partition(":")
    if port is not None and not (port.isascii() and port.isdigit()):
        return None
    try:
        return _unmap(ipaddress.ip_address(text))
    except ValueError:
        return None


def _network(entry: str) -> IPNetwork:
    try:
        # strict: "10.0.0.5/24" is refused rather than guessed as 10.0.0.0/24 or 10.0.0.5/32.
        net = ipaddress.ip_network(entry.strip(), strict=True)
    except ValueError as exc:
        raise InvalidInput(
            f"invalid IP network {entry!r}: {exc}",
            hint="use an address or a CIDR such as 10.0.0.0/8 or 2001:db8::/32",
        ) from None
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_MAPPED):
        # ::ffff:10.0.0.0/104 is 10.0.0.0/8: store it the way addresses are compared.
        v4 = ipaddress.IPv4Address(int(net.network_address) & 0xFFFFFFFF)
        return ipaddress.IPv4Network((v4, net.prefixlen - 96))
    return net


@functools.lru_cache(maxsize=1024)
def _parse_cached(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(_network(e) for e in entries if e.strip())


def parse_cidrs(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Networks from CIDRs or bare addresses (IPv4 and IPv6); blank entries are skipped.
    Raises :class:`InvalidInput` naming the first bad entry. Parsed lists are cached, since the
    same allowlists come back on every request."""
    return _parse_cached(tuple(entries))


def _in_any(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    # `in` across versions is simply False, so mixed lists need no special case.
    return any(ip in net for net in networks)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[str]
) -> str | None:
    """The client's address: the direct ``peer``, unless the peer is a trusted proxy, in which
    case ``forwarded_for`` (every X-Forwarded-For value, joined with commas) is walked from the
    right past trusted proxies to the first untrusted address. A malformed entry ends the walk
    at the last good address, since nothing left of it can be attributed to a proxy of ours.
    Returns None without a peer; an unparseable peer (e.g. a test client's name) is returned
    as given, which no allowlist matches."""
    peer_ip = parse_ip(peer)
    if peer_ip is None:
        return peer
    proxies = parse_cidrs(trusted_proxies)
    if not forwarded_for or not _in_any(peer_ip, proxies):
        return str(peer_ip)
    last_good = peer_ip
    for entry in reversed(forwarded_for.split(",")):
        ip = parse_ip(entry)
        if ip is None:
            break
        last_good = ip
        if not _in_any(ip, proxies):
            break
    return str(last_good)


def ip_allowed(ip: str | None, allowlist: Sequence[str]) -> bool:
    """True when ``allowlist`` is empty (no restriction) or ``ip`` is in one of its networks.
    An unknown or unparseable address never matches a non-empty list."""
    networks = parse_cidrs(allowlist)
    if not networks:
        return True
    addr = parse_ip(ip)
    return addr is not None and _in_any(addr, networks)


__all__ = ["client_ip", "ip_allowed", "parse_cidrs", "parse_ip"]
