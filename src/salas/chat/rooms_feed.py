"""The `rooms` broadcast, coalesced: at most one per interval however fast rooms change.

Every join, leave and disconnect changes a count; a busy server would otherwise send each
client a `rooms` event per change. `Coalescer.poke()` marks the list dirty; the flush runs
at once if the last one is at least `interval` old, else when it will be, and sends the list
as it is then — only if it differs from the last one sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from salas.server.tasks import TaskRegistry

__all__ = ["Coalescer"]

logger = logging.getLogger("salas.chat")


class Coalescer:
    """Calls `flush()` at most once per `interval` seconds after one or more `poke()`s."""

    def __init__(
        self,
        interval: float,
        flush: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        spawn: Callable[[Coroutine[Any, Any, None]], object] | None = None,
    ) -> None:
        """Args:
        interval: the least time between two flushes, in seconds.
        flush: sends the list; what it raises is logged.
        clock: the monotonic clock (tests pass their own).
        spawn: runs each flush in the background and keeps it (the server's
            `io.spawn`, so shutdown drains or cancels it); without one the flushes are
            kept in a task registry of the feed's own.
        """
        self._interval = interval
        self._flush = flush
        self._clock = clock
        self._last = -float("inf")
        self._handle: asyncio.TimerHandle | None = None
        self._spawn = spawn if spawn is not None else TaskRegistry().spawn
        self.flushes = 0

    def poke(self) -> None:
        """Something changed: make sure a flush is coming."""
        if self._handle is not None:
            return  # one is scheduled; it will see this change too
        delay = max(0.0, self._last + self._interval - self._clock())
        self._handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._last = self._clock()
        self.flushes += 1
        self._spawn(self._run())

    async def _run(self) -> None:
        try:
            await self._flush()
        except Exception:
            logger.exception("error while broadcasting the room list")

    def close(self) -> None:
        """Drop a scheduled flush (the server is going down)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
