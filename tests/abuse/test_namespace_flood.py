"""CONNECT floods to random namespaces: each is refused (`Invalid namespace`), and a client
that keeps sending them runs out of its inbound budget and is cut off, over either
transport, while the honest member is served."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path

import websockets

from tests.abuse.abuse_support import (
    Polling,
    honest_chatting,
    http_session,
    serving,
    ws_closed_within,
    ws_connect,
)

CUT_OFF_WITHIN = 6.0
SEPARATOR = "\x1e"


def _connects(rng: random.Random, count: int) -> list[str]:
    return [f"40/ns-{rng.getrandbits(48):012x}," for _ in range(count)]


async def test_connect_flood_over_websocket_is_cut_off(tmp_path: Path) -> None:
    """20,000 CONNECTs to random namespaces over one websocket get it disconnected, and the
    honest member is served meanwhile."""
    rng = random.Random(9)
    async with serving(tmp_path) as server, honest_chatting(server.port):
        ws = await ws_connect(server.port, join=False)
        # Read the refusals as they come, so it is never cut off as a slow reader instead.
        drain = asyncio.create_task(ws_closed_within(ws, CUT_OFF_WITHIN))
        with contextlib.suppress(websockets.ConnectionClosed):
            for packet in _connects(rng, 20_000):
                await ws.send(packet)
                if drain.done():
                    break
        await drain


async def test_connect_flood_over_polling_is_cut_off(tmp_path: Path) -> None:
    """POSTs of 400 CONNECTs to random namespaces each (under the packets-per-POST limit),
    one after the other, end with the session refused or closed within the budget, and the
    honest member is served meanwhile."""
    rng = random.Random(10)
    async with (
        serving(tmp_path) as server,
        honest_chatting(server.port),
        http_session() as http,
    ):
        polling = await Polling(http, server.port).open(join=False)
        # Read the refusals as they come, so the session is never cut off as a slow reader.
        drain = asyncio.create_task(polling.drain())
        started = time.monotonic()
        statuses = []
        try:
            while time.monotonic() - started < CUT_OFF_WITHIN:
                status, _ = await polling.post(SEPARATOR.join(_connects(rng, 400)))
                statuses.append(status)
                if status != 200:
                    break
        finally:
            drain.cancel()
        assert statuses[-1] != 200, f"{len(statuses)} POSTs of 400 CONNECTs all accepted"
        assert await polling.is_closed()
