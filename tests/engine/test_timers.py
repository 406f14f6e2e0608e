"""One loop timer for many same-length timeouts (salas.engine.timers)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from salas.engine.timers import TimerWheel


async def test_fires_each_item_once_after_the_delay() -> None:
    """Every item added fires once, no earlier than the delay and at most a bucket later."""
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []
    wheel: TimerWheel[str] = TimerWheel(
        loop, 0.05, lambda item: fired.append((item, loop.time())), 0.01
    )
    start = loop.time()
    for name in ("a", "b", "c"):
        wheel.add(name)
    assert len(wheel) == 3
    await asyncio.sleep(0.03)
    assert fired == []
    await asyncio.sleep(0.08)
    assert sorted(item for item, _ in fired) == ["a", "b", "c"]
    for _, when in fired:
        assert 0.05 - 0.002 <= when - start <= 0.05 + 0.01 + 0.05  # (a loaded machine is late)
    assert len(wheel) == 0


async def test_discard_cancels_only_that_item() -> None:
    """A discarded item does not fire; the others in its bucket do."""
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    wheel: TimerWheel[str] = TimerWheel(loop, 0.02, fired.append, 0.01)
    token = wheel.add("gone")
    wheel.add("stays")
    wheel.discard("gone", token)
    wheel.discard("never added", token)  # nothing happens
    await asyncio.sleep(0.08)
    assert fired == ["stays"]


async def test_added_while_firing_fires_later() -> None:
    """An item added again by its own callback waits a whole delay more (a heartbeat)."""
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    wheel: TimerWheel[str] = TimerWheel(loop, 0.02, lambda item: None, 0.005)

    def again(item: str) -> None:
        fired.append(loop.time())
        if len(fired) < 3:
            wheel.add(item)

    wheel._fire = again
    wheel.add("beat")
    await asyncio.sleep(0.2)
    assert len(fired) == 3
    assert fired[1] - fired[0] >= 0.02 - 0.002
    assert fired[2] - fired[1] >= 0.02 - 0.002


async def test_a_failing_callback_is_logged_and_the_rest_fire(caplog) -> None:
    """What a callback raises is logged; the other items of the bucket still fire."""
    caplog.set_level(logging.ERROR, logger="salas.engine")
    loop = asyncio.get_running_loop()
    fired: list[str] = []

    def fire(item: str) -> None:
        if item == "bad":
            raise ValueError("broken callback")
        fired.append(item)

    wheel: TimerWheel[str] = TimerWheel(loop, 0.01, fire, 0.01)
    for item in ("bad", "good", "fine"):
        wheel.add(item)
    await asyncio.sleep(0.06)
    assert sorted(fired) == ["fine", "good"]
    assert "broken callback" in caplog.text


async def test_close_cancels_everything() -> None:
    """After close nothing fires and no loop timer is left."""
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    wheel: TimerWheel[str] = TimerWheel(loop, 0.01, fired.append, 0.005)
    wheel.add("x")
    wheel.close()
    await asyncio.sleep(0.04)
    assert fired == []
    assert wheel._timer is None


@pytest.mark.parametrize("count", [1, 1000])
async def test_one_loop_timer_for_many_items(count: int) -> None:
    """However many items wait, the wheel holds a single loop timer."""
    loop = asyncio.get_running_loop()
    wheel: TimerWheel[int] = TimerWheel(loop, 10.0, lambda item: None)
    timers = []
    original = loop.call_at

    def counting_call_at(when, callback, *args, **kwargs):
        handle = original(when, callback, *args, **kwargs)
        timers.append(handle)
        return handle

    loop.call_at = counting_call_at  # type: ignore[method-assign]
    try:
        for item in range(count):
            wheel.add(item)
    finally:
        del loop.call_at
    assert len(timers) == 1
    wheel.close()


async def test_a_callback_may_cancel_another_of_its_bucket() -> None:
    """A timeout cancelled by an earlier callback of the same bucket does not fire."""
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    tokens: dict[str, int] = {}
    wheel: TimerWheel[str] = TimerWheel(loop, 0.01, lambda item: None, 0.05)

    def fire(item: str) -> None:
        fired.append(item)
        other = "b" if item == "a" else "a"
        wheel.discard(other, tokens[other])

    wheel._fire = fire
    for _ in range(10):  # (the clock may cross a tick between two adds: take another pair)
        tokens["a"] = wheel.add("a")
        tokens["b"] = wheel.add("b")
        if tokens["a"] == tokens["b"]:
            break
        wheel.discard("a", tokens["a"])
        wheel.discard("b", tokens["b"])
    assert tokens["a"] == tokens["b"]  # one bucket
    await asyncio.sleep(0.15)
    assert len(fired) == 1
