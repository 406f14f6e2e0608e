"""`Expiries`: each socket's token expiry, on one loop timer for all of them.

A loop timer per socket (uvloop's handle, its libuv timer, the callback's arguments) and the
finalizer that cancelled it with its socket cost about 1.1 KB per connection. Tokens expire
at different times, so the expiries wait in a heap, earliest first, one small entry per
socket, and a single loop timer is armed for the earliest. An entry holds its item weakly: an
item that goes away without being cancelled (a socket disconnected and collected) costs
nothing more, and its entry is skipped when it comes up. Entries left stale (cancelled,
replaced, collected) are dropped when they come up, or all at once when they outnumber the
live ones, so that sockets coming and going cannot grow the heap without bound.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Expiries"]

logger = logging.getLogger("salas.auth")

T = TypeVar("T")

# A loop may run a timer a little early (uvloop counts in milliseconds): what is due within
# this much is run rather than waited for again.
_SLACK = 0.001
# Stale entries are swept out once there are more than the live ones plus this many.
_STALE_MARGIN = 64


class Expiries(Generic[T]):
    """Calls ``expire(item)`` once the delay set for it has passed, unless cancelled first.

    Args:
        expire: Called with each item whose time has come (what it raises is logged). Runs
            on the loop that was running when the item's time was last set.
    """

    __slots__ = ("_expire", "_heap", "_live", "_loop", "_seq", "_timer", "_timer_at")

    def __init__(self, expire: Callable[[T], None]) -> None:
        self._expire = expire
        # (loop time due, sequence number, the item): the sequence number tells an item's
        # current entry from the stale ones it left behind.
        self._heap: list[tuple[float, int, weakref.ref[T]]] = []
        self._live: weakref.WeakKeyDictionary[T, int] = weakref.WeakKeyDictionary()
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def set(self, item: T, delay: float) -> None:
        """Expire ``item`` in ``delay`` seconds (now if it is not positive), replacing any
        time set for it before.

        Args:
            item: What expires (held weakly).
            delay: Seconds from now.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # The first use, or another loop (the old one's timer will never run here).
            self._cancel_timer()
            self._loop = loop
        self._seq += 1
        when = loop.time() + max(0.0, delay)
        self._live[item] = self._seq
        heapq.heappush(self._heap, (when, self._seq, weakref.ref(item)))
        if len(self._heap) > 2 * len(self._live) + _STALE_MARGIN:
            self._sweep()
        if when < self._timer_at:
            self._arm(when)

    def cancel(self, item: T) -> None:
        """Forget ``item``'s expiry, if it has one (its heap entry goes stale).

        Args:
            item: What no longer expires.
        """
        self._live.pop(item, None)

    def __len__(self) -> int:
        """How many items have an expiry pending (collected ones not counted)."""
        return len(self._live)

    def close(self) -> None:
        """Cancel every expiry and the timer."""
        self._cancel_timer()
        self._heap.clear()
        self._live.clear()

    def _is_current(self, seq: int, ref: weakref.ref[T]) -> T | None:
        item = ref()
        if item is None or self._live.get(item) != seq:
            return None
        return item

    def _sweep(self) -> None:
        self._heap = [entry for entry in self._heap if self._is_current(entry[1], entry[2])]
        heapq.heapify(self._heap)

    def _arm(self, when: float) -> None:
        self._cancel_timer()
        assert self._loop is not None
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._run)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _run(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        assert self._loop is not None
        now = self._loop.time() + _SLACK
        # (`self._heap` read each time: an expiry callback may set another, and sweep.)
        while self._heap and self._heap[0][0] <= now:
            _, seq, ref = heapq.heappop(self._heap)
            item = self._is_current(seq, ref)
            if item is None:
                continue  # cancelled, replaced or collected
            del self._live[item]
            try:
                self._expire(item)
            except Exception:
                logger.exception("error in an expiry callback")
        if self._heap and self._timer is None:
            self._arm(self._heap[0][0])
