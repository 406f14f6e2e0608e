"""Packet floods in one long-polling POST: a 1 MB body of 22,000 `message` packets, or of
18,500 CONNECTs, is refused with 400 before it is decoded (`--max-post-packets`, default
500) and its session closed, so no one else waits for it; a POST of an ordinary size goes
through."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.abuse.abuse_support import Polling, honest_chatting, http_session, serving

SEPARATOR = "\x1e"  # between packets of an Engine.IO v4 payload
MESSAGE = '42["message","hello, everyone in this room"]'  # ~45 bytes, as in the report


async def _refused_quickly(polling: Polling, body: str) -> None:
    started = time.monotonic()
    status, text = await polling.post(body)
    elapsed = time.monotonic() - started
    assert status == 400, (status, text[:200])
    assert elapsed < 1.0, f"answered after {elapsed:.2f} s"
    assert await polling.is_closed(), "the flooding session is still open"


async def test_post_of_22000_messages_is_refused_without_stalling_others(
    tmp_path: Path,
) -> None:
    """Five POSTs of 22,000 `message` packets (~0.9 MB each) are each refused with 400 at
    once, and the honest member's round trips stay within the bound meanwhile (undefended,
    each POST stalled every client for about a second)."""
    body = SEPARATOR.join([MESSAGE] * 22_000)
    assert 800_000 < len(body) < 1_000_000  # under the payload limit: the packet count matters
    async with (
        serving(tmp_path) as server,
        honest_chatting(server.port),
        http_session() as http,
    ):
        for _ in range(5):
            polling = await Polling(http, server.port).open()
            await _refused_quickly(polling, body)
            await asyncio.sleep(0.2)


async def test_post_of_18500_connects_is_refused(tmp_path: Path) -> None:
    """A POST of 18,500 CONNECT packets is refused with 400 and its session closed, and the
    honest member is served meanwhile."""
    async with (
        serving(tmp_path) as server,
        honest_chatting(server.port),
        http_session() as http,
    ):
        for _ in range(3):
            polling = await Polling(http, server.port).open(join=False)
            await _refused_quickly(polling, SEPARATOR.join(["40"] * 18_500))
            await asyncio.sleep(0.2)


async def test_post_of_ordinary_size_goes_through(tmp_path: Path) -> None:
    """A POST of 100 packets (an event the chat ignores) is answered `ok` and its session
    stays open: the limit is far above what a page batches."""
    async with serving(tmp_path) as server, http_session() as http:
        polling = await Polling(http, server.port).open()
        status, text = await polling.post(SEPARATOR.join(['42["no-such-event",1]'] * 100))
        assert (status, text) == (200, "ok")
        status, _ = await polling.post('42["no-such-event",2]')
        assert status == 200, "the session was closed"
