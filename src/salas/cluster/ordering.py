"""`RoomLocks`: the nodes of a cluster take turns per room to store and publish a message.

A message's id comes from the database when it commits, and its broadcast crosses Redis
after that: two nodes committing ids 5 and 6 at once could publish 6 first, and a member
would see 6 before 5. So a node holds the room while it stores and publishes a message: a
lock in this process (its own posts queue, in the order they came) and one in Redis
(``<prefix>:lock:<room>``, ``SET NX PX`` with a token of its own, released by a script that
deletes it only if it still holds that token). Redis runs the publishes in the order the
locks were held, and every node reads them in that order: a room's messages reach every
node in id order.

A node with more posts queued for a room when one is done hands the Redis lock on to the
next of them instead of releasing and taking it again: under load a room's posts through
one node cost no Redis round trip for the lock but the first and the last. It lets go after
`handoff` seconds of holding in a row all the same, so the other nodes get their turn.

A lock handed on to a post that is cancelled before it runs is released all the same (by a
task of its own). The Redis lock expires after `lease` seconds, so a node that dies holding
it blocks the room for that long at most; a store write slower than the lease could let a
next node in early (logged). Without Redis, a post cannot hold its room and fails
``unavailable``; the client sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from salas.chat.errors import UNAVAILABLE, ChatError
from salas.cluster.node import ClusterNode

__all__ = ["DEFAULT_HANDOFF", "DEFAULT_LEASE", "RELEASE_SCRIPT", "RoomLocks"]

logger = logging.getLogger("salas.cluster")

# Seconds a node may hold a room in Redis (a store write takes milliseconds).
DEFAULT_LEASE = 10.0
# Seconds a node may keep a room in a row, handing the lock from one of its posts to the
# next, before it releases it and queues for it again (well under the lease).
DEFAULT_HANDOFF = 0.5
# A post waits at most this long for its room, polling at most this far apart.
_WAIT = 10.0
_POLL_MAX = 0.02
# After a handoff run, a node leaves the room free this long (longer than a poll) first.
_YIELD = 2 * _POLL_MAX
#: KEYS: the lock. ARGV: the holder's token. Deletes the lock only if it is still the holder's.
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class _Room:
    """This process's turn at one room: its local lock, how many posts use it, and the Redis
    lock while held (its token and since when)."""

    __slots__ = ("held_since", "lock", "token", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
        self.token: str | None = None
        self.held_since = 0.0


class RoomLocks:
    """`salas.chat.messages.RoomSerializer` over Redis for the nodes of `node`'s cluster."""

    def __init__(
        self, node: ClusterNode, lease: float = DEFAULT_LEASE, handoff: float = DEFAULT_HANDOFF
    ) -> None:
        if not 0 < handoff < lease:
            raise ValueError("the handoff must be positive and shorter than the lease")
        self.node = node
        self.lease = lease
        self.handoff = handoff
        self._local: dict[str, _Room] = {}  # rooms in use here
        self._releasing: set[asyncio.Task[None]] = set()  # releases nobody awaits
        self._release_script = node.pipe.script(RELEASE_SCRIPT)

    @contextlib.asynccontextmanager
    async def hold(self, room: str) -> AsyncIterator[None]:
        """Hold `room` in this process, then in Redis (see the module)."""
        state = self._local.get(room)
        if state is None:
            state = self._local[room] = _Room()
        state.users += 1
        key = self.node.key("lock", room)
        loop = asyncio.get_running_loop()
        try:
            async with state.lock:
                if state.token is not None and loop.time() - state.held_since > self.handoff:
                    # Held long enough: the others' turn. Released for longer than their
                    # polling pause, so that a node waiting for the room sees it free.
                    await self._let_go(key, state)
                    await asyncio.sleep(_YIELD)
                if state.token is None:
                    token = secrets.token_hex(8)
                    await self._acquire(key, token)
                    state.token, state.held_since = token, loop.time()
                try:
                    yield
                finally:
                    if state.users == 1:  # nobody here waits for the room: release it
                        await self._let_go(key, state)
        finally:
            state.users -= 1
            if state.users == 0:
                if state.token is not None:
                    # Handed on to a post that was then cancelled before it ran: release
                    # it from a task of its own (nobody here will hold it again).
                    self._release_later(key, state.token)
                    state.token = None
                del self._local[room]  # (rooms come and go: keep only those in use)

    def _release_later(self, key: str, token: str) -> None:
        task = asyncio.get_running_loop().create_task(self._release(key, token))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _let_go(self, key: str, state: _Room) -> None:
        token, state.token = state.token, None
        if token is not None:
            await self._release(key, token)

    async def _acquire(self, key: str, token: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WAIT
        pause = 0.001
        while True:
            try:
                taken = await self.node.pipe.execute(
                    "SET", key, token, "NX", "PX", int(self.lease * 1000)
                )
            except Exception as exc:
                logger.warning("cluster: cannot hold a room in Redis (%s)", exc)
                raise ChatError(UNAVAILABLE, "the chat cannot reach Redis; try again") from exc
            if taken:
                return
            if loop.time() > deadline:
                raise ChatError(UNAVAILABLE, "the room is busy; try again")
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX)

    async def _release(self, key: str, token: str) -> None:
        try:
            released = await self._release_script(keys=[key], args=[token])
        except Exception as exc:  # it expires by itself
            logger.warning("cluster: cannot release a room in Redis (%s)", exc)
            return
        if not released:
            logger.warning(
                "cluster: a room's lock expired while held (a write slower than %ss)", self.lease
            )
