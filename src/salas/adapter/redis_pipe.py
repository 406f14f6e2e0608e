"""`CommandPipe`: the Redis commands of many tasks over one connection, pipelined.

redis-py's client gives each command a pooled connection of its own and waits for its reply
alone: about 60 µs of CPU per command under load on the bench machine, 120 µs one at a
time. A cluster node's hot path — a room's lock, a broadcast's offset and publish, a
message's claim — runs several commands per chat message. On one shared connection, the
commands issued in one turn of the event loop go out in one write and their replies come
back in order, read by one task. redis-py only connects (the URL, AUTH, SELECT, TLS);
hiredis packs the commands and splits the replies (redis-py's own packing, pure Python, was
the largest part of what was left: `bench/micro_chat.py --redis`).

Failures: when the connection breaks (Redis restarted, the socket closed), every command
waiting for a reply on it fails with redis-py's ``ConnectionError`` (bytes that are not RESP
too), and the next command connects again. A reply that takes longer than `timeout` fails
its command with ``TimeoutError``, and every command behind it too: replies come in order,
so the connection is dropped. A command is never sent twice: one whose connection broke may or
may not have run, as with any Redis client. Error replies (``-ERR ...``) fail their own
command with redis-py's ``ResponseError`` (``NoScriptError`` for ``NOSCRIPT``) and nothing
else.

redis-py is the ``redis`` extra, imported when a pipe is made.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import hiredis

from salas._tasks import report_stuck, stop_tasks

if TYPE_CHECKING:
    from redis.asyncio.connection import AbstractConnection

__all__ = [
    "DEFAULT_TIMEOUT",
    "CommandPipe",
    "PipeScript",
    "connection_streams",
    "read_replies",
    "sha1_of",
]

#: Seconds a command may wait for its reply (and a connection may take to open).
DEFAULT_TIMEOUT = 5.0
# Bytes asked of the stream per read: the replies to a burst (or the messages of a
# subscription) come in one read.
_READ_SIZE = 256 * 1024


def connection_streams(
    conn: AbstractConnection,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The byte streams of a connected redis-py connection (to read and write RESP on it
    directly, past redis-py's per-command machinery)."""
    # redis-py (>= 4.2) keeps them in `_reader` and `_writer`; nothing public exposes them.
    reader, writer = getattr(conn, "_reader", None), getattr(conn, "_writer", None)
    if not isinstance(reader, asyncio.StreamReader) or not isinstance(writer, asyncio.StreamWriter):
        raise RuntimeError("this redis-py version does not expose its connection's streams")
    return reader, writer


async def read_replies(
    reader: hiredis.Reader, stream: asyncio.StreamReader, lost: Callable[[str], Exception]
) -> list[Any]:
    """The replies completed by the next read(s) of `stream` (at least one), split by
    `reader`, in order; error replies come as ``hiredis.ReplyError`` values.

    Raises:
        Exception: ``lost(why)`` when Redis closed the connection or sent what is not RESP.
    """
    while True:
        data = await stream.read(_READ_SIZE)
        if not data:
            raise lost("Redis closed the connection")
        replies = []
        try:
            reader.feed(data)
            reply = reader.gets()
            while reply is not False:
                replies.append(reply)
                reply = reader.gets()
        except hiredis.ProtocolError as exc:
            raise lost(f"Redis sent what is not RESP ({exc})") from exc
        if replies:
            return replies


def _error_of(reply: hiredis.ReplyError) -> Exception:
    """redis-py's exception for an error reply (``-NOSCRIPT ...``, ``-ERR ...``)."""
    from redis.exceptions import NoScriptError, ResponseError

    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


def sha1_of(script: bytes | str) -> str:
    """A script's SHA1 as Redis names it (40 lower-case hex digits)."""
    text = script.encode() if isinstance(script, str) else script
    return hashlib.sha1(text).hexdigest()


