"""Coalesce what connections are sent within one loop iteration into one write each.

A broadcast appends the same frame bytes to every recipient's pending list and registers the
recipient here once; a single callback at the end of the iteration writes each recipient's
list with one `writelines`. No task, queue or timer is created per recipient.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["FlushScheduler", "Flushable"]


class Flushable(Protocol):
    def flush(self) -> None: ...


class FlushScheduler:
    __slots__ = ("_loop", "_pending", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[Flushable] = []
        self._scheduled = False

    def add(self, target: Flushable) -> None:
        """Flush `target` at the end of this loop iteration (the caller registers it once)."""
        self._pending.append(target)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_all)

    def _flush_all(self) -> None:
        pending = self._pending
        self._pending = []
        self._scheduled = False
        for target in pending:
            target.flush()
