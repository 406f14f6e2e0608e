"""`TimerWheel`: one loop timer for any number of same-length timeouts (the heartbeats).

Every session waits for its next ping, or for the answer to one, all the time; a loop timer
handle each (uvloop's handle, its libuv timer and the bound callback) costs about 600 bytes
per connection. Heartbeat timeouts all have the same length, so they expire in the order
they were set: a wheel keeps them in buckets of `resolution` seconds, in that order, and
one loop timer, armed for the oldest bucket, fires them. A timeout fires at most
`resolution` (and a millisecond) late, and not early. Cancelling is a set removal.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["TimerWheel"]

logger = logging.getLogger("salas.engine")

T = TypeVar("T")

_SLACK = 0.001


class TimerWheel(Generic[T]):
    """Calls `fire(item)` once, `delay` seconds (up to `resolution` more) after `add(item)`.

    Args:
        loop: The loop whose clock and timer it uses.
        delay: Seconds from `add` to `fire`, the same for every item.
        fire: Called with each item whose time has come (what it raises is logged).
        resolution: Width of a bucket in seconds: how late a timeout may fire.
    """

    __slots__ = ("_buckets", "_delay", "_fire", "_loop", "_order", "_resolution", "_timer")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        fire: Callable[[T], None],
        resolution: float = 0.005,
    ) -> None:
        self._loop = loop
        self._delay = delay
        self._fire = fire
        self._resolution = resolution
        self._buckets: dict[int, set[T]] = {}
        self._order: deque[int] = deque()  # bucket numbers, oldest first
        self._timer: asyncio.TimerHandle | None = None

    def add(self, item: T) -> int:
        """Fire `item` after the delay; returns the token `discard` takes to cancel it."""
        tick = math.ceil((self._loop.time() + self._delay) / self._resolution)
        order = self._order
        if order and order[-1] > tick:
            tick = order[-1]  # (the loop's clock is monotonic: only a changed delay does this)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = set()
            order.append(tick)
            if self._timer is None:
                self._arm()
        bucket.add(item)
        return tick

    def discard(self, item: T, token: int) -> None:
        """Cancel `item`'s timeout, set by the `add` that returned `token` (if still due)."""
        bucket = self._buckets.get(token)
        if bucket is not None:
            bucket.discard(item)

    def __len__(self) -> int:
        """Timeouts still due."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def close(self) -> None:
        """Cancel every timeout."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._buckets.clear()
        self._order.clear()

    def _arm(self) -> None:
        # _SLACK later than the bucket's end: a loop may run a timer a little early (uvloop
        # counts in milliseconds), and one that found nothing due would spin until it is.
        when = self._order[0] * self._resolution + _SLACK
        self._timer = self._loop.call_at(when, self._run)

    def _run(self) -> None:
        self._timer = None
        order = self._order
        buckets = self._buckets
        now = self._loop.time() + _SLACK
        while order and order[0] * self._resolution <= now:
            tick = order.popleft()
            bucket = buckets.get(tick)
            if bucket:
                # The bucket stays findable while it fires: a callback may cancel a timeout
                # of the same bucket (closing another session), which then does not fire.
                for item in list(bucket):
                    if item not in bucket:
                        continue
                    bucket.discard(item)
                    try:
                        self._fire(item)
                    except Exception:
                        logger.exception("error in a timeout callback")
            buckets.pop(tick, None)
        if order and self._timer is None:
            self._arm()
