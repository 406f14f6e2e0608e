"""`RoomLocks`: the nodes of a cluster take turns per room to store and publish a message.

A message's id comes from the database when it commits, and its broadcast crosses Redis
after that: two nodes committing ids 5 and 6 at once could publish 6 first, and a member
would see 6 before 5. So a node holds the room while it stores and publishes a message: a
lock in this process (its own posts queue, in the order they came) and one in Redis
(``<prefix>:lock:<room>``, ``SET NX PX`` with a token of its own, released by a script that
deletes it only if it still holds that token). Redis runs the publishes in the order the
locks were held, and every node reads them in that order: a room's messages reach every
node in id order.

The Redis lock expires after `lease` seconds, so a node that dies holding it blocks the
room for that long at most; a store write slower than the lease could let a next node in
early (logged). Without Redis, a post cannot hold its room and fails ``unavailable``; the
client sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from salas.chat.errors import UNAVAILABLE, ChatError
from salas.cluster.node import ClusterNode

__all__ = ["DEFAULT_LEASE", "RELEASE_SCRIPT", "RoomLocks"]

logger = logging.getLogger("salas.cluster")

# Seconds a node may hold a room in Redis (a store write takes milliseconds).
DEFAULT_LEASE = 10.0
# A post waits at most this long for its room.
_WAIT = 10.0
#: KEYS: the lock. ARGV: the holder's token. Deletes the lock only if it is still the holder's.
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RoomLocks:
    """`salas.chat.messages.RoomSerializer` over Redis for the nodes of `node`'s cluster."""

    def __init__(self, node: ClusterNode, lease: float = DEFAULT_LEASE) -> None:
        self.node = node
        self.lease = lease
        self._local: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # room -> lock, users

    @contextlib.asynccontextmanager
    async def hold(self, room: str) -> AsyncIterator[None]:
        """Hold `room` in this process, then in Redis (see the module)."""
        entry = self._local.get(room)
        if entry is None:
            entry = self._local[room] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                token = secrets.token_hex(8)
                key = self.node.key("lock", room)
                await self._acquire(key, token)
                try:
                    yield
                finally:
                    await self._release(key, token)
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._local[room]  # (rooms come and go: keep only those in use)

    async def _acquire(self, key: str, token: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WAIT
        pause = 0.001
        while True:
            try:
                taken = await self.node.redis.set(key, token, nx=True, px=int(self.lease * 1000))
            except Exception as exc:
                logger.warning("cluster: cannot hold a room in Redis (%s)", exc)
                raise ChatError(UNAVAILABLE, "the chat cannot reach Redis; try again") from exc
            if taken:
                return
            if loop.time() > deadline:
                raise ChatError(UNAVAILABLE, "the room is busy; try again")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.02)

    async def _release(self, key: str, token: str) -> None:
        try:
            released = await self.node.redis.eval(RELEASE_SCRIPT, 1, key, token)
        except Exception as exc:  # it expires by itself
            logger.warning("cluster: cannot release a room in Redis (%s)", exc)
            return
        if not released:
            logger.warning(
                "cluster: a room's lock expired while held (a write slower than %ss)", self.lease
            )
