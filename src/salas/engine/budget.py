"""Rate budgets: a token bucket, and the inbound budget each Engine.IO connection spends.

The inbound budget is checked for every websocket message and every long-polling POST
*before* anything in it is decoded, so a client flooding packets costs the server one bucket
update per frame (or per POST), not a JSON parse and a handler call per packet.

A connection whose packets are over budget has them dropped. One that keeps pressing
against its budget is cut off: when packets are still being refused `grace` seconds
(default 2 s) after the first refusal of a run. A run of refusals ends once an admitted
packet leaves room for another like it, that is once the sender has slowed below its
rate; an honest client that bursts once is never cut off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["InboundBudget", "InboundStats", "TokenBucket"]


class TokenBucket:
    """Allows `capacity` worth of actions at once, then `rate` per second on average.

    Each `take` spends `cost` tokens (1 by default; a fraction for cheap actions). `clock` is
    injectable so tests control time instead of sleeping.
    """

    __slots__ = ("_clock", "_last", "_tokens", "capacity", "rate")

    def __init__(
        self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if capacity < 1 or rate <= 0:
            raise ValueError("a token bucket needs capacity >= 1 and rate > 0")
        self.capacity = float(capacity)
        self.rate = rate
        self._clock = clock
        self._tokens = float(capacity)
        self._last = clock()

    def take(self, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are that many; False means: refuse this action."""
        now = self._clock()
        # max(): a clock that goes backwards (it should not) must not drain the bucket.
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    @property
    def tokens(self) -> float:
        """Tokens left as of the last `take` (for tests and diagnostics)."""
        return self._tokens


@dataclass(slots=True)
class InboundStats:
    """Counters of the inbound budgets of one engine server (for metrics and tests)."""

    packets_dropped: int = 0  # packets refused for being over their connection's budget
    posts_refused: int = 0  # long-polling POSTs refused for carrying too many packets
    disconnects: int = 0  # connections cut off for staying over their budget


class InboundBudget:
    """Packets and bytes per second, with bursts, for one connection.

    Both buckets are refilled from one clock reading in one call to `admit`: the engine pays
    a single update per websocket message or per POST. A rate of 0 turns that bucket off.
    """

    __slots__ = (
        "_bytes",
        "_bytes_burst",
        "_bytes_rate",
        "_clock",
        "_dropped",
        "_grace",
        "_last",
        "_over_since",
        "_packets",
        "_packets_burst",
        "_packets_rate",
    )

    def __init__(
        self,
        rate: float,
        burst: int,
        bytes_rate: float,
        bytes_burst: int,
        grace: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._packets_rate = rate
        self._bytes_rate = bytes_rate
        # The bursts as given (the engine passes its config's: one object for every
        # connection), and full buckets hold them until the first packet.
        self._packets_burst: float = burst
        self._bytes_burst: float = bytes_burst
        self._packets: float = burst
        self._bytes: float = bytes_burst
        self._grace = grace
        self._clock = clock
        self._last = clock()
        self._over_since: float | None = None
        # Packets refused in the current run: a sender that overshoots its whole burst at
        # once (a flood sent faster than `grace` can show) is cut off without waiting.
        self._dropped = 0

    def admit(self, packets: int, size: int) -> bool:
        """Spend `packets` packets and `size` bytes if both fit; False: drop them all."""
        now = self._clock()
        elapsed = now - self._last
        if elapsed > 0.0:
            self._last = now
            if self._packets_rate:
                self._packets = min(
                    self._packets_burst, self._packets + elapsed * self._packets_rate
                )
            if self._bytes_rate:
                self._bytes = min(self._bytes_burst, self._bytes + elapsed * self._bytes_rate)
        if self._room_for(packets, size):
            if self._packets_rate:
                self._packets -= packets
            if self._bytes_rate:
                self._bytes -= size
            if self._over_since is not None and self._room_for(packets, size):
                self._over_since = None  # the sender slowed down: the run is over
                self._dropped = 0
            return True
        if self._over_since is None:
            self._over_since = now
        self._dropped += packets
        return False

    def _room_for(self, packets: int, size: int) -> bool:
        return (not self._packets_rate or self._packets >= packets) and (
            not self._bytes_rate or self._bytes >= size
        )

    def exhausted(self) -> bool:
        """True once packets have gone on being refused for `grace` seconds, or as many were
        refused in one run as the burst holds (twice what an honest page ever sends at
        once): cut it off."""
        over_since = self._over_since
        if over_since is None:
            return False
        if self._packets_rate and self._dropped >= self._packets_burst:
            return True
        return self._clock() - over_since >= self._grace
