"""Cluster-wide offsets (salas.cluster.offsets): the stamp spliced into encoded packets, the
sequence script in a real Redis, and two servers numbering one namespace's broadcasts."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import websockets

from salas import Server
from salas.adapter import redis_adapter
from salas.cluster.offsets import parse_sequenced, stamp_packets
from salas.cluster.scripts import SEQUENCE_SCRIPT
from salas.protocol.outgoing import EncodedMessage
from salas.recovery import RecoveryOptions, open_recovery_store
from salas.server.broadcast import event_packet
from salas.server.socket import Socket


@pytest.mark.parametrize(
    ("nsp", "args"),
    [("/", ("hi",)), ("/", ()), ("/chat", ({"a": [1, "]"]},)), ("/", (b"\x00\xff", "x"))],
)
def test_stamp_packets_is_what_encoding_with_the_stamp_gives(nsp: str, args: tuple[Any]) -> None:
    """The stamp spliced into the encoded text equals the event encoded with it appended."""
    bare = EncodedMessage.of_broadcast(event_packet(nsp, "ev", args), "")
    stamped = event_packet(nsp, "ev", args)
    stamped.data.append("42")
    assert stamp_packets(bare.packets, "42") == EncodedMessage.of_broadcast(stamped, "42").packets


@pytest.mark.parametrize("packets", [[], [b"\x00"], ["40"], ['42["ev"'], ["3probe"]])
def test_stamp_packets_refuses_what_is_not_an_event(packets: list[Any]) -> None:
    """Packets that are not an encoded event are refused, not mangled."""
    with pytest.raises(ValueError):
        stamp_packets(packets, "1")


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        (b'12 {"uid":"x"}', ("12", b'{"uid":"x"}')),
        (b'{"uid":"x"}', None),  # a plain broadcast
        (b"12", None),
        (b"-1 {}", None),
        (b"1e3 {}", None),
        (b" 12 {}", None),
        (b"1" * 20 + b" {}", None),  # beyond a 64-bit offset
        ("١٢ {}".encode(), None),  # Arabic-Indic digits: not ASCII
    ],
)
def test_parse_sequenced_takes_only_an_offset_and_a_message(
    data: bytes, parsed: tuple[str, bytes] | None
) -> None:
    """Only ``<ASCII digits> <message>`` is a numbered broadcast; anything else is not."""
    assert parse_sequenced(data) == parsed


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the test Redis."""
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_the_script_numbers_and_publishes_in_one_step(redis: aioredis.Redis) -> None:
    """Offsets are consecutive, published with the message, and never at or below the floor."""
    counter, channel = f"salas-test-{secrets.token_hex(4)}", f"salas-test-{secrets.token_hex(4)}"
    script = redis.register_script(SEQUENCE_SCRIPT)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    try:
        assert await script(keys=[counter, channel], args=[b"one", 0]) == 1
        assert await script(keys=[counter, channel], args=[b"two", 0]) == 2
        # A Redis that lost the counter: the caller's floor (the highest offset it saw) wins.
        assert await script(keys=[counter, channel], args=[b"three", 40]) == 41
        assert await script(keys=[counter, channel], args=[b"four", 3]) == 42
        got = []
        for _ in range(50):  # get_message answers None for the subscription's confirmation
            item = await pubsub.get_message(timeout=0.1)
            if item is not None:
                got.append(item["data"])
            if len(got) == 4:
                break
        assert got == [b"1 one", b"2 two", b"41 three", b"42 four"]
    finally:
        await pubsub.aclose()
        await redis.delete(counter)


class Raw:
    """A websocket Socket.IO client that reads the trailing offset of every event."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, io: Server) -> Raw:
        ws = await websockets.connect(
            f"ws://127.0.0.1:{io.port}/socket.io/?EIO=4&transport=websocket"
        )
        await ws.recv()
        await ws.send("40")
        await ws.recv()
        return cls(ws)

    async def events(self, count: int) -> list[list[Any]]:
        found: list[list[Any]] = []
        while len(found) < count:
            frame = await asyncio.wait_for(self.ws.recv(), 5)
            if isinstance(frame, str) and frame.startswith("42"):
                found.append(json.loads(frame[2:]))
        return found


async def test_two_servers_number_one_order_and_log_each_broadcast_once(
    redis_url: str, tmp_path: Path
) -> None:
    """Two servers broadcasting at once on one Redis and one recovery store: every socket on
    either gets the same order, offsets consecutive, and each broadcast is logged once."""
    prefix = "salas-test-" + secrets.token_hex(4)
    url = f"sqlite://{tmp_path / 'recovery.db'}"
    servers: list[Server] = []
    try:
        for _ in range(2):
            store = open_recovery_store(url)
            io = Server(
                adapter=redis_adapter(redis_url, prefix),
                connection_state_recovery=RecoveryOptions(store=store),
                serve_client=False,
            )

            @io.on("connection")
            def connection(socket: Socket) -> None:
                socket.data["seen"] = True

            servers.append(io)
            await io.start("127.0.0.1", 0)
        a, b = servers
        on_a, on_b = await Raw.connect(a), await Raw.connect(b)
        await asyncio.gather(
            *(a.emit("n", f"a{i}") for i in range(30)), *(b.emit("n", f"b{i}") for i in range(30))
        )
        seen_a, seen_b = await on_a.events(60), await on_b.events(60)
        assert seen_a == seen_b
        offsets = [int(event[-1]) for event in seen_a]
        assert offsets == list(range(offsets[0], offsets[0] + 60))
        assert sorted(e[1] for e in seen_a) == sorted(
            [f"a{i}" for i in range(30)] + [f"b{i}" for i in range(30)]
        )
        for io in servers:
            assert io.recovery is not None
            await io.recovery.store.flush()
        assert servers[0].recovery is not None
        logged = await servers[0].recovery.store.packets_after("/", 0, 1000)
        assert [p.offset for p in logged] == offsets
    finally:
        for io in servers:
            await io.shutdown()


async def test_a_hostile_numbered_message_is_dropped_and_the_channel_still_works(
    redis_url: str, redis: aioredis.Redis
) -> None:
    """Garbage after an offset on the namespace's channel is dropped; broadcasts go on."""
    prefix = "salas-test-" + secrets.token_hex(4)
    io = Server(
        adapter=redis_adapter(redis_url, prefix),
        connection_state_recovery=True,
        serve_client=False,
    )
    await io.start("127.0.0.1", 0)
    try:
        member = await Raw.connect(io)
        for junk in (b"7 not json", b'8 {"opts": 1}', b'9 {"uid":"x","opts":{},"packets":[]}'):
            await redis.publish(f"{prefix}#/#", junk)
        await io.emit("after", 1)
        [event] = await member.events(1)
        assert event[:2] == ["after", 1]
    finally:
        await io.shutdown()
