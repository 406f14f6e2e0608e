"""The client's address behind trusted proxies: `X-Forwarded-For`, with uvicorn's semantics.

A peer in the trusted list (`forwarded_allow_ips`: IPs, CIDRs or ``"*"``) may name the
client in `X-Forwarded-For`; any other peer is the client itself, whatever it sends. Each
proxy appends the address it received from, so the client is the right-most address that is
not itself a trusted proxy; with ``"*"`` every hop is trusted and the left-most is taken.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedProxies", "parse_forwarded_allow_ips"]

_MAX_ADDRESS = 64
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_forwarded_allow_ips(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """A comma list (or a sequence) of IPs/CIDRs/``"*"`` as a tuple of trimmed items."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(item.strip() for item in items if item.strip())


class TrustedProxies:
    """Which peers are trusted proxies, and the client address they forward.

    Raises:
        ValueError: An item that is neither ``"*"`` nor an IP address or network.
    """

    __slots__ = ("_always", "_networks")

    def __init__(self, items: Iterable[str]) -> None:
        self._always = False
        networks: list[_Network] = []
        for item in items:
            text = item.strip()
            if text == "*":
                self._always = True
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(
                    f"forwarded_allow_ips: {item!r} is not an IP address, a network or '*'"
                ) from None
        self._networks = tuple(networks)

    def __bool__(self) -> bool:
        return self._always or bool(self._networks)

    def trusts(self, address: str) -> bool:
        """Whether `address` (a peer's IP) is a trusted proxy."""
        if self._always:
            return True
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self._networks)

    def client_address(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address for a request from `peer` with this `X-Forwarded-For`."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        # Capped: with "*" the left-most hop is whatever the client wrote, and it becomes a key
        # of the per-address connection count.
        hops = [hop.strip()[:_MAX_ADDRESS] for hop in forwarded_for.split(",") if hop.strip()]
        if not hops:
            return peer
        if self._always:
            return hops[0]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        # Every hop is a trusted proxy: the first one is as close to the client as is known.
        return hops[0]
