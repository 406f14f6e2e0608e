"""`LocalHub`: the Redis the workers of `salas serve --workers N` share when there is no --redis.

The workers of one machine are cluster nodes like any others (`salas.cluster.node`, the
Redis adapter, presence, room locks, recovery offsets): they need a Redis. Without
``--redis``, the parent serves one itself, in memory, in its own event loop: a small server
speaking the Redis protocol (RESP2) for exactly the commands salas' cluster code sends
through redis-py, on a Unix socket in a fresh directory only this user can enter (0700; the
socket 0600; both removed when it closes). Each worker is started with
``--redis unix://<that socket>``, so the cluster code has one code path whichever Redis it
talks to. The hub dies with the parent, as the workers do; several machines, or more
throughput, need a real Redis.

What it serves: the connection handshake (``HELLO`` 2, ``CLIENT SETINFO``/``SETNAME``,
``SELECT 0``, ``PING``, ``QUIT``), the data commands of :mod:`salas.cluster.hub_commands`,
``PUBLISH``, ``SUBSCRIBE``/``UNSUBSCRIBE``, ``PUBSUB NUMSUB``, ``MULTI``/``EXEC``/
``DISCARD``, and ``EVAL``/``EVALSHA``/``SCRIPT LOAD``/``SCRIPT EXISTS`` of salas' own
scripts, run by their Python twins (:mod:`salas.cluster.hub_scripts`; no Lua). Anything
else is answered ``-ERR unknown command``, an unknown script ``-NOSCRIPT`` or ``-ERR``.
Being one thread, a transaction or a script runs with nothing in between, as in Redis.

Limits: requests are parsed by hiredis; one request (or transaction) holds at most
`max_request` bytes and must arrive within `request_timeout` seconds once begun; malformed
RESP closes that connection only. At most `max_connections` connections; idle ones stay. A
client that does not read its replies is not read from until it does; a subscriber that does
not read its messages is disconnected once `max_pubsub_output` bytes wait for it (Redis's
``client-output-buffer-limit`` for pub/sub): its node reconnects and resynchronises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import tempfile
from collections.abc import Callable
from typing import cast

import hiredis

from salas.adapter.redis import POOL_SIZE
from salas.cluster.hub_commands import (
    COMMANDS,
    OK,
    CommandError,
    Keyspace,
    Raw,
    Reply,
    arity_error,
    fits,
    parse_integer,
)
from salas.cluster.hub_scripts import SCRIPTS, sha1_of

__all__ = [
    "DEFAULT_MAX_PUBSUB_OUTPUT",
    "DEFAULT_MAX_REQUEST",
    "DEFAULT_REQUEST_TIMEOUT",
    "LocalHub",
    "connections_for",
    "encode",
    "remove_stale_directories",
]

logger = logging.getLogger("salas.cluster")

# The largest request (or transaction): a broadcast's packets, base64 for binary, in JSON;
# the engine takes messages of 1 MB by default, applications may emit far more.
DEFAULT_MAX_REQUEST = 16 * 1024 * 1024
# Seconds a begun request has to arrive whole (a Unix socket to a live worker: milliseconds).
DEFAULT_REQUEST_TIMEOUT = 10.0
# Bytes of pub/sub messages waiting for one subscriber before it is disconnected (Redis's
# default hard limit for pub/sub clients); at least one largest request.
DEFAULT_MAX_PUBSUB_OUTPUT = 32 * 1024 * 1024
# Seconds between sweeps of expired keys, and the most deadlines one sweep looks at (more
# expired: the next sweep comes at once).
_SWEEP_INTERVAL = 1.0
_SWEEP_LIMIT = 10_000
# Channels one connection may subscribe to (a worker uses a few per namespace).
_MAX_CHANNELS = 10_000
_SOCKET_NAME = "hub.sock"
# The hub's private directory is made in the temporary directory with this prefix.
_DIRECTORY_PREFIX = "salas-hub-"
# Replies to pipelined requests are written together, in parts of at most this many pieces
# or about this many bytes (the transport then says whether the client keeps up).
_FLUSH_PARTS = 512
_FLUSH_BYTES = 64 * 1024

_INCOMPLETE = object()  # hiredis: not a whole request yet
_QUEUED = Raw(b"+QUEUED\r\n")
_PONG = Raw(b"+PONG\r\n")
# What a subscribed connection may still send (RESP2).
_SUBSCRIBED_MODE = frozenset((b"SUBSCRIBE", b"UNSUBSCRIBE", b"PING", b"QUIT", b"RESET"))
# Commands that act on the connection itself: never queued in a transaction.
_NOT_QUEUED = frozenset((b"MULTI", b"EXEC", b"DISCARD", b"QUIT"))
_NO_SUBSCRIBE_IN_MULTI = frozenset((b"SUBSCRIBE", b"UNSUBSCRIBE"))


def remove_stale_directories(parent: str | None = None) -> int:
    """Remove the hub directories a killed parent left (SIGKILL runs no cleanup): those of
    this user in `parent` (the temporary directory by default) whose socket refuses a
    connection — no hub listens there any more. A directory without its socket may be a hub
    starting now: it is left. Returns how many were removed."""
    parent = parent if parent is not None else tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(parent) if n.startswith(_DIRECTORY_PREFIX)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        directory = os.path.join(parent, name)
        path = os.path.join(directory, _SOCKET_NAME)
        try:
            if os.lstat(directory).st_uid != os.getuid() or not os.path.exists(path):
                continue
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                continue  # a live hub
            except ConnectionRefusedError:
                pass
            finally:
                probe.close()
            os.unlink(path)
            os.rmdir(directory)
            removed += 1
        except OSError:
            continue
    return removed


def connections_for(workers: int) -> int:
    """The hub's connection limit for `workers` workers.

    redis-py opens one more pooled connection whenever a command starts while the others
    are busy (a worker holding many rooms at once), and keeps them, up to its pool's size
    (`salas.adapter.redis.POOL_SIZE`): each worker gets room for four full pools (its
    cluster node's and its namespaces' adapters'), the total stays bounded."""
    return 64 + 4 * POOL_SIZE * workers


class _Several(list[Reply]):
    """Replies to one request sent one after the other, not as one array (SUBSCRIBE to
    several channels)."""


def encode(reply: Reply, out: list[bytes]) -> None:
    """Append `reply` in RESP2 to `out`."""
    if isinstance(reply, Raw):
        out.append(reply)
    elif isinstance(reply, bytes):
        out += (b"$%d\r\n" % len(reply), reply, b"\r\n")
    elif isinstance(reply, int):
        out.append(b":%d\r\n" % reply)
    elif reply is None:
        out.append(b"$-1\r\n")
    elif isinstance(reply, CommandError):
        line = reply.message.replace("\r", " ").replace("\n", " ")
        out.append(b"-%s\r\n" % line.encode("utf-8", "replace"))
    elif isinstance(reply, _Several):
        for item in reply:
            encode(item, out)
    else:
        out.append(b"*%d\r\n" % len(reply))
        for item in reply:
            encode(item, out)


def _name_of(raw: bytes) -> str:
    return raw[:64].decode("ascii", "replace").encode("unicode_escape").decode()


class _Client(asyncio.Protocol):
    """One connection to the hub: its parser, transaction and subscriptions."""

    def __init__(self, hub: LocalHub) -> None:
        self.hub = hub
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(notEnoughData=_INCOMPLETE)
        self.channels: dict[bytes, None] = {}
        self.queued: list[list[bytes]] | None = None  # inside MULTI
        self.queued_bytes = 0
        self.doomed = False  # a command queued in this MULTI was refused: EXEC aborts
        self.closing = False
        self.paused = False
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not subclasses)
        if len(self.hub.clients) >= self.hub.max_connections:
            logger.warning("local hub: refusing a connection (%d open)", len(self.hub.clients))
            self.fail("ERR max number of clients reached")
            return
        self.hub.clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
        self.hub.clients.discard(self)
        self.hub.unsubscribe(self, list(self.channels))

    def pause_writing(self) -> None:
        # Replies pile up: take no more requests until they are read (subscribers are
        # bounded where messages are pushed to them).
        if self.transport is not None and not self.channels:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.paused and self.transport is not None and not self.closing:
            self.paused = False
            self.transport.resume_reading()
            asyncio.get_running_loop().call_soon(self.process)  # what is already read

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        self.process()

    def process(self) -> None:
        """Run the whole requests read so far, until the replies pile up (see
        `pause_writing`); refuse what breaks the protocol or the limits."""
        reader = self.reader
        out: list[bytes] = []
        pending = 0  # bytes in `out`
        while not self.closing and not self.paused:
            try:
                request = reader.gets()
            except hiredis.ProtocolError:
                self.write(out)
                self.fail("ERR Protocol error: invalid RESP")
                return
            if request is _INCOMPLETE:
                break
            if not isinstance(request, list) or not all(isinstance(a, bytes) for a in request):
                self.write(out)
                self.fail("ERR Protocol error: expected an array of bulk strings")
                return
            if request:  # (an empty array is nothing, as in Redis)
                start = len(out)
                self.hub.execute(self, request, out)
                pending += sum(len(piece) for piece in out[start:])
                if pending >= _FLUSH_BYTES or len(out) >= _FLUSH_PARTS:
                    self.write(out)  # (may pause: the client is not reading)
                    pending = 0
        self.write(out)
        if self.closing:  # (QUIT: its OK is written)
            if self.transport is not None:
                self.transport.close()
            return
        if reader.len() > self.hub.max_request:
            self.fail("ERR Protocol error: request too large")
        elif reader.has_data() and not self.paused:  # a request begun: it has a deadline
            if self.timer is None:
                loop = asyncio.get_running_loop()
                self.timer = loop.call_later(self.hub.request_timeout, self.timed_out)
        elif self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- helpers ----------------------------------------------------------------------------
    def write(self, out: list[bytes]) -> None:
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(out)
            out.clear()

    def fail(self, message: str) -> None:
        """Answer `message` as an error and close the connection."""
        if self.transport is None or self.closing:
            return
        logger.warning("local hub: closing a connection: %s", message)
        out: list[bytes] = []
        encode(CommandError(message), out)
        self.transport.writelines(out)
        self.closing = True
        self.transport.close()

    def timed_out(self) -> None:
        self.timer = None
        self.fail("ERR Protocol error: request not completed in time")

    def push(self, frame: tuple[bytes, bytes, bytes], limit: int) -> None:
        """Write a pub/sub message; disconnect the subscriber past `limit` bytes waiting."""
        transport = self.transport
        if transport is None or self.closing:
            return
        transport.writelines(frame)
        if transport.get_write_buffer_size() > limit:
            logger.warning(
                "local hub: a subscriber is %d bytes behind: disconnecting it",
                transport.get_write_buffer_size(),
            )
            self.closing = True
            transport.abort()


