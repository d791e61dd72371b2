"""Who is calling: the client's address, trusting forwarded headers only from configured proxies.

Behind a reverse proxy every request comes from the proxy, and the client's address is in
X-Forwarded-For, which the client can also write itself. So the header is read only when the
peer is one of API_TRUSTED_PROXIES, and from the right: the nearest hops are our proxies, the
first address that is not one of them is the client (what it put further left is not believed).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(raw: str) -> Address | None:
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address  # ::ffff:127.0.0.1 on a dual-stack socket


@lru_cache(maxsize=16)
def networks(allowed: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(network, strict=False) for network in allowed)


def in_networks(address: Address, allowed) -> bool:
    return any(address in network for network in networks(tuple(allowed)))


def client_address(request) -> str:
    """The calling client's address, as far as we can know it (the peer's, unless a trusted proxy says)."""
    raw = request.META.get("REMOTE_ADDR", "")
    peer = parse_address(raw)
    if peer is None:
        return raw or "unknown"
    trusted = settings.API_TRUSTED_PROXIES
    if not trusted or not in_networks(peer, trusted):
        return str(peer)
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break  # garbage written by someone before our proxies: the last sane hop is the client
        client = address
        if not in_networks(address, trusted):
            break
    return str(client)


def client_ip(request) -> str | None:
    """`client_address` when it is an IP address, else None (a unix socket, a bare test request): what
    django-axes counts sign-in failures by and stores in its IP columns (PostgreSQL's inet refuses the rest)."""
    address = client_address(request)
    return address if parse_address(address) is not None else None