class _Link:
    """One connection of a pipe: what is to be written, what waits for a reply (in order),
    and the task reading the replies."""

    def __init__(self, conn: AbstractConnection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self.broken: BaseException | None = None
        self._stream, self._writer = connection_streams(conn)
        self._out: list[bytes] = []
        # (the command's future, the loop time its reply is due by), in the order sent
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._loop = asyncio.get_running_loop()
        self._flush_due = False
        self._watchdog: asyncio.TimerHandle | None = None
        self.tasks = [
            self._loop.create_task(self._read_forever(), name="salas redis pipe reader"),
        ]

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue a packed command; its reply's future."""
        future: asyncio.Future[Any] = self._loop.create_future()
        self._out.append(packed)
        self._waiting.append((future, self._loop.time() + self.timeout))
        if not self._flush_due:
            # Everything queued in this turn of the loop goes out in one write.
            self._flush_due = True
            self._loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self.timeout, self._check_due)
        return future

    def _flush(self) -> None:
        self._flush_due = False
        if self.broken is not None:
            return
        out, self._out = self._out, []
        try:
            # (the transport buffers what the socket does not take now; a connection too
            # slow to take it shows as overdue replies, which the watchdog fails)
            self._writer.writelines(out)
        except Exception as exc:
            self.fail(exc)

    async def _read_forever(self) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError

        reader = hiredis.Reader()
        try:
            while True:
                for reply in await read_replies(reader, self._stream, RedisConnectionError):
                    self._resolve(reply)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.fail(exc)

    def _resolve(self, reply: Any) -> None:
        """The next command's reply (an error reply fails that command alone)."""
        if not self._waiting:
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("Redis sent a reply to no command")
        future, _ = self._waiting.popleft()
        if future.done():  # (its caller was cancelled)
            return
        if isinstance(reply, hiredis.ReplyError):
            future.set_exception(_error_of(reply))
        else:
            future.set_result(reply)

    def _check_due(self) -> None:
        self._watchdog = None
        if not self._waiting or self.broken is not None:
            return
        _, due = self._waiting[0]
        now = self._loop.time()
        if now >= due:
            self.fail(TimeoutError(f"no reply from Redis within {self.timeout}s"))
            return
        self._watchdog = self._loop.call_later(due - now, self._check_due)

    def fail(self, exc: BaseException) -> None:
        """The connection is done for: fail every command waiting on it with `exc`."""
        if self.broken is not None:
            return
        if not isinstance(exc, Exception):
            exc = ConnectionError(f"the Redis connection ended ({exc!r})")
        self.broken = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        # (the tasks end themselves, or are cancelled by close)
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def close(self) -> None:
        self.fail(ConnectionError("the Redis command pipe is closed"))
        report_stuck(await stop_tasks(self.tasks), "closing a Redis command pipe")
        with contextlib.suppress(Exception):
            await self.conn.disconnect()


class CommandPipe:
    """Redis commands from any number of tasks over one connection (see the module).

    Args:
        url: The Redis URL, as redis-py's ``from_url`` takes it.
        timeout: Seconds a command waits for its reply, and opening a connection may take.
        **options: More options of redis-py's connection (``ssl_ca_certs``...).

    Raises:
        ImportError: redis-py is not installed; the message names the ``redis`` extra.
    """

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, **options: Any) -> None:
        from salas.adapter.redis import load_redis

        driver = load_redis()
        if timeout <= 0:
            raise ValueError("the timeout must be positive")
        # No socket timeout of redis-py's own: a read waits for the next reply for as long
        # as the connection is idle; overdue replies are the pipe's watchdog's.
        self._pool = driver.ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout, **options
        )
        self.timeout = timeout
        self._link: _Link | None = None
        self._connecting = asyncio.Lock()
        self._closed = False

    async def execute(self, *args: str | bytes | int | float) -> Any:
        """Run one command; its reply as redis-py parses it (bytes, int, list, None...).

        Raises:
            redis.exceptions.ResponseError: Redis answered with an error.
            redis.exceptions.ConnectionError: Redis cannot be reached, or the connection
                broke before the reply came.
            TimeoutError: No reply within `timeout` (the connection is dropped).
        """
        link = self._link
        if link is None or link.broken is not None:
            link = await self._connect()
        # (hiredis' stub types the tuple as of one item)
        return await link.send(hiredis.pack_command(args))  # type: ignore[arg-type]

    async def _connect(self) -> _Link:
        from redis.exceptions import ConnectionError as RedisConnectionError

        async with self._connecting:
            if self._closed:
                raise RedisConnectionError("the Redis command pipe is closed")
            link = self._link
            if link is not None and link.broken is None:
                return link  # another command connected meanwhile
            if link is not None:
                await link.close()
                self._link = None
            conn = self._pool.make_connection()
            try:
                await asyncio.wait_for(conn.connect(), self.timeout)
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.disconnect()
                raise
            self._link = _Link(conn, self.timeout)
            return self._link

    def script(self, source: str) -> PipeScript:
        """`source` (Lua) run by its SHA1 (EVALSHA), loaded when Redis does not know it."""
        return PipeScript(self, source)

    async def close(self) -> None:
        """Fail what still waits, stop and disconnect (idempotent)."""
        self._closed = True
        async with self._connecting:
            link, self._link = self._link, None
            if link is not None:
                await link.close()
        await self._pool.disconnect()


class PipeScript:
    """A Lua script run through a `CommandPipe` by its SHA1; see `CommandPipe.script`."""

    def __init__(self, pipe: CommandPipe, source: str) -> None:
        self.pipe = pipe
        self.source = source
        self.sha = sha1_of(source)

    async def __call__(
        self, keys: list[str], args: list[str | bytes | int | float] | None = None
    ) -> Any:
        """Run the script with `keys` and `args`; its reply. Raises as `CommandPipe.execute`."""
        from redis.exceptions import NoScriptError

        argv = args or []
        try:
            return await self.pipe.execute("EVALSHA", self.sha, len(keys), *keys, *argv)
        except NoScriptError:  # a Redis that restarted, or never saw it: EVAL loads it
            return await self.pipe.execute("EVAL", self.source, len(keys), *keys, *argv)
