"""RoomLocks (salas.cluster.ordering) on the local hub: one node at a time per room, the
lock handed from one local post to the next, released when nobody waits."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import pytest

from salas.cluster import ordering
from salas.cluster.hub import LocalHub
from salas.cluster.node import ClusterNode
from salas.cluster.ordering import RoomLocks


async def _node(hub: LocalHub) -> ClusterNode:
    node = ClusterNode(hub.url, "salas-test-order")
    await node.start()
    return node


class CountingLocks(RoomLocks):
    """RoomLocks counting its Redis acquisitions and releases."""

    acquired = 0
    released = 0

    async def _acquire(self, key: str, token: str) -> None:
        await super()._acquire(key, token)
        self.acquired += 1

    async def _release(self, key: str, token: str, warn: bool = True) -> None:
        await super()._release(key, token, warn)
        self.released += 1


async def test_two_nodes_never_hold_a_room_at_once(hub: LocalHub) -> None:
    """Posts of two nodes in one room run one at a time (their holding spans never overlap),
    and every post runs."""
    a, b = await _node(hub), await _node(hub)
    try:
        locks = [RoomLocks(a), RoomLocks(b)]
        inside: list[str] = []
        overlaps = 0
        done: list[str] = []

        async def post(i: int) -> None:
            nonlocal overlaps
            async with locks[i % 2].hold("lobby"):
                if inside:
                    overlaps += 1
                inside.append(f"p{i}")
                await asyncio.sleep(0.002)
                inside.remove(f"p{i}")
                done.append(f"p{i}")

        await asyncio.gather(*(post(i) for i in range(40)))
        assert overlaps == 0
        assert sorted(done) == sorted(f"p{i}" for i in range(40))
        assert not await a.redis.exists(a.key("lock", "lobby"))  # released at the end
    finally:
        await a.close()
        await b.close()


async def test_queued_local_posts_share_one_acquisition(hub: LocalHub) -> None:
    """Posts queued on one node for a room hand the Redis lock on: one acquisition and one
    release for the lot; a post arriving after the room went quiet acquires again."""
    node = await _node(hub)
    try:
        locks = CountingLocks(node)

        async def post() -> None:
            async with locks.hold("lobby"):
                await asyncio.sleep(0.001)

        await asyncio.gather(*(post() for _ in range(10)))
        assert (locks.acquired, locks.released) == (1, 1)
        await post()
        assert (locks.acquired, locks.released) == (2, 2)
        assert locks._local == {}  # nothing kept for rooms out of use
    finally:
        await node.close()


async def test_a_long_run_of_posts_lets_other_nodes_in(hub: LocalHub) -> None:
    """A node with posts queued for longer than the handoff releases the room and queues
    again, so another node's post gets its turn before the run ends."""
    a, b = await _node(hub), await _node(hub)
    try:
        busy = RoomLocks(a, handoff=0.05)
        other = RoomLocks(b)
        order: list[str] = []

        async def busy_post(i: int) -> None:
            async with busy.hold("lobby"):
                order.append(f"a{i}")
                await asyncio.sleep(0.01)

        async def other_post() -> None:
            await asyncio.sleep(0.02)
            async with other.hold("lobby"):
                order.append("b")

        await asyncio.gather(*(busy_post(i) for i in range(30)), other_post())
        assert "b" in order
        assert order.index("b") < len(order) - 1  # not only after all 30 of a
    finally:
        await a.close()
        await b.close()


def test_the_handoff_must_be_shorter_than_the_lease() -> None:
    """A handoff at or past the lease could let the lock expire while handed on."""
    node = ClusterNode("redis://127.0.0.1:1/0", f"x{secrets.token_hex(2)}")
    with pytest.raises(ValueError):
        RoomLocks(node, lease=1.0, handoff=1.0)


