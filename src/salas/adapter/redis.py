"""The cluster adapter: several salas processes (or machines) share rooms over Redis.

Each process keeps its own sockets' rooms (the memory adapter it extends) and delivers
locally as fast as ever; a broadcast is also published, already encoded, on the namespace's
Redis channel, and every other process delivers it to its own matching sockets — no
re-encoding on the receiving side. Cross-process operations (fetch_sockets, sockets_join,
sockets_leave, disconnect_sockets) travel as requests on a second channel; fetch_sockets
waits for one answer from each other process subscribed to it, the others wait for none.

With connection state recovery, a namespace's logged broadcasts are numbered cluster-wide
instead (:mod:`salas.cluster.offsets`): :meth:`RedisAdapter.broadcast_sequenced` has Redis
number and publish each in one step, and every process, this one included, delivers them
as it reads them from the channel, in offset order.

    io = Server(adapter=redis_adapter("redis://127.0.0.1:6379/0"))

redis-py is the ``redis`` extra (``pip install 'salas[redis]'``): it is imported when an
adapter is made, not when this module is, so ``import salas`` works without it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Awaitable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import orjson

from salas._extras import extra_needed
from salas.adapter.base import (
    AdapterFactory,
    BroadcastOptions,
    Member,
    MemberRegistry,
    OffsetLog,
    RemoteSocket,
)
from salas.adapter.memory import MemoryAdapter
from salas.adapter.redis_pipe import CommandPipe, PipeScript
from salas.adapter.redis_subscription import Subscription
from salas.cluster import turns
from salas.cluster.offsets import parse_sequenced, stamp_packets
from salas.cluster.scripts import SEQUENCE_AND_RELEASE_SCRIPT, SEQUENCE_SCRIPT
from salas.protocol.outgoing import EncodedMessage

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["POOL_SIZE", "RedisAdapter", "connect", "load_redis", "redis_adapter", "retrying"]

logger = logging.getLogger("salas.adapter")

# Seconds fetch_sockets waits for the other processes' answers.
REQUEST_TIMEOUT = 5.0


def _encode_packets(packets: Iterable[str | bytes]) -> list[Any]:
    return [p if isinstance(p, str) else {"b": base64.b64encode(p).decode()} for p in packets]


def _decode_packets(items: list[Any]) -> list[str | bytes]:
    return [p if isinstance(p, str) else base64.b64decode(p["b"]) for p in items]


def _encode_opts(opts: BroadcastOptions) -> dict[str, Any]:
    return {
        "rooms": sorted(opts.rooms),
        "except": sorted(opts.except_rooms),
        "volatile": opts.volatile,
    }


def _decode_opts(raw: dict[str, Any]) -> BroadcastOptions:
    return BroadcastOptions(
        frozenset(raw.get("rooms", ())),
        frozenset(raw.get("except", ())),
        bool(raw.get("volatile", False)),
        local=True,
    )


def load_redis() -> ModuleType:
    """Import redis-py's asyncio API.

    Returns:
        The ``redis.asyncio`` module.

    Raises:
        ImportError: redis-py is not installed; the message names the ``redis`` extra.
    """
    try:
        import redis.asyncio
    except ImportError as exc:
        raise ImportError(extra_needed("The Redis adapter", "redis"), name="redis") from exc
    return redis.asyncio


def retrying() -> dict[str, Any]:
    """redis-py client options that retry a command whose connection was closed (Redis
    restarted, the connection killed): a pooled connection found dead is replaced."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    return {
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        "retry_on_error": [ConnectionError, TimeoutError],
    }


