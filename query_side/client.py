"""Who the client is and how it reached us, believing proxies only when trusted.

`X-Forwarded-For` and `X-Forwarded-Proto` are anyone's to write, so they count
only when the peer of the TCP connection is in `VPSMON_TRUSTED_PROXIES`. The
client is then the rightmost address in `X-Forwarded-For` that is not itself
a trusted proxy: entries further left were written by the client and prove
nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from sanic import Request

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def parse_address(text: str) -> Address | None:
    """An address (IPv4-mapped IPv6 as IPv4), or None for anything else."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


def _peer(request: Request) -> Address | None:
    return parse_address(request.ip or "")


def _last_values(request: Request, header: str) -> list[str]:
    """Every comma-separated value of every occurrence of ``header``, in order."""
    return [
        value.strip()
        for line in request.headers.getall(header, [])
        for value in line.split(",")
        if value.strip()
    ]


def client_address(request: Request, trusted: Sequence[Network]) -> str:
    """The address to throttle logins by."""
    peer = _peer(request)
    client = peer
    if is_trusted(peer, trusted):
        for entry in reversed(_last_values(request, "x-forwarded-for")):
            hop = parse_address(entry)
            if hop is None:
                break  # a trusted proxy wrote garbage: keep the last hop we know
            client = hop
            if not is_trusted(hop, trusted):
                break
    return str(client) if client is not None else request.ip or "unknown"


def came_over_tls(request: Request, trusted: Sequence[Network]) -> bool:
    """TLS on this connection, or a trusted proxy says its client used https."""
    if request.conn_info is not None and request.conn_info.ssl:
        return True
    if not is_trusted(_peer(request), trusted):
        return False
    protos = _last_values(request, "x-forwarded-proto")
    return bool(protos) and protos[-1].lower() == "https"