class LocalHub:
    """The in-memory Redis of one machine's workers, on a private Unix socket (see the module).

    Args:
        max_connections: Connections at once; more are refused ``-ERR max number of
            clients reached``.
        max_request: Bytes one request, or one transaction's queued commands, may hold.
        request_timeout: Seconds a begun request has to arrive whole.
        max_pubsub_output: Bytes of messages that may wait for one subscriber.

    Attributes:
        keys: The hub's keys.
        clients: The open connections.
    """

    def __init__(
        self,
        *,
        max_connections: int = connections_for(1),
        max_request: int = DEFAULT_MAX_REQUEST,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_pubsub_output: int = DEFAULT_MAX_PUBSUB_OUTPUT,
    ) -> None:
        if min(max_connections, max_request, max_pubsub_output) <= 0 or request_timeout <= 0:
            raise ValueError("the hub's limits must be positive")
        self.max_connections = max_connections
        self.max_request = max_request
        self.request_timeout = request_timeout
        self.max_pubsub_output = max_pubsub_output
        self.keys = Keyspace()
        self.clients: set[_Client] = set()
        self._subscribers: dict[bytes, dict[_Client, None]] = {}
        self._directory: str | None = None
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._commands: dict[bytes, tuple[Callable[[_Client, list[bytes]], Reply], int]] = {
            b"PING": (self._ping, -1),
            b"HELLO": (self._hello, -1),
            b"CLIENT": (self._client, -2),
            b"SELECT": (self._select, 2),
            b"QUIT": (self._quit, 1),
            b"RESET": (self._reset, 1),
            b"PUBLISH": (self._publish, 3),
            b"SUBSCRIBE": (self._subscribe, -2),
            b"UNSUBSCRIBE": (self._unsubscribe, -1),
            b"PUBSUB": (self._pubsub, -2),
            b"MULTI": (self._multi, 1),
            b"EXEC": (self._exec, 1),
            b"DISCARD": (self._discard, 1),
            b"EVAL": (self._eval, -3),
            b"EVALSHA": (self._evalsha, -3),
            b"SCRIPT": (self._script, -2),
        }

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The socket's path (RuntimeError before `start`)."""
        if self._directory is None:
            raise RuntimeError("the local hub is not started")
        return os.path.join(self._directory, _SOCKET_NAME)

    @property
    def url(self) -> str:
        """The redis-py URL of the hub: ``unix://``, the socket's path, and RESP2 (redis-py 8
        speaks RESP3 unless told, after a ``HELLO 3`` the hub refuses as Redis 5 did)."""
        return f"unix://{self.path}?protocol=2"

    async def start(self) -> str:
        """Make the private directory, listen on its socket and start sweeping expired keys.

        Returns:
            The hub's URL (:attr:`url`).

        Raises:
            OSError: The directory or the socket cannot be made (nothing is left behind).
        """
        remove_stale_directories()
        self._directory = tempfile.mkdtemp(prefix=_DIRECTORY_PREFIX)  # mode 0700
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            os.chmod(self.path, 0o600)
            listener.listen(128)
            listener.setblocking(False)
            loop = asyncio.get_running_loop()
            self._server = await loop.create_unix_server(lambda: _Client(self), sock=listener)
        except BaseException:
            listener.close()
            self._remove_files()
            raise
        self._sweeper = loop.call_later(_SWEEP_INTERVAL, self._sweep)
        return self.url

    async def close(self) -> None:
        """Stop listening, close every connection and remove the socket and its directory
        (idempotent)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for client in list(self.clients):
            client.closing = True
            if client.transport is not None:
                client.transport.abort()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._remove_files()

    def _remove_files(self) -> None:
        directory, self._directory = self._directory, None
        if directory is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, _SOCKET_NAME))
            with contextlib.suppress(OSError):
                os.rmdir(directory)

    def _sweep(self) -> None:
        looked = self.keys.sweep(_SWEEP_LIMIT)
        loop = asyncio.get_running_loop()
        delay = 0.0 if looked >= _SWEEP_LIMIT else _SWEEP_INTERVAL
        self._sweeper = loop.call_later(delay, self._sweep)

    # -- running commands -------------------------------------------------------------------
    def execute(self, client: _Client, request: list[bytes], out: list[bytes]) -> None:
        """Run one request of `client`, its reply appended to `out` (or queued in MULTI)."""
        name = request[0].upper()
        if client.channels and name not in _SUBSCRIBED_MODE:
            shown = _name_of(request[0]).lower()
            encode(
                CommandError(
                    f"ERR Can't execute '{shown}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                    "PING / QUIT / RESET are allowed in this context"
                ),
                out,
            )
            return
        if client.queued is not None and name not in _NOT_QUEUED:
            encode(self._queue(client, name, request), out)
            return
        encode(self._run(client, name, request), out)

    def _run(self, client: _Client, name: bytes, request: list[bytes]) -> Reply:
        own = self._commands.get(name)
        try:
            if own is not None:
                run, arity = own
                if not fits(arity, request):
                    return arity_error(request[0])
                return run(client, request)
            command = COMMANDS.get(name)
            if command is None:
                return _unknown(request[0])
            if not command.fits(request):
                return arity_error(request[0])
            return command.run(self.keys, request)
        except CommandError as exc:
            return exc
        except Exception:  # a bug of the hub's: that command fails, nothing else
            logger.exception("local hub: %s failed", _name_of(request[0]))
            return CommandError("ERR internal error of the local hub")

    def _arity(self, name: bytes) -> int | None:
        own = self._commands.get(name)
        if own is not None:
            return own[1]
        command = COMMANDS.get(name)
        return command.arity if command is not None else None

    def _queue(self, client: _Client, name: bytes, request: list[bytes]) -> Reply:
        arity = self._arity(name)
        error: CommandError | None = None
        if arity is None:
            error = _unknown(request[0])
        elif not fits(arity, request):
            error = arity_error(request[0])
        elif name in _NO_SUBSCRIBE_IN_MULTI:
            error = CommandError(f"ERR {name.decode()} inside MULTI is not allowed")
        else:
            client.queued_bytes += sum(len(arg) for arg in request)
            if client.queued_bytes > self.max_request:
                error = CommandError("ERR the transaction is too large")
        if error is not None:
            client.doomed = True
            return error
        assert client.queued is not None
        client.queued.append(request)
        return _QUEUED

    def call(self, *words: bytes) -> Reply:
        """Run a command as a script's ``redis.call`` does: the data commands and PUBLISH;
        an error reply is raised as :class:`CommandError`."""
        name = words[0].upper()
        request = list(words)
        if name == b"PUBLISH" and len(request) == 3:
            return self.publish(request[1], request[2])
        command = COMMANDS.get(name)
        if command is None:
            raise CommandError("ERR this command is not allowed from a script on the hub")
        if not command.fits(request):
            raise arity_error(words[0])
        return command.run(self.keys, request)

    # -- pub/sub ----------------------------------------------------------------------------
    def publish(self, channel: bytes, message: bytes) -> int:
        """Send `message` to every subscriber of `channel`, in order; how many got it."""
        subscribers = self._subscribers.get(channel)
        if not subscribers:
            return 0
        frame = (
            b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n" % (len(channel), channel, len(message)),
            message,
            b"\r\n",
        )
        for client in tuple(subscribers):
            client.push(frame, self.max_pubsub_output)
        return len(subscribers)

    def unsubscribe(self, client: _Client, channels: list[bytes]) -> list[Reply]:
        """Take `client` off `channels`; the replies Redis sends for it."""
        replies: list[Reply] = []
        for channel in channels:
            client.channels.pop(channel, None)
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.pop(client, None)
                if not subscribers:
                    del self._subscribers[channel]
            replies.append([b"unsubscribe", channel, len(client.channels)])
        return replies

    def _publish(self, client: _Client, args: list[bytes]) -> Reply:
        return self.publish(args[1], args[2])

    def _subscribe(self, client: _Client, args: list[bytes]) -> Reply:
        replies: list[Reply] = []
        for channel in args[1:]:
            if channel not in client.channels:
                if len(client.channels) >= _MAX_CHANNELS:
                    replies.append(CommandError("ERR too many channels on one connection"))
                    continue
                client.channels[channel] = None
                self._subscribers.setdefault(channel, {})[client] = None
            replies.append([b"subscribe", channel, len(client.channels)])
        return _Several(replies)

    def _unsubscribe(self, client: _Client, args: list[bytes]) -> Reply:
        channels = args[1:] or list(client.channels)
        if not channels:
            return [b"unsubscribe", None, 0]
        return _Several(self.unsubscribe(client, channels))

    def _pubsub(self, client: _Client, args: list[bytes]) -> Reply:
        if args[1].upper() != b"NUMSUB":
            return CommandError(f"ERR unknown subcommand '{_name_of(args[1])}'")
        counts: list[Reply] = []
        for channel in args[2:]:
            counts += (channel, len(self._subscribers.get(channel, ())))
        return counts

    # -- connection -------------------------------------------------------------------------
    def _ping(self, client: _Client, args: list[bytes]) -> Reply:
        if len(args) > 2:
            return arity_error(args[0])
        if client.channels:
            return [b"pong", args[1] if len(args) > 1 else b""]
        return args[1] if len(args) > 1 else _PONG

    def _hello(self, client: _Client, args: list[bytes]) -> Reply:
        if len(args) > 1:
            try:
                version = parse_integer(args[1])
            except CommandError:
                return CommandError("ERR Protocol version is not an integer or out of range")
            if version != 2:
                return CommandError("NOPROTO unsupported protocol version")
        return [
            b"server", b"salas-hub", b"version", b"7.0.0", b"proto", 2, b"id", id(client),
            b"mode", b"standalone", b"role", b"master", b"modules", [],
        ]  # fmt: skip

    def _client(self, client: _Client, args: list[bytes]) -> Reply:
        if args[1].upper() in (b"SETINFO", b"SETNAME"):
            return OK  # (nobody reads them back)
        return CommandError(f"ERR unknown subcommand '{_name_of(args[1])}'")

    def _select(self, client: _Client, args: list[bytes]) -> Reply:
        return OK if args[1] == b"0" else CommandError("ERR DB index is out of range")

    def _quit(self, client: _Client, args: list[bytes]) -> Reply:
        client.closing = True  # closed once this and the earlier replies are written
        return OK

    def _reset(self, client: _Client, args: list[bytes]) -> Reply:
        self.unsubscribe(client, list(client.channels))
        client.queued, client.queued_bytes, client.doomed = None, 0, False
        return Raw(b"+RESET\r\n")

    # -- transactions -----------------------------------------------------------------------
    def _multi(self, client: _Client, args: list[bytes]) -> Reply:
        if client.queued is not None:
            return CommandError("ERR MULTI calls can not be nested")
        client.queued, client.queued_bytes, client.doomed = [], 0, False
        return OK

    def _exec(self, client: _Client, args: list[bytes]) -> Reply:
        queued, doomed = client.queued, client.doomed
        client.queued, client.queued_bytes, client.doomed = None, 0, False
        if queued is None:
            return CommandError("ERR EXEC without MULTI")
        if doomed:
            return CommandError("EXECABORT Transaction discarded because of previous errors.")
        return [self._run(client, request[0].upper(), request) for request in queued]

    def _discard(self, client: _Client, args: list[bytes]) -> Reply:
        if client.queued is None:
            return CommandError("ERR DISCARD without MULTI")
        client.queued, client.queued_bytes, client.doomed = None, 0, False
        return OK

    # -- scripts ----------------------------------------------------------------------------
    def _eval(self, client: _Client, args: list[bytes]) -> Reply:
        sha = sha1_of(args[1])
        if sha not in SCRIPTS:
            return CommandError("ERR unknown script: the local hub runs only salas' own scripts")
        return self._run_script(sha, args)

    def _evalsha(self, client: _Client, args: list[bytes]) -> Reply:
        sha = args[1].decode("ascii", "replace").lower()
        if sha not in SCRIPTS:
            return CommandError("NOSCRIPT No matching script. Please use EVAL.")
        return self._run_script(sha, args)

    def _run_script(self, sha: str, args: list[bytes]) -> Reply:
        count = parse_integer(args[2])
        if count < 0:
            return CommandError("ERR Number of keys can't be negative")
        if count > len(args) - 3:
            return CommandError("ERR Number of keys can't be greater than number of args")
        keys, argv = args[3 : 3 + count], args[3 + count :]
        try:
            return SCRIPTS[sha](self.call, keys, argv)
        except CommandError as exc:
            return CommandError(f"ERR Error running script (call to {sha}): {exc.message}")
        except Exception as exc:  # a twin given inputs its script would fail on
            return CommandError(f"ERR Error running script (call to {sha}): {exc!r}")

    def _script(self, client: _Client, args: list[bytes]) -> Reply:
        sub = args[1].upper()
        if sub == b"LOAD" and len(args) == 3:
            sha = sha1_of(args[2])
            if sha not in SCRIPTS:
                return CommandError(
                    "ERR unknown script: the local hub runs only salas' own scripts"
                )
            return sha.encode()
        if sub == b"EXISTS" and len(args) >= 3:
            return [int(raw.decode("ascii", "replace").lower() in SCRIPTS) for raw in args[2:]]
        return CommandError(
            f"ERR unknown subcommand or wrong number of arguments for '{_name_of(args[1])}'"
        )


def _unknown(name: bytes) -> CommandError:
    return CommandError(f"ERR unknown command '{_name_of(name)}'")