# Connections one client keeps to Redis at most, and how long a command waits for one of
# them to be free (seconds). redis-py runs one command per connection at a time; its default
# pool fails a command at once when 100 are busy — a burst of joins or posts in many rooms
# would fail — where this one makes it wait its turn. The local hub allows for four such
# clients per worker (salas.cluster.hub.connections_for).
POOL_SIZE = 64
POOL_WAIT = 5.0


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A redis-py client of `url` whose commands wait for a free connection of a bounded pool
    (`POOL_SIZE`, `POOL_WAIT`) and retry on a dead one (`retrying`); `options` go to the pool.

    Raises:
        ImportError: redis-py is not installed; the message names the ``redis`` extra.
    """
    driver = load_redis()
    pool = driver.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=POOL_WAIT, **retrying(), **options
    )
    client: aioredis.Redis = driver.Redis.from_pool(pool)
    return client


class RedisAdapter(MemoryAdapter):
    """The adapter of one namespace shared by every process on one Redis, over pub/sub.

    Each process keeps its own sockets' rooms (the :class:`MemoryAdapter` part); what
    concerns other processes' sockets is published on Redis channels named after
    ``prefix`` and the namespace, and each process applies what it receives to its own
    sockets. Nothing about rooms is stored in Redis. Usually made by
    :func:`redis_adapter`; ``Server.start`` runs :meth:`init`.

    Args:
        nsp: The namespace whose rooms it keeps.
        url: The Redis URL, as redis-py's ``from_url`` takes it.
        prefix: The first part of every channel name (default ``"salas"``); see
            :func:`redis_adapter`.

    Attributes:
        uid: This adapter's random id; it ignores what it published itself.

    Raises:
        ImportError: redis-py is not installed; the message names the ``redis`` extra.
    """

    def __init__(self, nsp: MemberRegistry, url: str, prefix: str = "salas") -> None:
        load_redis()  # without the extra, say so now rather than at start
        super().__init__(nsp)
        self.uid = secrets.token_hex(8)
        self._url = url
        self._channel = f"{prefix}#{nsp.name}#"
        self._request_channel = f"{prefix}-request#{nsp.name}#"
        self._response_channel = f"{prefix}-response#{nsp.name}#{self.uid}#"
        self._channel_bytes = self._channel.encode()
        self._request_channel_bytes = self._request_channel.encode()
        self._response_channel_bytes = self._response_channel.encode()
        # The namespace's recovery offsets, shared by every process (salas.cluster.offsets).
        self._counter_key = f"{prefix}-offset#{nsp.name}#"
        self._sequence: PipeScript | None = None
        self._sequence_and_release: PipeScript | None = None
        # The commands of every broadcast go through the pipe (one connection, pipelined);
        # the client (a pool) does the rest.
        self._pipe: CommandPipe | None = None
        self._redis: aioredis.Redis | None = None
        self._subscription: Subscription | None = None
        self._waiting: dict[str, tuple[asyncio.Future[None], list[Any], int]] = {}

    async def init(self) -> None:
        """Connect to Redis, subscribe to the namespace's channels and start reading them.

        Raises:
            redis.exceptions.RedisError: Redis cannot be reached (redis-py's errors, e.g.
                ``ConnectionError``).
        """
        self._redis = connect(self._url)
        self._pipe = CommandPipe(self._url)
        self._sequence = self._pipe.script(SEQUENCE_SCRIPT)
        self._sequence_and_release = self._pipe.script(SEQUENCE_AND_RELEASE_SCRIPT)
        subscription = Subscription(
            self._url,
            [self._channel, self._request_channel, self._response_channel],
            self._on_item,
        )
        await subscription.start()
        self._subscription = subscription

    async def close(self) -> None:
        """Stop reading, unsubscribe and disconnect from Redis (idempotent)."""
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        if self._pipe is not None:
            await self._pipe.close()
            self._pipe = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # -- broadcasting ---------------------------------------------------------------------
    async def broadcast(self, message: EncodedMessage, opts: BroadcastOptions) -> None:
        """Deliver ``message`` to local matching sockets, then publish it for the others.

        The other processes get the packets as they were encoded here and deliver them
        to their own matching sockets when they read them; this returns once the message
        is published, not when they have delivered it. With ``opts.local`` nothing is
        published.

        Raises:
            RuntimeError: :meth:`init` has not run (local sockets did get the message).
            redis.exceptions.RedisError: Publishing failed (likewise).
        """
        self.deliver(message, opts)
        if not opts.local:
            await self._publish(
                self._channel,
                {
                    "uid": self.uid,
                    "opts": _encode_opts(opts),
                    "packets": _encode_packets(message.packets),
                    # Whether, and with which offset, it is a recovery broadcast: the
                    # other processes derive its other form for their own sockets.
                    "stamp": message.stamp,
                },
            )

    @property
    def offset_log(self) -> OffsetLog | None:
        """The namespace's connection state recovery, None when it is off."""
        log: OffsetLog | None = getattr(self.nsp, "offset_log", None)
        return log

    @property
    def sequences_offsets(self) -> bool:
        """Whether logged broadcasts go through :meth:`broadcast_sequenced` (recovery is on)."""
        return self.offset_log is not None

    async def broadcast_sequenced(self, message: EncodedMessage, opts: BroadcastOptions) -> None:
        """Number a recovery broadcast cluster-wide, publish it, and deliver it when read back.

        ``message`` is the event encoded without an offset (stamp ``""``). Redis gives it the
        namespace's next offset and publishes it in one step; every process, this one
        included, appends the offset, tells the namespace's :class:`OffsetLog` (this process
        logs it) and delivers it to its own matching sockets when it reads it from the
        channel, so every socket gets the namespace's broadcasts in offset order. Returns
        once it is published; local sockets get it a Redis round trip later. With
        ``opts.local`` only this process delivers it (the others still count its offset).
        When the calling task offers the end of its turn at a room
        (:mod:`salas.cluster.turns`), the same script ends it after the publish.

        Raises:
            RuntimeError: :meth:`init` has not run, or recovery is off.
            redis.exceptions.RedisError: Redis failed; this process's sockets got the
                message without an offset (it is not logged), the others nothing.
        """
        log = self.offset_log
        if self._sequence is None or self._sequence_and_release is None or log is None:
            raise RuntimeError("the Redis adapter is not started, or recovery is off")
        body = orjson.dumps(
            {
                "uid": self.uid,
                "opts": {**_encode_opts(opts), "local": opts.local},
                "packets": _encode_packets(message.packets),
            }
        )
        keys = [self._counter_key, self._channel]
        turn = turns.take()
        try:
            if turn is None:
                await self._sequence(keys=keys, args=[body, log.head])
            else:
                _, released = await self._sequence_and_release(
                    keys=keys + turn.keys, args=[body, log.head, *turn.args]
                )
                turn.released = released == 1
        except Exception:
            self.deliver(message, opts)
            raise

    def _on_sequenced(self, stamp: str, body: bytes) -> None:
        payload = orjson.loads(body)
        raw_opts = payload["opts"]
        opts = _decode_opts(raw_opts)
        own = payload.get("uid") == self.uid
        message = EncodedMessage(stamp_packets(_decode_packets(payload["packets"]), stamp), stamp)
        log = self.offset_log
        if log is not None:
            log.sequenced(self.nsp.name, message, int(stamp), opts, own)
        if own or not raw_opts.get("local"):
            self.deliver(message, opts)

    async def _publish(self, channel: str, payload: dict[str, Any]) -> None:
        if self._pipe is None:
            raise RuntimeError("the Redis adapter is not started (Server.start runs its init)")
        await self._pipe.execute("PUBLISH", channel, orjson.dumps(payload))

    # -- operations on every process's sockets ----------------------------------------------
    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Member | RemoteSocket]:
        """The sockets matching ``opts`` in this process and, unless ``opts.local``, others.

        Asks every other process subscribed to the namespace's request channel and waits
        for all their answers, at most :data:`REQUEST_TIMEOUT` (5.0) seconds; on timeout it
        logs a warning and returns what came in time.

        Returns:
            Local sockets as members, the others' as :class:`RemoteSocket` (``data`` None
            when it is not JSON-serialisable).
        """
        found: list[Member | RemoteSocket] = list(await super().fetch_sockets(opts))
        if opts.local:
            return found
        for item in await self._ask("fetch", opts):
            found.append(RemoteSocket(item["id"], frozenset(item["rooms"]), item["data"]))
        return found

    async def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        """Put every socket matching ``opts`` in ``rooms``, in every process.

        Local sockets have joined when it returns; for the others the request is only
        published: it returns before the other processes have applied it, and nothing
        tells whether they did.
        """
        rooms = list(rooms)
        await super().add_sockets(opts, rooms)
        if not opts.local:
            await self._tell("join", opts, rooms=rooms)

    async def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        """Take every socket matching ``opts`` out of ``rooms``, in every process.

        As :meth:`add_sockets`: it returns before the other processes have applied it.
        """
        rooms = list(rooms)
        await super().del_sockets(opts, rooms)
        if not opts.local:
            await self._tell("leave", opts, rooms=rooms)

    async def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        """Disconnect every socket matching ``opts``, in every process.

        As :meth:`add_sockets`: local sockets are disconnected when it returns, other
        processes' sockets when those processes read the request, after it returns.
        """
        await super().disconnect_sockets(opts, close)
        if not opts.local:
            await self._tell("disconnect", opts, close=close)

    async def _tell(self, kind: str, opts: BroadcastOptions, **extra: Any) -> None:
        request = {"uid": self.uid, "type": kind, "opts": _encode_opts(opts), **extra}
        await self._publish(self._request_channel, request)

    async def _ask(self, kind: str, opts: BroadcastOptions) -> list[Any]:
        """Send a request and gather every other process's answer (or what came in time)."""
        assert self._redis is not None
        counts = await self._redis.pubsub_numsub(self._request_channel)
        expected = int(counts[0][1]) - 1 if counts else 0
        if expected <= 0:
            return []
        request_id = secrets.token_hex(8)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        answers: list[Any] = []
        self._waiting[request_id] = (done, answers, expected)
        try:
            await self._publish(
                self._request_channel,
                {"uid": self.uid, "type": kind, "id": request_id, "opts": _encode_opts(opts)},
            )
            try:
                await asyncio.wait_for(done, REQUEST_TIMEOUT)
            except TimeoutError:
                logger.warning("fetch_sockets: %d of %d processes answered", len(answers), expected)
        finally:
            del self._waiting[request_id]
        return [item for answer in answers for item in answer]

    # -- from Redis -------------------------------------------------------------------------
    def _on_item(self, channel: bytes, data: bytes) -> Awaitable[None] | None:
        """One message of the namespace's channels (the subscription calls it, in order)."""
        if channel == self._channel_bytes:
            sequenced = parse_sequenced(data)
            if sequenced is not None:
                self._on_sequenced(*sequenced)
                return None
        payload = orjson.loads(data)
        if payload.get("uid") == self.uid:
            return None
        if channel == self._channel_bytes:
            stamp = payload.get("stamp")
            message = EncodedMessage(
                _decode_packets(payload["packets"]), stamp if isinstance(stamp, str) else None
            )
            self.deliver(message, _decode_opts(payload["opts"]))
        elif channel == self._request_channel_bytes:
            return self._on_request(payload)
        elif channel == self._response_channel_bytes:
            waiting = self._waiting.get(payload["id"])
            if waiting is not None:
                done, answers, expected = waiting
                answers.append(payload["sockets"])
                if len(answers) >= expected and not done.done():
                    done.set_result(None)
        return None

    async def _on_request(self, request: dict[str, Any]) -> None:
        opts = _decode_opts(request["opts"])
        kind = request["type"]
        if kind == "join":
            await super().add_sockets(opts, request["rooms"])
        elif kind == "leave":
            await super().del_sockets(opts, request["rooms"])
        elif kind == "disconnect":
            await super().disconnect_sockets(opts, bool(request.get("close")))
        elif kind == "fetch":
            sockets = [
                {"id": m.id, "rooms": sorted(self.socket_rooms(m.id)), "data": _data_of(m)}
                for m in self._matching(opts)
            ]
            channel = self._response_channel.replace(self.uid, request["uid"])
            await self._publish(channel, {"uid": self.uid, "id": request["id"], "sockets": sockets})


