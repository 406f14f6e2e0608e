"""One process's place in a cluster of `salas serve` processes sharing one Redis.

A :class:`ClusterNode` has a random id, proves it is alive with a heartbeat key that expires
(``<prefix>:alive:<node>``, refreshed every ``heartbeat`` seconds, gone ``ttl`` seconds after
the process stops refreshing it — Centrifugo's model), lists itself in ``<prefix>:nodes``,
and carries the chat's cluster messages (presence records, evictions) on one pub/sub
channel, ``<prefix>:cluster``; a second channel, its own, brings word that a room it waits
for is free (salas.cluster.ordering). What it sends is queued and written in order by one task, so
the other nodes read one node's messages in the order it sent them; a message that updates
shared state goes in one MULTI with the state it announces (what a node reads from Redis
is never older than the messages it has yet to receive).

A node whose heartbeat key has expired is dead: the first surviving node that notices it
claims its cleanup with ``SET NX`` (``<prefix>:reap:<node>``), so it is cleaned up (and its
members' departures announced) once.

Redis going away: the node keeps serving its own sockets, retries with a backoff, and
once Redis answers again it resubscribes and calls ``on_reconnect`` (the presence republishes
its own records and reloads the others').

redis-py is the ``redis`` extra, imported when a node is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from salas._tasks import report_stuck, stop_tasks
from salas.adapter.redis import connect, load_redis
from salas.adapter.redis_pipe import CommandPipe
from salas.adapter.redis_subscription import Subscription

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["DEFAULT_HEARTBEAT", "DEFAULT_TTL", "ClusterNode", "Handler", "Write", "text"]

logger = logging.getLogger("salas.cluster")

# A node refreshes its heartbeat this often (seconds) ...
DEFAULT_HEARTBEAT = 1.0
# ... and is taken for dead this long after its last refresh: its members are removed
# within about DEFAULT_TTL + DEFAULT_HEARTBEAT seconds of its death.
DEFAULT_TTL = 3.0
# A dead node's cleanup is claimed for this long (seconds) by the node doing it.
_REAP_CLAIM = 60
# Waits between reconnection attempts grow up to this (seconds).
_BACKOFF_MAX = 2.0
# Queued cluster messages past this many while Redis is away are dropped (the presence
# resynchronises from Redis's state once it is back).
_QUEUE_MAX = 100_000

Handler = Callable[[str, dict[str, Any]], None]
"""A cluster message's handler: (the sending node's id, the message)."""


def text(value: bytes | str) -> str:
    """A Redis reply's bytes as text."""
    return value.decode() if isinstance(value, bytes) else value


class Write:
    """A state change to make in Redis with the message that announces it (one MULTI).

    ``hset``/``hdel``: (key, field, value) / (key, field) operations on hashes."""

    __slots__ = ("hdel", "hset", "message")

    def __init__(
        self,
        message: dict[str, Any] | None,
        hset: tuple[str, str, bytes] | None = None,
        hdel: tuple[str, str] | None = None,
    ) -> None:
        self.message = message
        self.hset = hset
        self.hdel = hdel


