"""`Subscription`: the messages of a few Redis channels, handed to a callback as they arrive.

A cluster node receives every broadcast of its namespaces from Redis pub/sub, so what it
spends per message received is paid once per node on every message of the cluster: it is
what limits how far workers scale. redis-py's ``PubSub`` reads one message per call
through several layers (a retry wrapper, a timeout context, the reply parser, a dict per
message, an async generator): about a quarter of what a node spends on a broadcast it
receives (``bench/micro_chat.py --redis --nodes K``). Here one task reads whatever the
connection has (``read``), hiredis splits it into messages, and the callback runs on each
in order — one task wake-up per read however many messages came in it.

redis-py still opens the connection (the URL, AUTH, SELECT, TLS, a Unix socket, RESP2 or
RESP3); this module reads the stream redis-py opened. Liveness: after `ping_interval`
seconds without a byte from Redis the subscription sends ``PING``, and if nothing comes
within `timeout` it drops the connection. A connection that breaks, closes or sends what is
not RESP is dropped too; the subscription then connects and subscribes again, with a
growing pause between attempts (at most 2 s), and runs `on_subscribed` each time. What was
published while it was away is not received (Redis pub/sub keeps nothing): callers that
must not miss anything resynchronise in `on_subscribed`, or rely on connection state
recovery.

redis-py and hiredis come with the ``redis`` extra and the core dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import hiredis

from salas._tasks import report_stuck, stop_tasks
from salas.adapter.redis_pipe import connection_streams, read_replies

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection

__all__ = ["MessageHandler", "Subscription"]

logger = logging.getLogger("salas.adapter")

MessageHandler = Callable[[bytes, bytes], Awaitable[None] | None]
"""Called with (channel, message) for each message, in the order Redis sent them; when it
returns an awaitable, the next message waits for it."""

# The pause between attempts to reconnect starts here and doubles up to _BACKOFF_MAX (s).
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0


class SubscriptionLost(ConnectionError):
    """The subscription's connection is done for (closed, silent, or not speaking RESP)."""


