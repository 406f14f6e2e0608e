"""Floods over one websocket: packets beyond the inbound budget (`--inbound-rate` 100/s,
`--inbound-burst` 1000), bytes beyond `--inbound-bytes-rate` (1 MB/s), and chat events
beyond the chat's budget (`--event-cutoff` refused in a row) get the connection cut off,
while the honest member in the room is served; a burst within the budget is not."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import websockets

from salas.chat import ChatConfig
from tests.abuse.abuse_support import (
    ROOM,
    honest_chatting,
    serving,
    ws_call,
    ws_closed_within,
    ws_connect,
)

# Longest a flood may go on before the server cuts it off: a budget overrun for about 2 s,
# or a few in a row, then a disconnect (plus a loaded machine).
CUT_OFF_WITHIN = 6.0


async def _flood_until_closed(
    ws: websockets.ClientConnection, packet: str, batch: int, limit: float
) -> float:
    """Send `packet` `batch` times per loop iteration until the server closes `ws`; seconds
    it took, AssertionError if still open after `limit`. What the server answers is read
    meanwhile, so it is never cut off as a slow reader instead."""
    started = time.monotonic()
    drain = asyncio.create_task(ws_closed_within(ws, limit + 1.0))
    try:
        while time.monotonic() - started < limit and not drain.done():
            for _ in range(batch):
                await ws.send(packet)
            await asyncio.sleep(0.001)
    except websockets.ConnectionClosed:
        pass
    # Sends may be buffered locally after the server closed: the close must come soon.
    await drain
    return time.monotonic() - started


async def test_packet_flood_is_cut_off(tmp_path: Path) -> None:
    """A websocket sending packets (of an event nobody handles) as fast as it can is
    disconnected, and the honest member's round trips stay within the bound meanwhile."""
    async with serving(tmp_path) as server, honest_chatting(server.port):
        ws = await ws_connect(server.port)
        took = await _flood_until_closed(ws, '42["no-such-event",1]', 200, CUT_OFF_WITHIN)
        assert took < CUT_OFF_WITHIN


async def test_byte_flood_is_cut_off(tmp_path: Path) -> None:
    """A websocket sending 100 KB messages as fast as it can (far above 1 MB/s) is
    disconnected, and the honest member is served meanwhile."""
    packet = '42["no-such-event","' + "x" * 100_000 + '"]'
    async with serving(tmp_path) as server, honest_chatting(server.port):
        ws = await ws_connect(server.port)
        took = await _flood_until_closed(ws, packet, 2, CUT_OFF_WITHIN)
        assert took < CUT_OFF_WITHIN


async def test_message_spammer_is_disconnected(tmp_path: Path) -> None:
    """A member sending chat messages far beyond its message rate is refused, then cut off
    once refused --event-cutoff (50) times in a row; the honest member sees only the few
    spam messages the budget let through."""
    async with serving(tmp_path) as server, honest_chatting(server.port) as honest:
        ws = await ws_connect(server.port, name="spammer")
        ack = await ws_call(ws, "channel_join", ROOM, 1)
        assert ack["ok"], ack
        spam = '42["message",{"channel":"' + ROOM + '","message":"spam"}]'
        took = await _flood_until_closed(ws, spam, 20, CUT_OFF_WITHIN)
        assert took < CUT_OFF_WITHIN
        await asyncio.sleep(0.5)
        # The default budget: a burst (50; the join spent 1), then 10 per second.
        burst, rate = ChatConfig().message_burst, ChatConfig().message_rate
        spam = honest.messages.count("spam")
        assert spam <= burst + rate * (took + 1), spam


async def test_burst_within_the_budget_is_served(tmp_path: Path) -> None:
    """500 packets at once (within the burst of 1000) leave the connection open and
    answering."""
    async with serving(tmp_path) as server:
        ws = await ws_connect(server.port)
        for _ in range(500):
            await ws.send('42["no-such-event",1]')
        ack = await ws_call(ws, "history", ROOM, 1)
        assert ack["ok"], ack
        await ws.close()
