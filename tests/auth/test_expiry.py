"""Token expiries on one loop timer (salas.auth.expiry.Expiries)."""

from __future__ import annotations

import asyncio
import gc
import logging

from salas.auth import expiry as expiry_module
from salas.auth.expiry import Expiries


class Item:
    """Something that expires (weakly referenceable, as a Socket is)."""

    def __init__(self, name: str) -> None:
        self.name = name


class Recorder:
    def __init__(self) -> None:
        self.fired: list[str] = []
        self.changed = asyncio.Event()

    def __call__(self, item: Item) -> None:
        self.fired.append(item.name)
        self.changed.set()

    async def until(self, count: int, timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.fired) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_fire_in_order_of_time_each_once() -> None:
    """Items expire in the order of their times, not of `set`, each once; a delay that is
    not positive expires at the loop's next turn."""
    seen = Recorder()
    expiries: Expiries[Item] = Expiries(seen)
    items = [Item("late"), Item("early"), Item("now"), Item("middle")]
    for item, delay in zip(items, (0.09, 0.03, -5.0, 0.06), strict=True):
        expiries.set(item, delay)
    assert len(expiries) == 4
    await seen.until(4)
    await asyncio.sleep(0.05)  # nothing fires twice
    assert seen.fired == ["now", "early", "middle", "late"]
    assert len(expiries) == 0


async def test_cancel_and_replace() -> None:
    """A cancelled item never expires; setting an item again replaces its earlier time."""
    seen = Recorder()
    expiries: Expiries[Item] = Expiries(seen)
    kept, cancelled, moved = Item("kept"), Item("cancelled"), Item("moved")
    expiries.set(cancelled, 0.01)
    expiries.set(moved, 0.01)
    expiries.set(kept, 0.05)
    expiries.cancel(cancelled)
    expiries.cancel(Item("never set"))  # nothing to cancel: fine
    expiries.set(moved, 0.08)
    assert len(expiries) == 2
    await seen.until(2)
    assert seen.fired == ["kept", "moved"]


async def test_items_are_held_weakly() -> None:
    """An item dropped before its time is collected, not counted, and never expires."""
    seen = Recorder()
    expiries: Expiries[Item] = Expiries(seen)
    dropped = Item("dropped")
    expiries.set(dropped, 0.01)
    expiries.set(Item("collected at once"), 0.01)
    stays = Item("stays")
    expiries.set(stays, 0.03)
    del dropped
    gc.collect()
    assert len(expiries) == 1
    await seen.until(1)
    assert seen.fired == ["stays"]


async def test_churn_cannot_grow_the_heap_without_bound() -> None:
    """Sockets coming and going with long-lived tokens (set, then cancelled or collected)
    leave at most a bounded number of stale entries; an honest item still expires."""
    seen = Recorder()
    expiries: Expiries[Item] = Expiries(seen)
    honest = Item("honest")
    expiries.set(honest, 0.05)
    for i in range(5000):
        churned = Item(f"c{i}")
        expiries.set(churned, 3600.0)
        if i % 2:
            expiries.cancel(churned)
        del churned  # (collected: its entry is stale as well)
    assert len(expiries) == 1
    assert len(expiries._heap) <= 2 * len(expiries) + expiry_module._STALE_MARGIN + 1
    await seen.until(1)
    assert seen.fired == ["honest"]


async def test_raising_callback_is_logged_and_others_still_expire(caplog) -> None:
    """An expiry callback that raises is logged; the other items expire all the same, and
    one that sets a new expiry from its callback gets it."""
    fired: list[str] = []
    done = asyncio.Event()
    again = Item("again")

    def expire(item: Item) -> None:
        fired.append(item.name)
        if item.name == "bad":
            raise RuntimeError("boom")
        if item.name == "again" and fired.count("again") == 1:
            expiries.set(again, 0.01)
        if fired.count("again") == 2:
            done.set()

    expiries: Expiries[Item] = Expiries(expire)
    bad, good = Item("bad"), Item("good")
    expiries.set(bad, 0.01)
    expiries.set(good, 0.01)
    expiries.set(again, 0.02)
    with caplog.at_level(logging.ERROR, logger="salas.auth"):
        await asyncio.wait_for(done.wait(), 3)
    assert fired == ["bad", "good", "again", "again"]
    assert "error in an expiry callback" in caplog.text


async def test_close_cancels_everything() -> None:
    """close forgets every expiry and stops the timer."""
    seen = Recorder()
    expiries: Expiries[Item] = Expiries(seen)
    item = Item("x")
    expiries.set(item, 0.01)
    expiries.close()
    await asyncio.sleep(0.05)
    assert seen.fired == [] and len(expiries) == 0
