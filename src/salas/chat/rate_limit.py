"""A token bucket: a burst of `capacity` actions, refilled at `rate` per second."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allows `capacity` actions at once, then `rate` per second on average.

    `clock` is injectable so tests control time instead of sleeping.
    """

    __slots__ = ("_clock", "_last", "_tokens", "capacity", "rate")

    def __init__(
        self, capacity: int, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if capacity < 1 or rate <= 0:
            raise ValueError("a token bucket needs capacity >= 1 and rate > 0")
        self.capacity = capacity
        self.rate = rate
        self._clock = clock
        self._tokens = float(capacity)
        self._last = clock()

    def take(self) -> bool:
        """Spend one token if there is one; False means: refuse this action."""
        now = self._clock()
        # max(): a clock that goes backwards (it should not) must not drain the bucket.
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self.capacity), self._tokens + elapsed * self.rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    @property
    def tokens(self) -> float:
        """Tokens left as of the last `take` (for tests and diagnostics)."""
        return self._tokens