class Subscription:
    """The messages of `channels` on the Redis at `url`, read by one task (see the module).

    Args:
        url: The Redis URL, as redis-py's ``from_url`` takes it.
        channels: The channels (at least one).
        on_message: Called with ``(channel, message)`` for each message, in order. An
            exception it raises is logged and the next message is read.
        on_subscribed: Awaited once subscribed to every channel, after each connection
            (the first one included), before any message of that connection is handed on.
        timeout: Seconds to connect and subscribe, and for an answer to a ``PING``.
        ping_interval: Seconds without a byte from Redis before a ``PING`` is sent.
        **options: More options of redis-py's connection (``ssl_ca_certs``...).

    Raises:
        ImportError: redis-py is not installed; the message names the ``redis`` extra.
        ValueError: No channel, or a timeout or interval that is not positive.
    """

    def __init__(
        self,
        url: str,
        channels: Sequence[str],
        on_message: MessageHandler,
        *,
        on_subscribed: Callable[[], Awaitable[None]] | None = None,
        timeout: float = 5.0,
        ping_interval: float = 10.0,
        **options: Any,
    ) -> None:
        from salas.adapter.redis import load_redis

        driver = load_redis()
        if not channels:
            raise ValueError("a subscription needs at least one channel")
        if timeout <= 0 or ping_interval <= 0:
            raise ValueError("the timeout and the ping interval must be positive")
        self._pool = driver.ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout, **options
        )
        self.channels = [c.encode() for c in channels]
        self.on_message = on_message
        self.on_subscribed = on_subscribed
        self.timeout = timeout
        self.ping_interval = ping_interval
        self._task: asyncio.Task[None] | None = None
        self._conn: AbstractConnection | None = None

    async def start(self) -> None:
        """Connect, subscribe, run `on_subscribed`, and go on reading in a task.

        Raises:
            redis.exceptions.RedisError, OSError, TimeoutError: The first connection or
                subscription failed (later ones are retried, not raised).
            Exception: What `on_subscribed` raised the first time.
        """
        if self._task is not None:
            raise RuntimeError("the subscription is already started")
        connection = await self._subscribe()
        self._task = asyncio.get_running_loop().create_task(
            self._read_forever(connection), name="salas redis subscription"
        )

    async def close(self) -> None:
        """Stop reading and disconnect (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            report_stuck(await stop_tasks([task]), "closing a Redis subscription")
        await self._drop()
        await self._pool.disconnect()

    # -- connecting ------------------------------------------------------------------------
    async def _subscribe(self) -> _Connection:
        """A new connection subscribed to every channel, `on_subscribed` run."""
        conn = self._pool.make_connection()
        self._conn = conn
        try:
            await asyncio.wait_for(conn.connect(), self.timeout)
            stream, _ = connection_streams(conn)
            reader = hiredis.Reader()
            await conn.send_packed_command(
                conn.pack_command("SUBSCRIBE", *self.channels), check_health=False
            )
            # Messages of a channel whose subscription is confirmed can come before the
            # other confirmations, or behind the last in the same read: kept for after
            # `on_subscribed`, in order.
            early: list[Any] = []
            pending = set(self.channels)
            async with asyncio.timeout(self.timeout):
                while pending:
                    for reply in await read_replies(reader, stream, SubscriptionLost):
                        kind = _kind_of(reply)
                        if kind == b"subscribe":
                            pending.discard(reply[1])
                        elif kind == b"message":
                            early.append(reply)
                        else:
                            raise SubscriptionLost(f"Redis answered SUBSCRIBE with {reply!r:.200}")
            if self.on_subscribed is not None:
                await self.on_subscribed()
        except BaseException:
            await self._drop()
            raise
        return _Connection(conn, reader, stream, early)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()

    # -- reading ---------------------------------------------------------------------------
    async def _read_forever(self, connection: _Connection) -> None:
        backoff = _BACKOFF_MIN
        while True:
            try:
                await self._read_until_lost(connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("lost a Redis subscription (%s); subscribing again", exc)
            await self._drop()
            while True:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                try:
                    connection = await self._subscribe()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("cannot subscribe to Redis again yet (%s)", exc)
                    continue
                backoff = _BACKOFF_MIN
                break

    async def _read_until_lost(self, connection: _Connection) -> None:
        await self._hand_on(connection.early)
        watch = _Liveness(self, connection.conn, connection.stream)
        try:
            while True:
                try:
                    replies = await read_replies(
                        connection.reader, connection.stream, SubscriptionLost
                    )
                except SubscriptionLost:
                    if watch.lost is not None:  # (the watch ended the stream)
                        raise watch.lost from None
                    raise
                watch.heard()
                await self._hand_on(replies)
        finally:
            watch.stop()

    async def _hand_on(self, replies: list[Any]) -> None:
        """Each message among `replies` to the handler, in order."""
        for reply in replies:
            if _kind_of(reply) != b"message":
                continue  # a PING's answer, an (un)subscribe confirmation
            try:
                done = self.on_message(reply[1], reply[2])
                if done is not None:
                    await done
            except Exception:
                logger.exception("bad message on %s", reply[1][:200])


class _Connection(NamedTuple):
    """A subscribed connection: redis-py's, its reply parser, its byte stream, and the
    messages that came with the confirmations."""

    conn: AbstractConnection
    reader: hiredis.Reader
    stream: asyncio.StreamReader
    early: list[Any]


def _kind_of(reply: Any) -> bytes | None:
    """``b"message"``, ``b"subscribe"``, ``b"pong"``... of a pub/sub reply; None otherwise."""
    if isinstance(reply, hiredis.ReplyError):
        raise SubscriptionLost(f"Redis answered with an error: {reply}")
    if isinstance(reply, list) and reply and isinstance(reply[0], bytes):
        kind = reply[0].lower()
        if kind == b"message" and len(reply) != 3:
            raise SubscriptionLost(f"a malformed pub/sub message: {reply!r:.200}")
        return kind
    return None


class _Liveness:
    """Pings a silent connection and drops it when the answer does not come in time.

    A timer, not a timeout around each read: reads stay one await each."""

    def __init__(
        self, owner: Subscription, conn: AbstractConnection, stream: asyncio.StreamReader
    ) -> None:
        self._owner = owner
        self._conn = conn
        self._stream = stream
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._pinged_at: float | None = None
        self._pinging: asyncio.Task[None] | None = None
        self.lost: SubscriptionLost | None = None
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(
            owner.ping_interval, self._check
        )

    def heard(self) -> None:
        self._last = self._loop.time()
        self._pinged_at = None

    def _check(self) -> None:
        now = self._loop.time()
        owner = self._owner
        if self._pinged_at is not None and now - self._pinged_at >= owner.timeout:
            self.lost = SubscriptionLost(f"no answer from Redis to a PING within {owner.timeout}s")
            self._timer = None
            # Wake the read: the connection is dropped, the stream ends.
            self._stream.feed_eof()
            return
        if self._pinged_at is None and now - self._last >= owner.ping_interval:
            self._pinged_at = now
            self._pinging = self._loop.create_task(self._ping())
        due = owner.timeout if self._pinged_at is not None else owner.ping_interval
        self._timer = self._loop.call_later(due, self._check)

    async def _ping(self) -> None:
        with contextlib.suppress(Exception):
            await self._conn.send_packed_command(
                self._conn.pack_command("PING"), check_health=False
            )

    def stop(self) -> None:
        if self._pinging is not None:
            self._pinging.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
