"""A room's turn ended by its message's publish (salas.cluster.turns): who may take the
offer, and RoomLocks with the Redis adapter on a real Redis and on the local hub — a quiet
room's post publishes and releases in one command, a queued post keeps the turn going, a
lock lost meanwhile is reported and not released twice."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from salas import Server
from salas.adapter import redis_adapter
from salas.cluster import turns
from salas.cluster.hub import LocalHub
from salas.cluster.node import ClusterNode
from salas.cluster.ordering import RoomLocks
from salas.recovery import RecoveryOptions, open_recovery_store


def _turn(last: Callable[[], bool] = lambda: True) -> turns.TurnEnd:
    return turns.TurnEnd(
        ["lock", "lock:waiting"], ["token", "free:", "room"], asyncio.current_task(), last
    )


async def test_no_offer_no_turn() -> None:
    """Outside an offer there is nothing to take."""
    assert turns.take() is None


async def test_the_offer_is_taken_once_by_its_task() -> None:
    """Inside the block the holding task takes it, once; after the block it is gone."""
    turn = _turn()
    with turns.offering(turn):
        assert turns.take() is turn
        assert turn.taken
        assert turns.take() is None
    assert turns.take() is None


async def test_a_task_started_inside_the_offer_cannot_take_it() -> None:
    """A task inherits the context but is not the holder: the offer stays untaken."""
    turn = _turn()
    with turns.offering(turn):
        taken = await asyncio.get_running_loop().create_task(_take_in_task())
        assert taken is None and not turn.taken
        assert turns.take() is turn


async def _take_in_task() -> turns.TurnEnd | None:
    return turns.take()


async def test_not_taken_while_another_post_waits_for_the_room() -> None:
    """`last` false: nothing taken, and the offer is still there once it turns true."""
    waiting = [True]
    turn = _turn(lambda: not waiting[0])
    with turns.offering(turn):
        assert turns.take() is None and not turn.taken
        waiting[0] = False
        assert turns.take() is turn


class CountingLocks(RoomLocks):
    """RoomLocks counting the releases it sends itself (not those a publish made)."""

    released = 0

    async def _release(self, room: str, token: str, warn: bool = True) -> None:
        await super()._release(room, token, warn)
        self.released += 1


@pytest.fixture(params=["redis", "hub"])
async def cluster_url(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[str]:
    """The real Redis, and the local hub running the scripts' twins."""
    if request.param == "redis":
        yield redis_url
        return
    hub = LocalHub()
    await hub.start()
    try:
        yield hub.url
    finally:
        await hub.close()


@pytest.fixture
async def node_and_server(
    cluster_url: str, tmp_path: Path
) -> AsyncIterator[tuple[ClusterNode, Server]]:
    """A cluster node and a server whose adapter numbers broadcasts (recovery on)."""
    prefix = "salas-test-" + secrets.token_hex(4)
    node = ClusterNode(cluster_url, prefix)
    await node.start()
    store = open_recovery_store(f"sqlite://{tmp_path / 'recovery.db'}")
    io = Server(
        adapter=redis_adapter(cluster_url, prefix),
        connection_state_recovery=RecoveryOptions(store=store),
        serve_client=False,
    )
    await io.start("127.0.0.1", 0)
    try:
        yield node, io
    finally:
        await io.shutdown()
        await node.close()


async def _lock_exists(node: ClusterNode, room: str) -> bool:
    return bool(await node.redis.exists(node.key("lock", room)))


async def test_a_quiet_rooms_publish_ends_the_turn(
    node_and_server: tuple[ClusterNode, Server],
) -> None:
    """The lock is gone as soon as the publish returns, and the holder sends no release."""
    node, io = node_and_server
    locks = CountingLocks(node)
    async with locks.hold("lobby"):
        assert await _lock_exists(node, "lobby")
        await io.emit("message", "hello")
        assert not await _lock_exists(node, "lobby")
    assert locks.released == 0


async def test_a_queued_post_keeps_the_turn_and_the_last_one_ends_it(
    node_and_server: tuple[ClusterNode, Server],
) -> None:
    """With a second post of this node waiting, the first publish leaves the lock to it;
    the second's publish releases it; no release of the holder's own."""
    node, io = node_and_server
    locks = CountingLocks(node)
    held_after: list[bool] = []
    first_inside = asyncio.Event()

    async def post(text: str, first: bool) -> None:
        async with locks.hold("lobby"):
            if first:
                first_inside.set()
                await asyncio.sleep(0.05)  # the second post queues meanwhile
            await io.emit("message", text)
            held_after.append(await _lock_exists(node, "lobby"))

    one = asyncio.ensure_future(post("one", True))
    await first_inside.wait()
    two = asyncio.ensure_future(post("two", False))
    await asyncio.gather(one, two)
    assert held_after == [True, False]
    assert locks.released == 0
    assert not await _lock_exists(node, "lobby")


async def test_a_lock_lost_while_held_is_reported_once(
    node_and_server: tuple[ClusterNode, Server], caplog: pytest.LogCaptureFixture
) -> None:
    """A lock that expired (deleted here) and was taken by another node: the publish still
    goes out, the other node's lock stays, and the loss is logged once."""
    node, io = node_and_server
    locks = CountingLocks(node)
    lock = node.key("lock", "lobby")
    with caplog.at_level(logging.WARNING, logger="salas.cluster"):
        async with locks.hold("lobby"):
            await node.redis.set(lock, "another-node:1")
            await io.emit("message", "hello")
    assert await node.redis.get(lock) == b"another-node:1"
    assert locks.released == 0
    lost = [r for r in caplog.records if "expired while held" in r.getMessage()]
    assert len(lost) == 1
