"""The hub's Python twins of salas' Lua scripts (salas.cluster.hub_scripts) against the scripts
themselves on a real Redis: the same calls, in the same order, must answer the same, publish
the same and leave the same keys, so that a script and its twin cannot drift apart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from salas.cluster.hub import LocalHub
from salas.cluster.hub_scripts import SCRIPTS, sha1_of
from salas.cluster.scripts import (
    ACQUIRE_SCRIPT,
    RELEASE_SCRIPT,
    SEQUENCE_AND_RELEASE_SCRIPT,
    SEQUENCE_SCRIPT,
)
from tests.support.services import delete_redis_keys


class Prefixed(str):
    """A script argument that names a channel or key: the side's prefix is put before it."""


# One step: (script, keys, args), keys (and Prefixed args) named without the test's prefix.
Step = tuple[str, list[str], list[Any]]


class Side:
    """One server (the real Redis or the hub) and what its scripts answered and published."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = aioredis.from_url(url)
        self.prefix = prefix
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.answers: list[Any] = []

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def run(self, steps: list[Step]) -> None:
        await self.pubsub.subscribe(self.key("channel"))
        for script, keys, args in steps:
            try:
                answer: Any = await self.client.eval(
                    script,
                    len(keys),
                    *(self.key(k) for k in keys),
                    *(self.key(a) if isinstance(a, Prefixed) else a for a in args),
                )
            except ResponseError:
                answer = "error"  # (the two word their errors differently)
            self.answers.append(answer)

    async def published(self) -> list[bytes]:
        """What the steps published, read until a marker published after them."""
        marker = b"end-of-steps"
        await self.client.publish(self.key("channel"), marker)
        got: list[bytes] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not got or got[-1] != marker:
            assert loop.time() < deadline, got
            item = await self.pubsub.get_message(timeout=0.5)
            if item is not None:
                got.append(item["data"])
        return got[:-1]

    async def state(self, names: list[str]) -> dict[str, Any]:
        """Each key's value: a string, a hash, a set, or None."""
        found: dict[str, Any] = {}
        for name in names:
            key = self.key(name)
            try:
                found[name] = await self.client.get(key)
            except ResponseError:  # WRONGTYPE: a hash or a set
                try:
                    found[name] = await self.client.hgetall(key)
                except ResponseError:
                    found[name] = await self.client.smembers(key)
        return found

    async def close(self) -> None:
        await self.pubsub.aclose()
        await self.client.aclose()


@pytest.fixture
async def sides(redis_url: str, hub: LocalHub) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Runs steps on the real Redis (keys under a prefix of this test's own, deleted
    afterwards) and on the hub; returns both sides' answers, publications and keys."""
    prefix = f"salas-test:{uuid.uuid4().hex}:"
    made: list[Side] = []

    async def compare(steps: list[Step], keys: list[str], setup: tuple[Step, ...] = ()) -> None:
        real, twin = Side(redis_url, prefix), Side(hub.url, prefix)
        made.extend((real, twin))
        for side in (real, twin):
            for command, names, args in setup:
                await side.client.execute_command(command, *(side.key(n) for n in names), *args)
            await side.run(steps)
        assert twin.answers == real.answers
        assert await twin.published() == await real.published()
        assert await twin.state(keys) == await real.state(keys)
        return None

    yield compare
    await delete_redis_keys(redis_url, prefix)
    for side in made:
        await side.close()


def test_every_twin_is_of_a_script_salas_runs() -> None:
    """The hub knows exactly salas' four scripts, by the SHA1 redis-py computes for them."""
    assert set(SCRIPTS) == {
        sha1_of(SEQUENCE_SCRIPT),
        sha1_of(ACQUIRE_SCRIPT),
        sha1_of(RELEASE_SCRIPT),
        sha1_of(SEQUENCE_AND_RELEASE_SCRIPT),
    }


async def test_the_sequence_twin_answers_and_publishes_as_the_script(sides: Any) -> None:
    """Offsets counted, floors above, at and below the count reached, each publication
    "<offset> <message>", the counter left where the script leaves it; a floor that is not a
    number is an error on both (after the script's INCR, which stays, on both)."""
    floors = [0, 0, 3, 10, 12, 3, 100, 0]  # (3 and 12: equal to the count reached)
    steps: list[Step] = [
        (SEQUENCE_SCRIPT, ["counter", "channel"], [f"m{n}".encode(), floor])
        for n, floor in enumerate(floors)
    ]
    steps.append((SEQUENCE_SCRIPT, ["counter", "channel"], [b"bad", b"not-a-number"]))
    steps.append((SEQUENCE_SCRIPT, ["counter", "channel"], [b"with space and \xff", 0]))
    await sides(steps, ["counter"])


