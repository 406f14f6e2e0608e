"""The Redis adapter: two servers (as two processes would be) sharing rooms over Redis."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
import websockets

from salas import Server
from salas.adapter import RemoteSocket, redis_adapter
from salas.adapter.redis import POOL_SIZE, connect
from salas.server.socket import Socket
from tests.support.services import REDIS_URL


@pytest.fixture
async def prefix(redis_url: str) -> str:
    """A channel prefix unique to the test (Redis must be reachable: the redis_url fixture)."""
    return "salas-test-" + secrets.token_hex(4)


@pytest.fixture
async def pair(prefix: str) -> AsyncIterator[tuple[Server, Server, list[Socket]]]:
    """Two servers on one Redis channel prefix (unique per test); every socket they accept."""
    sockets: list[Socket] = []
    servers = []
    for _ in range(2):
        io = Server(adapter=redis_adapter(REDIS_URL, prefix), serve_client=False)

        @io.on("connection")
        def connection(socket: Socket) -> None:
            sockets.append(socket)

        servers.append(io)
        await io.start("127.0.0.1", 0)
    yield servers[0], servers[1], sockets
    for io in servers:
        await io.shutdown()


class Raw:
    def __init__(self, ws: websockets.ClientConnection, sid: str) -> None:
        self.ws = ws
        self.sid = sid

    @classmethod
    async def connect(cls, io: Server, nsp: str = "/") -> Raw:
        ws = await websockets.connect(
            f"ws://127.0.0.1:{io.port}/socket.io/?EIO=4&transport=websocket"
        )
        await ws.recv()
        named = "" if nsp == "/" else nsp + ","
        await ws.send("40" + named)
        reply = await ws.recv()
        assert isinstance(reply, str)
        return cls(ws, json.loads(reply[2 + len(named) :])["sid"])

    async def recv(self, timeout: float = 2.0) -> str | bytes:
        return await asyncio.wait_for(self.ws.recv(), timeout)

    async def nothing(self) -> None:
        with pytest.raises(TimeoutError):
            await self.recv(0.2)


def socket_of(sockets: list[Socket], sid: str) -> Socket:
    return next(s for s in sockets if s.id == sid)


async def test_room_broadcast_reaches_both_servers(pair: Any) -> None:
    """A room broadcast from one server reaches members on the other, and only members."""
    a, b, sockets = pair
    on_a, on_b, outsider = await Raw.connect(a), await Raw.connect(b), await Raw.connect(b)
    await socket_of(sockets, on_a.sid).join("room")
    await socket_of(sockets, on_b.sid).join("room")
    await a.to("room").emit("hello", {"n": 1})
    assert await on_a.recv() == '42["hello",{"n":1}]'
    assert await on_b.recv() == '42["hello",{"n":1}]'
    await outsider.nothing()


async def test_except_and_binary_cross_servers(pair: Any) -> None:
    """except_ is honoured remotely, and binary attachments arrive intact."""
    a, b, sockets = pair
    one, two = await Raw.connect(b), await Raw.connect(b)
    await socket_of(sockets, one.sid).join("r")
    await socket_of(sockets, two.sid).join(["r", "quiet"])
    await a.to("r").except_("quiet").emit("blob", b"\x00\x01\xff")
    assert await one.recv() == '451-["blob",{"_placeholder":true,"num":0}]'
    assert await one.recv() == b"\x00\x01\xff"
    await two.nothing()


async def test_fetch_sockets_sees_other_server(pair: Any) -> None:
    """fetch_sockets returns local sockets as Socket and the other server's as RemoteSocket."""
    a, b, sockets = pair
    local, remote = await Raw.connect(a), await Raw.connect(b)
    for raw in (local, remote):
        await socket_of(sockets, raw.sid).join("room")
    socket_of(sockets, remote.sid).data["name"] = "ana"
    found = await a.in_("room").fetch_sockets()
    by_id = {s.id: s for s in found}
    assert set(by_id) == {local.sid, remote.sid}
    assert isinstance(by_id[local.sid], Socket)
    far = by_id[remote.sid]
    assert isinstance(far, RemoteSocket)
    assert far.data == {"name": "ana"}
    assert far.rooms == frozenset({remote.sid, "room"})