async def test_a_lock_handed_to_a_cancelled_post_is_released(hub: LocalHub) -> None:
    """The post holding a room hands the Redis lock to the one waiting behind it; that one
    is cancelled before it runs: the lock is released at once, not left to its lease, and
    another node gets the room without waiting for it."""
    a, b = await _node(hub), await _node(hub)
    try:
        here, there = RoomLocks(a), RoomLocks(b)
        first_in = asyncio.Event()
        leave = asyncio.Event()

        waiting: list[asyncio.Task[None]] = []

        async def first() -> None:
            async with here.hold("lobby"):
                first_in.set()
                await leave.wait()
            waiting[0].cancel()  # handed on, and cancelled before it runs

        async def second() -> None:
            async with here.hold("lobby"):
                raise AssertionError("cancelled before it ran")

        holder = asyncio.create_task(first())
        await first_in.wait()
        waiting.append(asyncio.create_task(second()))
        await asyncio.sleep(0.01)  # queued behind the holder
        leave.set()
        await holder
        with pytest.raises(asyncio.CancelledError):
            await waiting[0]
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with there.hold("lobby"):
            took = loop.time() - began
        assert took < 1.0  # not the 10 s lease
        assert not await a.redis.exists(a.key("lock", "lobby"))
    finally:
        await a.close()
        await b.close()


async def _hold_then_measure_the_wait(here: RoomLocks, there: RoomLocks, hold: float) -> float:
    """`here` holds the lobby for `hold` seconds while `there` asks for it: how long after
    the release `there` got it."""
    inside = asyncio.Event()
    released_at = 0.0
    loop = asyncio.get_running_loop()

    async def holder() -> None:
        nonlocal released_at
        async with here.hold("lobby"):
            inside.set()
            await asyncio.sleep(hold)
        released_at = loop.time()

    task = asyncio.create_task(holder())
    await inside.wait()
    async with there.hold("lobby"):
        got_at = loop.time()
    await task
    return got_at - released_at


async def test_a_waiting_node_is_told_when_the_room_is_free(
    hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that finds the room held is listed as waiting, and the release tells it: it
    gets the room at once, long before its next attempt would have come (the polling pause
    made 5 s here), and the waiters' list is gone after."""
    monkeypatch.setattr(ordering, "_POLL_MIN", 5.0)
    monkeypatch.setattr(ordering, "_POLL_MAX", 5.0)
    a, b = await _node(hub), await _node(hub)
    try:
        waited = await _hold_then_measure_the_wait(RoomLocks(a), RoomLocks(b), hold=0.1)
        assert waited < 0.5
        assert not await a.redis.exists(a.key("lock", "lobby") + ":waiting")
        assert not await a.redis.exists(a.key("lock", "lobby"))
    finally:
        await a.close()
        await b.close()


async def test_a_waiter_that_misses_the_word_still_gets_the_room(
    hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Word of the release lost (here: never handed on): the waiter tries again after its
    pause, and gets the room then."""
    monkeypatch.setattr(ordering, "_POLL_MAX", 0.05)
    a, b = await _node(hub), await _node(hub)
    try:
        here, there = RoomLocks(a), RoomLocks(b)
        b.on_room_free = None
        waited = await _hold_then_measure_the_wait(here, there, hold=0.2)
        assert waited < 1.0
    finally:
        await a.close()
        await b.close()


async def test_word_of_a_room_reaches_only_the_nodes_waiting_for_it(hub: LocalHub) -> None:
    """Uncontended posts publish nothing to anyone; a contended one tells the waiting node
    only, once."""
    a, b, c = await _node(hub), await _node(hub), await _node(hub)
    heard: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    try:
        locks = {"a": RoomLocks(a), "b": RoomLocks(b), "c": RoomLocks(c)}
        for name, node in (("a", a), ("b", b), ("c", c)):
            told = node.on_room_free
            assert told is not None

            def hear(room: str, name: str = name, told: Callable[[str], None] = told) -> None:
                heard[name].append(room)
                told(room)

            node.on_room_free = hear
        for _ in range(3):
            async with locks["a"].hold("lobby"):
                pass
        await asyncio.sleep(0.05)
        assert heard == {"a": [], "b": [], "c": []}
        await _hold_then_measure_the_wait(locks["a"], locks["b"], hold=0.05)
        await asyncio.sleep(0.05)
        assert heard == {"a": [], "b": ["lobby"], "c": []}
    finally:
        for node in (a, b, c):
            await node.close()
