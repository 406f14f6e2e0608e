"""The client's address behind trusted proxies (salas.engine.forwarded), unit and live."""

from __future__ import annotations

import asyncio

import pytest

from salas.engine import EngineConfig
from salas.engine.forwarded import TrustedProxies, parse_forwarded_allow_ips


def test_parse_forwarded_allow_ips() -> None:
    """A comma list or a sequence, trimmed, empty items dropped."""
    assert parse_forwarded_allow_ips(None) == ()
    assert parse_forwarded_allow_ips(" 10.0.0.1, ,10.1.0.0/16 ") == ("10.0.0.1", "10.1.0.0/16")
    assert parse_forwarded_allow_ips(["*"]) == ("*",)


def test_bad_item_refused() -> None:
    """An item that is no IP, network or "*" is a ValueError naming it."""
    with pytest.raises(ValueError, match=r"proxy\.example"):
        TrustedProxies(["proxy.example"])
    with pytest.raises(ValueError, match="forwarded_allow_ips"):
        EngineConfig(forwarded_allow_ips=("10.0.0.1", "nope"))


def test_untrusted_peer_is_the_client_whatever_it_sends() -> None:
    """X-Forwarded-For from a peer not trusted is ignored (no spoofing the limit)."""
    proxies = TrustedProxies(["10.0.0.1"])
    assert proxies.client_address("198.51.100.7", "1.2.3.4") == "198.51.100.7"
    assert TrustedProxies([]).client_address("127.0.0.1", "1.2.3.4") == "127.0.0.1"


def test_rightmost_untrusted_hop_is_the_client() -> None:
    """Each proxy appends: the right-most address not itself trusted is the client; a
    forged left-most entry does not win."""
    proxies = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])
    assert proxies.client_address("10.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2") == "203.0.113.9"
    assert proxies.client_address("10.0.0.1", "203.0.113.9") == "203.0.113.9"
    assert proxies.client_address("2001:db8::1", "2001:db9::5") == "2001:db9::5"
    assert proxies.client_address("10.0.0.1", "10.0.0.3, 10.0.0.2") == "10.0.0.3"
    assert proxies.client_address("10.0.0.1", " , ") == "10.0.0.1"
    assert proxies.trusts("::ffff:10.1.2.3")  # IPv4-mapped peers of a dual-stack socket


def test_wildcard_trusts_everyone_and_takes_leftmost() -> None:
    """With "*" every hop is trusted and the left-most is the client (uvicorn's rule)."""
    proxies = TrustedProxies(["*"])
    assert proxies.client_address("198.51.100.7", "203.0.113.9, 10.0.0.2") == "203.0.113.9"
    assert len(proxies.client_address("1.1.1.1", "x" * 10_000)) <= 64


async def _raw(port: int, xff: str, local: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))
    head = f"GET /who HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {xff}\r\nConnection: close"
    writer.write(head.encode() + b"\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()


def _who(request) -> None:
    request.respond(200, f"{request.client_address} {request.remote_address}".encode())


async def test_client_address_from_trusted_proxy_only(engine) -> None:
    """request.client_address follows X-Forwarded-For only when the peer is trusted."""
    trusted = await engine(fallback=_who, forwarded_allow_ips=("127.0.0.1",))
    assert (await _raw(trusted.port, "203.0.113.9")).endswith(b"203.0.113.9 127.0.0.1")
    untrusted = await engine(fallback=_who)
    assert (await _raw(untrusted.port, "203.0.113.9")).endswith(b"127.0.0.1 127.0.0.1")


async def test_proxy_connections_counted_per_forwarded_client(engine, until) -> None:
    """Behind a trusted proxy the per-address limit applies to each forwarded client, not to
    the proxy: one client over its limit gets 429 while another still gets in."""
    h = await engine(
        fallback=lambda r: r.respond(200, b"ok"),
        forwarded_allow_ips=("127.0.0.1",),
        max_connections_per_ip=2,
    )
    held = []
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n")
        held.append((reader, writer))
    for reader, _ in held:
        assert (await asyncio.wait_for(reader.readuntil(b"ok"), 3)).startswith(b"HTTP/1.1 200")
    assert h.server.limits.count("203.0.113.9") == 2
    assert h.server.limits.count("127.0.0.1") == 0  # the proxy itself is not limited
    assert (await _raw(h.port, "203.0.113.9")).startswith(b"HTTP/1.1 429 ")
    assert (await _raw(h.port, "203.0.113.10")).startswith(b"HTTP/1.1 200 ")
    for _, writer in held:
        writer.close()
    await until(lambda: h.server.limits.total == 0)
    assert h.server.limits.count("203.0.113.9") == 0