async def test_the_sequence_twin_on_a_counter_that_is_not_a_number(sides: Any) -> None:
    """A counter key holding text or a hash: both refuse, nothing published."""
    steps: list[Step] = [(SEQUENCE_SCRIPT, ["text", "channel"], [b"m", 0])]
    steps.append((SEQUENCE_SCRIPT, ["hash", "channel"], [b"m", 0]))
    setup = (("SET", ["text"], ["abc"]), ("HSET", ["hash"], ["f", "v"]))
    await sides(steps, ["text", "hash"], setup)


async def test_the_acquire_twin_takes_a_free_lock_or_lists_the_waiter(sides: Any) -> None:
    """A free lock: 1 and taken with the token; held: 0 and the node in the waiters' set
    (twice: once); a lock key of another type: an error on both."""
    lease = 10_000
    steps: list[Step] = [
        (ACQUIRE_SCRIPT, ["lock", "waiting"], [b"t1", lease, b"node-a"]),
        (ACQUIRE_SCRIPT, ["lock", "waiting"], [b"t2", lease, b"node-b"]),
        (ACQUIRE_SCRIPT, ["lock", "waiting"], [b"t3", lease, b"node-c"]),
        (ACQUIRE_SCRIPT, ["lock", "waiting"], [b"t4", lease, b"node-b"]),
        (ACQUIRE_SCRIPT, ["hash", "hash-waiting"], [b"t5", lease, b"node-a"]),
    ]
    setup = (("HSET", ["hash"], ["f", "v"]),)
    await sides(steps, ["lock", "waiting", "hash", "hash-waiting"], setup)


async def test_the_release_twin_deletes_only_its_own_lock(sides: Any) -> None:
    """No lock: 0; another holder's: 0 and kept, its waiters untold; its own: 1, gone, and
    its waiter told the room on its channel, the waiters' set gone; released twice: 0; a
    key of another type: an error on both."""
    words = [Prefixed("chan"), b"the room"]  # the waiter "nel" listens on "channel"
    steps: list[Step] = [
        (RELEASE_SCRIPT, ["none", "none-waiting"], [b"t1", *words]),
        (RELEASE_SCRIPT, ["theirs", "theirs-waiting"], [b"t1", *words]),
        (RELEASE_SCRIPT, ["mine", "mine-waiting"], [b"t1", *words]),
        (RELEASE_SCRIPT, ["mine", "mine-waiting"], [b"t1", *words]),
        (RELEASE_SCRIPT, ["alone", "alone-waiting"], [b"t1", *words]),
        (RELEASE_SCRIPT, ["hash", "hash-waiting"], [b"t1", *words]),
    ]
    setup = (
        ("SET", ["theirs"], ["t2"]),
        ("SADD", ["theirs-waiting"], ["nel"]),
        ("SET", ["mine"], ["t1"]),
        ("SADD", ["mine-waiting"], ["nel"]),
        ("SET", ["alone"], ["t1"]),
        ("HSET", ["hash"], ["f", "v"]),
    )
    keys = ["theirs", "theirs-waiting", "mine", "mine-waiting", "alone", "hash", "none"]
    await sides(steps, keys, setup)


async def test_the_sequence_and_release_twin_publishes_then_releases(sides: Any) -> None:
    """The message published with its offset in every case; then its own lock: released,
    its waiter told ({offset, 1}); another holder's or none: kept ({offset, 0}); a lock key
    of another type: an error on both, after the publish (which stays, on both)."""
    words = [Prefixed("chan"), b"the room"]  # the waiter "nel" listens on "channel"
    sequence = ["counter", "channel"]

    def step(lock: str, floor: int, n: int) -> Step:
        keys = [*sequence, lock, f"{lock}-waiting"]
        return (SEQUENCE_AND_RELEASE_SCRIPT, keys, [f"m{n}".encode(), floor, b"t1", *words])

    steps: list[Step] = [
        step("mine", 0, 1),
        step("mine", 0, 2),  # released already: 0
        step("theirs", 5, 3),  # a floor above the count
        step("none", 0, 4),
        step("hash", 0, 5),
    ]
    setup = (
        ("SET", ["theirs"], ["t2"]),
        ("SADD", ["theirs-waiting"], ["nel"]),
        ("SET", ["mine"], ["t1"]),
        ("SADD", ["mine-waiting"], ["nel"]),
        ("HSET", ["hash"], ["f", "v"]),
    )
    keys = ["counter", "mine", "mine-waiting", "theirs", "theirs-waiting", "hash", "none"]
    await sides(steps, keys, setup)
