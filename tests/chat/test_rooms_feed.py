"""The coalesced `rooms` broadcast: at most one flush per interval."""

from __future__ import annotations

import asyncio

import pytest

from salas.chat.rooms_feed import Coalescer


async def test_first_poke_flushes_at_once() -> None:
    """After a quiet spell, a change is flushed in the same loop iteration's wake."""
    flushed: list[float] = []
    loop = asyncio.get_running_loop()

    async def flush() -> None:
        flushed.append(loop.time())

    feed = Coalescer(10.0, flush)
    start = loop.time()
    feed.poke()
    await asyncio.sleep(0.02)
    assert len(flushed) == 1 and flushed[0] - start < 0.05
    feed.close()


async def test_burst_of_pokes_coalesces() -> None:
    """Changes for 60 ms within a 200 ms interval make two flushes: at once and at its end."""
    flushed: list[float] = []
    loop = asyncio.get_running_loop()

    async def flush() -> None:
        flushed.append(loop.time())

    feed = Coalescer(0.2, flush)
    start = loop.time()
    while loop.time() - start < 0.06:
        feed.poke()
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.3)
    assert len(flushed) == 2
    assert flushed[1] - flushed[0] >= 0.195
    assert feed.flushes == 2


async def test_close_drops_a_pending_flush() -> None:
    """A flush scheduled for later does not run after close()."""
    flushed: list[int] = []

    async def flush() -> None:
        flushed.append(1)

    feed = Coalescer(0.05, flush)
    feed.poke()
    await asyncio.sleep(0.01)
    feed.poke()
    feed.close()
    await asyncio.sleep(0.1)
    assert flushed == [1]


async def test_failing_flush_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    """A flush that raises is logged and the next poke still flushes."""
    calls: list[int] = []

    async def flush() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    feed = Coalescer(0.0, flush)
    feed.poke()
    await asyncio.sleep(0.01)
    feed.poke()
    await asyncio.sleep(0.01)
    assert calls == [1, 1]
    assert "error while broadcasting the room list" in caplog.text