class ClusterNode:
    """This process in the cluster of every node using `url` and `prefix` (see the module).

    Args:
        url: The Redis URL.
        prefix: The first part of every key and channel of the cluster.
        heartbeat: Seconds between heartbeats (and between checks for dead nodes).
        ttl: Seconds after which a node that stopped its heartbeat counts as dead.

    Attributes:
        node_id: This node's random id.
        on_message: Handlers of the cluster messages by their ``kind``.
        on_dead: Called with a dead node's id by the node that claimed its cleanup.
        on_reconnect: Awaited after Redis came back (and once at start, after subscribing).
        on_room_free: Called with a room's name when the node that released it says so on
            this node's own channel (``<prefix>:free:<node>``; salas.cluster.ordering).
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        heartbeat: float = DEFAULT_HEARTBEAT,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        if not 0 < heartbeat < ttl:
            raise ValueError("the heartbeat must be positive and shorter than the ttl")
        load_redis()  # without the extra, say so now rather than at start
        self.url = url
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.ttl = ttl
        self.node_id = secrets.token_hex(6)
        self.channel = f"{prefix}:cluster"
        # Where the node that releases a room a node waits for says so (ordering): this
        # prefix and the waiting node's id.
        self.free_channel_prefix = self.key("free", "")
        self.free_channel = self.free_channel_prefix + self.node_id
        self._channel_bytes = self.channel.encode()
        self.on_message: dict[str, Handler] = {}
        self.on_dead: Callable[[str], Awaitable[None]] | None = None
        self.on_reconnect: Callable[[], Awaitable[None]] | None = None
        self.on_room_free: Callable[[str], None] | None = None
        self._redis: aioredis.Redis | None = None
        #: The hot path's commands (room locks, claims): one connection, pipelined.
        self.pipe = CommandPipe(url, timeout=ttl)
        self._subscription: Subscription | None = None
        self._queue: asyncio.Queue[Write] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._up = False
        self._last_ok = 0.0

    # -- keys ------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        """A key of this cluster: the prefix and `parts`, joined by ``:``."""
        return ":".join((self.prefix, *parts))

    @property
    def redis(self) -> aioredis.Redis:
        """The Redis client (RuntimeError before `start`)."""
        if self._redis is None:
            raise RuntimeError("the cluster node is not started")
        return self._redis

    @property
    def up(self) -> bool:
        """Whether Redis answered the latest heartbeat."""
        return self._up

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, send the first heartbeat and start the heartbeat, reader and writer.

        Raises:
            redis.exceptions.RedisError: Redis cannot be reached now.
        """
        self._redis = connect(self.url, socket_connect_timeout=self.ttl, socket_timeout=self.ttl)
        await self._beat()
        subscription = Subscription(
            self.url,
            [self.channel, self.free_channel],
            self._dispatch,
            on_subscribed=self._subscribed,
            timeout=self.ttl,
            ping_interval=self.heartbeat,
        )
        await subscription.start()
        self._subscription = subscription
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write_forever(), name="salas cluster writer"),
            loop.create_task(self._beat_forever(), name="salas cluster heartbeat"),
        ]

    async def close(self) -> None:
        """Stop, leave the cluster (its heartbeat key deleted) and disconnect (idempotent)."""
        tasks, self._tasks = self._tasks, []
        report_stuck(await stop_tasks(tasks), "closing the cluster node")
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(), self.ttl)
            with contextlib.suppress(Exception):
                await self._redis.delete(self.key("alive", self.node_id))
            await self._redis.aclose()
            self._redis = None
        await self.pipe.close()

    # -- sending ---------------------------------------------------------------------------
    def send(self, kind: str, message: dict[str, Any]) -> None:
        """Queue a cluster message of `kind` for every other node (in order, not awaited)."""
        self.write(Write({**message, "kind": kind}))

    def write(self, write: Write) -> None:
        """Queue a state change and its message (either may be None), in order."""
        if self._queue.qsize() >= _QUEUE_MAX:
            logger.warning("cluster: Redis unreachable for long; dropping queued updates")
            return
        self._queue.put_nowait(write)

    async def _flush(self) -> None:
        while not self._queue.empty():
            await self._apply(self._queue.get_nowait())

    async def _apply(self, write: Write) -> None:
        pipe = self.redis.pipeline(transaction=True)
        if write.hset is not None:
            pipe.hset(write.hset[0], write.hset[1], write.hset[2])
        if write.hdel is not None:
            pipe.hdel(write.hdel[0], write.hdel[1])
        if write.message is not None:
            message = {**write.message, "node": self.node_id}
            pipe.publish(self.channel, orjson.dumps(message))
        await pipe.execute()

    async def _write_forever(self) -> None:
        backoff = 0.05
        while True:
            write = await self._queue.get()
            while True:
                try:
                    await self._apply(write)
                    backoff = 0.05
                    break
                except Exception as exc:
                    logger.warning("cluster: cannot write to Redis (%s); retrying", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)

    # -- receiving -------------------------------------------------------------------------
    async def _subscribed(self) -> None:
        # (Re)subscribed: what was sent meanwhile was missed; the presence reloads.
        if self.on_reconnect is not None:
            await self.on_reconnect()

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        if channel != self._channel_bytes:  # (the free channel: a room's name)
            if self.on_room_free is not None:
                self.on_room_free(data.decode(errors="replace"))
            return
        try:
            message = orjson.loads(data)
            node = message.get("node")
            if node == self.node_id or not isinstance(node, str):
                return
            handler = self.on_message.get(message.get("kind", ""))
            if handler is not None:
                handler(node, message)
        except Exception:
            logger.exception("cluster: bad message on %s", self.channel)

    # -- heartbeat and dead nodes ----------------------------------------------------------
    async def _beat(self) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.key("alive", self.node_id), b"1", px=int(self.ttl * 1000))
        pipe.sadd(self.key("nodes"), self.node_id)
        await pipe.execute()
        self._up = True
        self._last_ok = time.monotonic()

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._beat()
                await self._reap()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._up:
                    logger.warning("cluster: Redis unreachable (%s)", exc)
                self._up = False

    async def nodes(self) -> list[str]:
        """The ids of the nodes alive now (this one among them), sorted."""
        listed = sorted(text(m) for m in await self.redis.smembers(self.key("nodes")))
        if not listed:
            return []
        alive = await self.redis.exists(*(self.key("alive", n) for n in listed))
        if alive == len(listed):
            return listed
        pipe = self.redis.pipeline(transaction=False)
        for node in listed:
            pipe.exists(self.key("alive", node))
        flags = await pipe.execute()
        return [node for node, flag in zip(listed, flags, strict=True) if flag]

    async def _reap(self) -> None:
        """Clean up after each dead node whose cleanup this node claims first."""
        listed = [text(m) for m in await self.redis.smembers(self.key("nodes"))]
        alive = set(await self.nodes())
        for node in listed:
            if node in alive or node == self.node_id:
                continue
            claimed = await self.redis.set(
                self.key("reap", node), self.node_id.encode(), nx=True, ex=_REAP_CLAIM
            )
            if not claimed:
                continue
            logger.warning("cluster: node %s stopped its heartbeat; removing its members", node)
            if self.on_dead is not None:
                await self.on_dead(node)
            await self.redis.srem(self.key("nodes"), node)

    async def health(self) -> dict[str, Any]:
        """``{"redis": reachable, "node": this id, "nodes": the nodes alive}``."""
        try:
            nodes = await asyncio.wait_for(self.nodes(), self.ttl)
        except Exception:
            return {"redis": False, "node": self.node_id, "nodes": []}
        return {"redis": True, "node": self.node_id, "nodes": nodes}
