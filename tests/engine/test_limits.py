"""Connection limits in total and per client address (salas.engine.limits), unit and live."""

from __future__ import annotations

import asyncio

import pytest

from salas.engine import EngineConfig
from salas.engine.limits import ConnectionLimits


def test_acquire_and_release_count_total_and_address() -> None:
    """Admitted connections are counted in total and per address, and released."""
    limits = ConnectionLimits(max_total=3, max_per_address=2)
    assert limits.acquire("10.0.0.1") is None
    assert limits.acquire("10.0.0.1") is None
    assert limits.acquire("10.0.0.1") == 429
    assert limits.count("10.0.0.1") == 2
    assert limits.acquire("10.0.0.2") is None
    assert limits.acquire("10.0.0.3") == 503
    assert limits.total == 3
    limits.release("10.0.0.1")
    assert limits.acquire("10.0.0.1") is None
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        limits.release(address)
    assert limits.total == 0
    assert limits.count("10.0.0.1") == 0


def test_zero_means_no_limit() -> None:
    """max 0 admits any number of connections, still counted."""
    limits = ConnectionLimits(0, 0)
    for _ in range(5000):
        assert limits.acquire("10.0.0.1") is None
    assert limits.total == 5000


def test_proxy_connection_counts_in_total_only_then_reattributed() -> None:
    """A trusted proxy's connection (address None) counts in the total, then moves to its
    client; a client at its limit is not moved."""
    limits = ConnectionLimits(0, 1)
    assert limits.acquire(None) is None
    assert limits.acquire(None) is None
    assert limits.reattribute(None, "203.0.113.5")
    assert limits.count("203.0.113.5") == 1
    assert not limits.reattribute(None, "203.0.113.5")
    assert limits.reattribute("203.0.113.5", "203.0.113.6")
    assert limits.count("203.0.113.5") == 0
    assert limits.count("203.0.113.6") == 1


def test_limits_validated() -> None:
    """Negative limits are refused; the defaults let an office behind one NAT in."""
    with pytest.raises(ValueError, match="max_connections"):
        EngineConfig(max_connections=-1)
    with pytest.raises(ValueError, match="max_connections_per_ip"):
        EngineConfig(max_connections_per_ip=-1)
    assert EngineConfig().max_connections_per_ip >= 500


async def _refused(port: int) -> bytes:
    """Connect, send a request, and read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        return await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()


async def test_over_per_address_limit_gets_429(engine, until) -> None:
    """Beyond max_connections_per_ip a new connection gets 429 and is closed; the ones
    already open keep working."""
    h = await engine(max_connections_per_ip=3)
    ws, sid = await h.ws_open()  # a websocket counts too
    held = [await asyncio.open_connection("127.0.0.1", h.port) for _ in range(2)]
    await until(lambda: h.server.limits.count("127.0.0.1") == 3)
    data = await _refused(h.port)
    assert data.startswith(b"HTTP/1.1 429 ")
    assert b"Connection: close" in data
    assert data.endswith(b"Too many open connections from this address\n")
    # The honest websocket client is unaffected.
    await ws.send("4hi")
    await until(lambda: h.messages[sid] == ["hi"])
    h.sessions[sid].send_message("there")
    assert await asyncio.wait_for(ws.recv(), 3) == "4there"
    # Closing releases: a new connection gets in.
    for _, writer in held:
        writer.close()
    await until(lambda: h.server.limits.count("127.0.0.1") == 1)
    sid2, _ = await h.handshake()
    assert sid2 in h.sessions
    await ws.close()
    await until(lambda: h.server.limits.total == 0)


async def test_over_total_limit_gets_503(engine, until) -> None:
    """Beyond max_connections a new connection gets 503 and is closed."""
    h = await engine(max_connections=2, max_connections_per_ip=0)
    held = [await asyncio.open_connection("127.0.0.1", h.port) for _ in range(2)]
    await until(lambda: h.server.limits.total == 2)
    data = await _refused(h.port)
    assert data.startswith(b"HTTP/1.1 503 ")
    assert b"Connection: close" in data
    for _, writer in held:
        writer.close()
    await until(lambda: h.server.limits.total == 0)
    await h.handshake()


async def test_flood_from_one_address_refused_while_honest_client_exchanges(engine, until) -> None:
    """A flood of connections from one address (127.0.0.2) is capped at its limit, while a
    client from another address (127.0.0.1) opens a session and exchanges messages."""
    h = await engine(max_connections_per_ip=20)
    flood = await asyncio.gather(
        *(
            asyncio.open_connection("127.0.0.1", h.port, local_addr=("127.0.0.2", 0))
            for _ in range(60)
        ),
        return_exceptions=True,
    )
    await until(lambda: h.server.limits.count("127.0.0.2") == 20)
    sid, _ = await h.handshake()
    assert (await h.post(sid, "4honest")).body == b"ok"
    h.sessions[sid].send_message("reply")
    assert (await h.poll(sid)).body == b"4reply"
    assert h.messages[sid] == ["honest"]
    assert h.server.limits.count("127.0.0.2") == 20
    for item in flood:
        if not isinstance(item, BaseException):
            item[1].close()
    await until(lambda: h.server.limits.count("127.0.0.2") == 0)
