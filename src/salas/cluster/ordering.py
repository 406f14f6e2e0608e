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
`handoff` seconds of holding in a row all the same, so the other nodes get their turn. And
the last post's publish usually releases the lock itself, in the same script
(:mod:`salas.cluster.turns`): a message in a quiet room costs two commands, not three.

A node that finds a room held waits for word that it is free rather than polling Redis: the
script that failed to take the lock (:data:`~salas.cluster.scripts.ACQUIRE_SCRIPT`) lists
the node among the room's waiters (``<prefix>:lock:<room>:waiting``, a set), and the script
that releases it (:data:`~salas.cluster.scripts.RELEASE_SCRIPT`) publishes the room's name
to each waiting node's channel (``<prefix>:free:<node>``) — only to nodes that wait, and
only when some do. The waiter tries again as soon as the word comes, and in any case after a
pause that grows to `_POLL_MAX` (a word lost while a subscription reconnects, a holder that
died and whose lease ran out).

A lock handed on to a post that is cancelled before it runs is released all the same (by a
task of its own). The Redis lock expires after `lease` seconds, so a node that dies holding
it blocks the room for that long at most; a store write slower than the lease could let a
next node in early (logged). Without Redis, a post cannot hold its room and fails
``unavailable``; the client sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator

from salas.chat.errors import UNAVAILABLE, ChatError
from salas.cluster.node import ClusterNode
from salas.cluster.scripts import ACQUIRE_SCRIPT, RELEASE_SCRIPT
from salas.cluster.turns import TurnEnd, offering

__all__ = ["DEFAULT_HANDOFF", "DEFAULT_LEASE", "RoomLocks"]

logger = logging.getLogger("salas.cluster")

# Seconds a node may hold a room in Redis (a store write takes milliseconds).
DEFAULT_LEASE = 10.0
# Seconds a node may keep a room in a row, handing the lock from one of its posts to the
# next, before it releases it and queues for it again (well under the lease).
DEFAULT_HANDOFF = 0.5
# A post waits at most this long for its room; between attempts it waits for word that the
# room is free, or this long at most (the first pause is _POLL_MIN, doubling).
_WAIT = 10.0
_POLL_MIN = 0.005
_POLL_MAX = 0.1
# After a handoff run, a node leaves the room free this long first, so that a node waiting
# for it (woken by the release) takes it before this node's next post does.
_YIELD = 0.02


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
        self._acquire_script = node.pipe.script(ACQUIRE_SCRIPT)
        self._release_script = node.pipe.script(RELEASE_SCRIPT)
        # The room each waiting post of this node waits for word of (one per room: the
        # local lock lets one post at a time try for it).
        self._freed: dict[str, asyncio.Future[None]] = {}
        # A lock's token: this node's id (random, per process) and a count, unique without
        # asking the system for random bytes per message.
        self._tokens = itertools.count(1)
        node.on_room_free = self._on_room_free

    @contextlib.asynccontextmanager
    async def hold(self, room: str) -> AsyncIterator[None]:
        """Hold `room` in this process, then in Redis (see the module)."""
        state = self._local.get(room)
        if state is None:
            state = self._local[room] = _Room()
        state.users += 1
        loop = asyncio.get_running_loop()
        try:
            async with state.lock:
                if state.token is not None and loop.time() - state.held_since > self.handoff:
                    # Held long enough: the others' turn. A node waiting for the room is
                    # told by the release and takes it while this one pauses.
                    await self._let_go(room, state)
                    await asyncio.sleep(_YIELD)
                if state.token is None:
                    token = f"{self.node.node_id}:{next(self._tokens)}"
                    await self._acquire(room, token)
                    state.token, state.held_since = token, loop.time()
                turn = self._turn_end(room, state)
                try:
                    with offering(turn):
                        yield
                finally:
                    if turn.released is not None:  # the publish ended the turn
                        state.token = None
                        if not turn.released:
                            _expired_while_held(self.lease)
                    elif state.users == 1:  # nobody here waits for the room: release it
                        # (Quietly if a publish took the turn's end and its answer was lost:
                        # the lock is likely released already.)
                        await self._let_go(room, state, warn=not turn.taken)
        finally:
            state.users -= 1
            if state.users == 0:
                if state.token is not None:
                    # Handed on to a post that was then cancelled before it ran: release
                    # it from a task of its own (nobody here will hold it again).
                    self._release_later(room, state.token)
                    state.token = None
                del self._local[room]  # (rooms come and go: keep only those in use)

    def _turn_end(self, room: str, state: _Room) -> TurnEnd:
        """The end of this turn at `room`, for the post's publish to take if it is still the
        last post here for the room by then."""
        assert state.token is not None
        return TurnEnd(
            self._keys(room),
            self._release_args(room, state.token),
            asyncio.current_task(),
            lambda: state.users == 1,
        )

    def _release_later(self, room: str, token: str) -> None:
        task = asyncio.get_running_loop().create_task(self._release(room, token))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _let_go(self, room: str, state: _Room, warn: bool = True) -> None:
        token, state.token = state.token, None
        if token is not None:
            await self._release(room, token, warn)

    def _release_args(self, room: str, token: str) -> list[str | bytes | int | float]:
        """RELEASE_SCRIPT's arguments (the combined script's last three too)."""
        return [token, self.node.free_channel_prefix, room]

    def _keys(self, room: str) -> list[str]:
        lock = self.node.key("lock", room)
        return [lock, lock + ":waiting"]

    def _on_room_free(self, room: str) -> None:
        """Word from the node that released `room`: the post waiting for it tries again."""
        freed = self._freed.pop(room, None)
        if freed is not None and not freed.done():
            freed.set_result(None)

    async def _acquire(self, room: str, token: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WAIT
        pause = _POLL_MIN
        args: list[str | bytes | int | float] = [token, int(self.lease * 1000), self.node.node_id]
        while True:
            # Listening before asking: the word may come before the script's answer.
            freed: asyncio.Future[None] = loop.create_future()
            self._freed[room] = freed
            try:
                try:
                    taken = await self._acquire_script(keys=self._keys(room), args=args)
                except Exception as exc:
                    logger.warning("cluster: cannot hold a room in Redis (%s)", exc)
                    raise ChatError(UNAVAILABLE, "the chat cannot reach Redis; try again") from exc
                if taken:
                    return
                if loop.time() > deadline:
                    raise ChatError(UNAVAILABLE, "the room is busy; try again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(freed, pause)
                pause = min(pause * 2, _POLL_MAX)
            finally:
                if self._freed.get(room) is freed:
                    del self._freed[room]

    async def _release(self, room: str, token: str, warn: bool = True) -> None:
        try:
            released = await self._release_script(
                keys=self._keys(room), args=self._release_args(room, token)
            )
        except Exception as exc:  # it expires by itself
            logger.warning("cluster: cannot release a room in Redis (%s)", exc)
            return
        if not released and warn:
            _expired_while_held(self.lease)


def _expired_while_held(lease: float) -> None:
    logger.warning("cluster: a room's lock expired while held (a write slower than %ss)", lease)