def _data_of(member: Member) -> Any:
    data = getattr(member, "data", None)
    try:
        orjson.dumps(data)
    except TypeError:
        return None  # not JSON: it stays on its own process
    return data


def redis_adapter(url: str = "redis://127.0.0.1:6379/0", prefix: str = "salas") -> AdapterFactory:
    """An adapter factory for ``Server(adapter=...)``: every namespace shares rooms over Redis.

    Each namespace gets a :class:`RedisAdapter`. Cross-process ``sockets_join``,
    ``sockets_leave`` and ``disconnect_sockets`` return before the other processes have
    applied them; ``fetch_sockets`` waits for their answers (5 seconds at most).

    Args:
        url: The Redis URL (default ``"redis://127.0.0.1:6379/0"``).
        prefix: The first part of every pub/sub channel name (default ``"salas"``).
            Processes with the same prefix on one Redis form one cluster: two
            applications on one Redis with the same prefix see each other's broadcasts
            and room operations, so give each its own prefix. Redis pub/sub ignores the
            database number in the URL, so distinct databases do not separate them.

    Returns:
        The factory, called by the server once per namespace.

    Raises:
        ImportError: redis-py is not installed; the message names the ``redis`` extra.
    """
    load_redis()  # fail where the adapter is chosen, not when the first namespace is made

    def factory(nsp: MemberRegistry) -> RedisAdapter:
        return RedisAdapter(nsp, url, prefix)

    return factory