async def test_sockets_join_and_disconnect_cross_servers(pair: Any) -> None:
    """sockets_join and disconnect_sockets act on the other server's sockets too."""
    a, b, sockets = pair
    remote = await Raw.connect(b)
    await socket_of(sockets, remote.sid).join("first")
    await a.in_("first").sockets_join("second")
    await asyncio.sleep(0.1)  # the request travels through Redis
    assert "second" in socket_of(sockets, remote.sid).rooms
    await a.in_("second").disconnect_sockets()
    assert await remote.recv() == "41"
    await asyncio.sleep(0.05)
    assert not socket_of(sockets, remote.sid).connected


async def test_local_flag_stays_on_this_server(pair: Any) -> None:
    """A `local` broadcast reaches the room's members on this server and is not published
    to the other server; the same broadcast without `local` reaches both."""
    a, b, sockets = pair
    here, remote = await Raw.connect(a), await Raw.connect(b)
    await socket_of(sockets, here.sid).join("room")
    await socket_of(sockets, remote.sid).join("room")
    await a.local.to("room").emit("x")
    assert await here.recv() == '42["x"]'
    await remote.nothing()
    await a.to("room").emit("y")
    assert await here.recv() == '42["y"]'
    assert await remote.recv() == '42["y"]'


async def test_namespace_made_after_start_is_shared_then_closed(pair: Any, prefix: str) -> None:
    """A namespace made after start subscribes to Redis, broadcasts across, and unsubscribes."""
    a, b, _sockets = pair
    channel = f"{prefix}#/late#"
    redis = aioredis.from_url(REDIS_URL)
    try:
        b.of("/late")
        on_b = await Raw.connect(b, "/late")
        for _ in range(100):  # b's adapter starts in the background; a's must not miss it
            if await redis.pubsub_numsub(channel) == [(channel.encode(), 1)]:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the namespace made after start never subscribed")
        await a.of("/late").emit("hello", 1)  # waits for a's adapter to start
        assert await on_b.recv() == '42/late,["hello",1]'
        assert await redis.pubsub_numsub(channel) == [(channel.encode(), 2)]
        await a.shutdown()
        await b.shutdown()
        assert await redis.pubsub_numsub(channel) == [(channel.encode(), 0)]
    finally:
        await redis.aclose()


async def test_a_burst_of_broadcasts_waits_for_pooled_connections(pair: Any) -> None:
    """More broadcasts at once than the pool has connections (a burst of joins or posts):
    each waits for a connection, none fails, every one arrives."""
    a, b, sockets = pair
    member = await Raw.connect(b)
    await socket_of(sockets, member.sid).join("room")
    count = 3 * POOL_SIZE
    await asyncio.gather(*(a.to("room").emit("n", i) for i in range(count)))
    got = sorted([json.loads(str(await member.recv())[2:])[1] for _ in range(count)])
    assert got == list(range(count))


async def test_a_client_keeps_at_most_its_pool(redis_url: str) -> None:
    """`connect`: commands beyond POOL_SIZE at once wait; the connections stay bounded."""
    client = connect(redis_url)
    key = "salas-test-pool:" + secrets.token_hex(4)
    try:
        results = await asyncio.gather(*(client.incr(key) for _ in range(4 * POOL_SIZE)))
        assert sorted(results) == list(range(1, 4 * POOL_SIZE + 1))
        names = [c for c in await client.client_list() if c.get("cmd") in ("incr", "client|list")]
        assert 0 < len(names) <= POOL_SIZE
    finally:
        await client.delete(key)
        await client.aclose()


def test_without_redis_py_the_adapter_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing the Redis adapter without redis-py installed says which extra brings it."""
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"pip install 'salas\[redis\]'"):
        redis_adapter(REDIS_URL)
