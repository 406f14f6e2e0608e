"""The token bucket behind the per-socket rate limits."""

from __future__ import annotations

import pytest

from salas.chat.rate_limit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refused() -> None:
    """A full bucket allows exactly `capacity` actions at once, then refuses."""
    clock = Clock()
    bucket = TokenBucket(20, 10.0, clock)
    assert [bucket.take() for _ in range(20)] == [True] * 20
    assert bucket.take() is False


def test_refills_at_rate() -> None:
    """Tokens come back at `rate` per second: 0.1 s at 10/s buys exactly one more action."""
    clock = Clock()
    bucket = TokenBucket(2, 10.0, clock)
    assert bucket.take() and bucket.take()
    assert not bucket.take()
    clock.now += 0.05
    assert not bucket.take()
    clock.now += 0.051
    assert bucket.take()
    assert not bucket.take()


def test_refill_is_capped_at_capacity() -> None:
    """A long quiet spell does not bank more than one burst."""
    clock = Clock()
    bucket = TokenBucket(3, 10.0, clock)
    clock.now += 3600
    assert sum(bucket.take() for _ in range(10)) == 3


def test_clock_going_backwards_does_not_drain() -> None:
    """A clock that steps back neither refuses a full bucket nor adds tokens."""
    clock = Clock()
    bucket = TokenBucket(2, 1.0, clock)
    clock.now -= 50
    assert bucket.take() and bucket.take()
    assert not bucket.take()


@pytest.mark.parametrize(("capacity", "rate"), [(0, 1.0), (1, 0.0), (5, -1.0)])
def test_invalid_parameters(capacity: int, rate: float) -> None:
    """A bucket that could never allow anything is a configuration error."""
    with pytest.raises(ValueError):
        TokenBucket(capacity, rate)
