"""`salas serve --workers N`: one parent process listens, N worker processes serve.

Long-polling sends the requests of one session over any number of connections, so every
request carrying a `sid` must reach the worker that holds the session. The parent accepts
each connection, reads its first request head (bounded in bytes and in time, as the engine
bounds its own) and hands the connection over, with the bytes already read, to a worker: the
one whose index starts the sid (`sid_prefix`), else the next in turn. The socket travels over
a Unix socket pair per worker (`SCM_RIGHTS`, `socket.send_fds`), and the worker's engine
adopts it (`EngineServer.adopt`) as if it had accepted it itself: from then on the connection
is the worker's, websocket included, and the parent sees none of its bytes.

A kept-alive connection stays with the worker it was handed to. A client that reuses it for
another worker's session (a browser pools connections across tabs) is answered 400 "Session
ID unknown" with `Connection: close` (`WorkerLink.misrouted`): the official clients then
reconnect, recovering the session where connection state recovery can (a fresh connection
goes through the parent again).

A worker that exits is started again, after a pause that grows while it keeps dying; its
clients reconnect to the others. SIGTERM (or SIGINT) to the parent stops accepting, passes
SIGTERM to every worker (each drains as a single `salas serve` does) and waits for them.

Connection limits: each worker counts the connections it adopted (total, per address); the
parent bounds the connections still waiting for their first head with the same numbers.
Linux (and other Unixes with `SCM_RIGHTS` on `SOCK_SEQPACKET`) only.

The workers share rooms, presence and recovery as the nodes of a cluster do, over Redis: the
one given with --redis, or else the parent's own (`salas.cluster.hub.LocalHub`, in memory on
a private Unix socket), which every worker is started with as its --redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import httptools

from salas.engine import EngineServer
from salas.engine.http import HttpRequest
from salas.engine.limits import ConnectionLimits
from salas.engine.logsafe import printable

__all__ = [
    "WORKER_FLAG",
    "Supervisor",
    "WorkerLink",
    "owner_of",
    "parse_workers",
    "sid_prefix",
]

logger = logging.getLogger("salas.cluster")

# The hidden `salas serve` option a worker is started with: "INDEX:FD" (FD: its end of the
# socket pair to the parent).
WORKER_FLAG = "--cluster-worker"
# The option that gives the workers the parent's local hub (after the user's own options:
# the last one counts).
HUB_FLAG = "--redis"
# The most bytes of a first request head the parent reads (the engine's own limit on a head's
# text is 64 KiB; the rest is room for the request line's and headers' separators).
MAX_HEAD_BYTES = 80 * 1024
_READ_SIZE = 16 * 1024
# What one hand-over carries at most: the head and the rest of the read it ended in.
MAX_HANDOVER_BYTES = MAX_HEAD_BYTES + _READ_SIZE
_READY = b"ready"
# Seconds every worker has to start before the parent gives up.
START_TIMEOUT = 60.0
# Seconds the workers have to drain after SIGTERM before they are killed.
STOP_TIMEOUT = 30.0
# Pause before starting again a worker that exited; doubled while it keeps dying young.
_RESTART_PAUSE = 0.5
_RESTART_PAUSE_MAX = 10.0
_ACCEPT_PAUSE = 0.1  # seconds without accepting after accept() failed
_YOUNG = 10.0  # seconds: a worker that dies younger than this doubles the next pause


def sid_prefix(index: int) -> str:
    """What every sid of worker `index` starts with."""
    return f"{index}."


def owner_of(sid: str, workers: int) -> int | None:
    """The index of the worker that made `sid`, or None if it names none of `workers`."""
    head, dot, _ = sid.partition(".")
    if not dot or not head.isdigit() or len(head) > 4:
        return None
    index = int(head)
    return index if index < workers else None


def parse_workers(raw: str) -> int:
    """`--workers`: a positive count, or "auto" for the machine's cores; ValueError if not."""
    text = raw.strip().lower()
    if text == "auto":
        return os.cpu_count() or 1
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise ValueError(f"expected a number of processes (1 to 1024) or 'auto', got {raw!r}")
    return int(text)


# -- the worker's side ------------------------------------------------------------------------
# Seconds a worker whose parent is gone has to shut down before it exits at once.
ORPHAN_GRACE = 10.0


def _exit_orphaned() -> None:
    logger.error("still shutting down %.0f s after the parent went away: exiting", ORPHAN_GRACE)
    os._exit(1)


class WorkerLink:
    """A worker's end of the socket pair: adopts each connection the parent hands over.

    It tells the parent it is ready (`start`), serves what arrives, and stops the worker with
    SIGTERM when the parent is gone (the pair reads end-of-file) — also while the worker is
    already shutting down (`close`): then, nobody being left to SIGKILL it if that shutdown
    hangs (waiting on a peer under overload, say), it exits by itself `ORPHAN_GRACE` seconds
    later whatever happens."""

    def __init__(self, engine: EngineServer, index: int, workers: int, fd: int) -> None:
        self.engine = engine
        self.index = index
        self.workers = workers
        self._channel = socket.socket(fileno=fd)
        self._channel.setblocking(False)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False  # taking no more connections
        engine.sid_prefix = sid_prefix(index)
        engine.misrouted = self.misrouted

    def start(self) -> None:
        """Take connections from now on; call once the application is ready to serve."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._channel.fileno(), self._readable)
        with contextlib.suppress(OSError):
            self._channel.send(_READY)

    def close(self) -> None:
        """Take no more connections (those handed over meanwhile are closed here, and are the
        parent's to close too); the link goes on watching for the parent's end."""
        self._closed = True

    def _readable(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._channel, MAX_HANDOVER_BYTES, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.error("lost the link to the parent process: %s", exc)
                data, fds = b"", []
            if not data and not fds:
                self._parent_gone()
                return
            adopt = fds[:1] if not self._closed else []
            for extra in fds[len(adopt) :]:
                os.close(extra)  # one connection per message; more is not ours to serve
            if adopt:
                self.engine.adopt(socket.socket(fileno=adopt[0]), data)

    def _parent_gone(self) -> None:
        # Nothing more will come: drain and stop as on SIGTERM, within ORPHAN_GRACE.
        logger.warning("the parent process is gone: stopping")
        self._closed = True
        if self._loop is not None:
            self._loop.remove_reader(self._channel.fileno())
        self._channel.close()
        deadline = threading.Timer(ORPHAN_GRACE, _exit_orphaned)
        deadline.daemon = True
        deadline.start()
        os.kill(os.getpid(), signal.SIGTERM)

    def misrouted(self, request: HttpRequest) -> bool:
        """A request whose sid is unknown here: answered 400 as always, and when the sid is
        another worker's (a kept-alive connection reused for it), the connection is closed
        after the answer so that the client's next one goes through the parent again."""
        owner = owner_of(request.query.get("sid", ""), self.workers)
        if owner is not None and owner != self.index:
            request.keep_alive = False
        return False


# -- the parent's side ------------------------------------------------------------------------
class _Worker:
    """One worker process and the parent's end of its socket pair."""

    __slots__ = ("channel", "index", "pause", "process", "ready", "started_at")

    def __init__(self, index: int) -> None:
        self.index = index
        self.channel: socket.socket | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.started_at = 0.0
        self.pause = _RESTART_PAUSE  # before it is started again


class _Waiting:
    """A connection in the parent, until its first request head is in (httptools callbacks)."""

    __slots__ = ("address", "buffer", "complete", "parser", "sock", "timer", "url")

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray()
        self.url = b""
        self.complete = False
        self.parser = httptools.HttpRequestParser(self)
        self.timer: asyncio.TimerHandle | None = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        self.complete = True

    def sid(self) -> str:
        """The `sid` of the request's query, or ""."""
        try:
            query = httptools.parse_url(self.url).query or b""
        except httptools.HttpParserInvalidURLError:
            return ""  # the worker answers what it makes of it
        return dict(parse_qsl(query.decode("latin-1"))).get("sid", "")


class Supervisor:
    """The parent of `salas serve --workers N` (see the module).

    Args:
        argv: The `salas` arguments the workers run with (the parent's own; each worker gets
            `WORKER_FLAG` added).
        workers: How many worker processes.
        head_timeout: Seconds a connection has to send its first request head.
        max_waiting: Connections waiting for their head, in total; 0: no limit.
        max_waiting_per_address: The same, per client address; 0: no limit.
    """

    def __init__(
        self,
        argv: Sequence[str],
        workers: int,
        *,
        head_timeout: float = 10.0,
        max_waiting: int = 10_000,
        max_waiting_per_address: int = 1000,
    ) -> None:
        self.argv = list(argv)
        self.workers = [_Worker(index) for index in range(workers)]
        self.head_timeout = head_timeout
        self.waiting = ConnectionLimits(max_waiting, max_waiting_per_address)
        self.handed_over = 0  # connections handed to a worker since the start
        self._pending: dict[int, _Waiting] = {}
        self._turn = 0
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._started = False  # every worker was ready once
        self._failing = asyncio.Event()  # a worker exited before that
        self._watchers: list[asyncio.Task[None]] = []
        self.failed: int | None = None  # a worker's exit code when it could not start

    # -- running ------------------------------------------------------------------------
    def bind(self, host: str, port: int) -> int:
        """Bind and listen (connections wait in the backlog until `serve`); the bound port."""
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(4096)
        except OSError:
            listener.close()
            raise
        listener.setblocking(False)
        self._listener = listener
        return int(listener.getsockname()[1])

    async def start(self) -> bool:
        """Start every worker, then accept; False (see `failed`) if one could not start."""
        self._loop = asyncio.get_running_loop()
        for worker in self.workers:
            await self._spawn(worker)
        ready: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(w.ready.wait() for w in self.workers))
        )
        failing: asyncio.Future[Any] = asyncio.ensure_future(self._failing.wait())
        await asyncio.wait(
            [ready, failing], timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        for waiting in (ready, failing):
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting  # retrieved: nothing logged as "never retrieved"
        if self.failed is None and not all(w.ready.is_set() for w in self.workers):
            logger.error("the workers did not start within %.0f s", START_TIMEOUT)
            self.failed = 1
        if self.failed is not None:
            return False
        self._started = True
        assert self._listener is not None
        self._loop.add_reader(self._listener.fileno(), self._accept)
        return True

    async def stop(self) -> None:
        """Stop accepting, close the connections still waiting, stop every worker (SIGTERM,
        then SIGKILL after `STOP_TIMEOUT`) and wait for them."""
        self._stopping = True
        loop = self._loop
        if self._listener is not None:
            if loop is not None:
                loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        for pending in list(self._pending.values()):
            self._drop(pending)
        processes = [w.process for w in self.workers if w.process is not None]
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        waits = [process.wait() for process in processes]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), STOP_TIMEOUT)
        except TimeoutError:
            for process in processes:
                if process.returncode is None:
                    logger.warning("worker pid %d did not stop: killing it", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*(process.wait() for process in processes))
        for watcher in self._watchers:
            watcher.cancel()
        for worker in self.workers:
            self._close_channel(worker)

    # -- workers ------------------------------------------------------------------------
    async def _spawn(self, worker: _Worker) -> None:
        assert self._loop is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        worker.ready.clear()
        worker.channel = ours
        worker.started_at = time.monotonic()
        try:
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "salas",
                *self.argv,
                WORKER_FLAG,
                f"{worker.index}:{theirs.fileno()}",
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        logger.info("worker %d started (pid %d)", worker.index, worker.process.pid)
        self._loop.add_reader(ours.fileno(), self._from_worker, worker)
        self._watchers.append(self._loop.create_task(self._watch(worker, worker.process)))

    def _from_worker(self, worker: _Worker) -> None:
        channel = worker.channel
        if channel is None:
            return
        try:
            message = channel.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            message = b""
        if message == _READY:
            worker.ready.set()
        elif not message:
            self._close_channel(worker)  # it is exiting; `_watch` takes over

    def _close_channel(self, worker: _Worker) -> None:
        worker.ready.clear()
        channel, worker.channel = worker.channel, None
        if channel is not None:
            if self._loop is not None:
                self._loop.remove_reader(channel.fileno())
            channel.close()

    async def _watch(self, worker: _Worker, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self._stopping:
            return
        self._close_channel(worker)
        if not self._started:
            # A worker that cannot start (bad store, bad key) ends the whole server with
            # its exit code, rather than being started again forever.
            logger.error("worker %d exited with %s while starting", worker.index, code)
            if self.failed is None:
                self.failed = code if code > 0 else 1
            self._failing.set()
            return
        young = time.monotonic() - worker.started_at < _YOUNG
        worker.pause = min(_RESTART_PAUSE_MAX, worker.pause * 2) if young else _RESTART_PAUSE
        pause = worker.pause
        logger.warning(
            "worker %d (pid %d) exited with %s: starting it again in %.1f s",
            worker.index,
            process.pid,
            code,
            pause,
        )
        await asyncio.sleep(pause)
        if not self._stopping:
            await self._spawn(worker)

    # -- connections --------------------------------------------------------------------
    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None and self._loop is not None
        for _ in range(256):  # then let the rest of the loop run
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors...: the backlog waits, and the listener (readable all
                # along) is watched again a little later rather than spun on.
                logger.warning("accept failed: %s (accepting again in 0.1 s)", exc)
                self._loop.remove_reader(listener.fileno())
                self._loop.call_later(_ACCEPT_PAUSE, self._resume_accepting)
                return
            sock.setblocking(False)
            address = str(peer[0]) if isinstance(peer, tuple) else ""
            status = self.waiting.acquire(address)
            if status is not None:
                _answer(sock, status, b"Too many connections waiting\n")
                continue
            pending = _Waiting(sock, address)
            self._pending[sock.fileno()] = pending
            pending.timer = self._loop.call_later(self.head_timeout, self._timed_out, pending)
            self._loop.add_reader(sock.fileno(), self._readable, pending)

    def _resume_accepting(self) -> None:
        if self._listener is not None and self._loop is not None and not self._stopping:
            self._loop.add_reader(self._listener.fileno(), self._accept)

    def _readable(self, pending: _Waiting) -> None:
        room = MAX_HEAD_BYTES - len(pending.buffer)
        try:
            data = pending.sock.recv(min(_READ_SIZE, max(room, 1)))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(pending)
            return
        pending.buffer += data
        try:
            pending.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pending.complete = True
        except httptools.HttpParserError:
            if not pending.complete:
                self._drop(pending, HTTPStatus.BAD_REQUEST, b"Bad Request")
                return
        if pending.complete:
            self._hand_over(pending)
        elif len(pending.buffer) >= MAX_HEAD_BYTES:
            self._drop(pending, HTTPStatus.BAD_REQUEST, b"Bad Request")

    def _timed_out(self, pending: _Waiting) -> None:
        logger.debug("closing a connection from %s: head timed out", printable(pending.address))
        self._drop(pending, HTTPStatus.REQUEST_TIMEOUT, b"Request Timeout")

    def _forget(self, pending: _Waiting) -> None:
        if self._pending.pop(pending.sock.fileno(), None) is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(pending.sock.fileno())
        if pending.timer is not None:
            pending.timer.cancel()
        self.waiting.release(pending.address)

    def _drop(self, pending: _Waiting, status: int = 0, body: bytes = b"") -> None:
        """Close a waiting connection, answering `status` first if given."""
        self._forget(pending)
        if status:
            _answer(pending.sock, status, body)
        else:
            pending.sock.close()

    def _hand_over(self, pending: _Waiting) -> None:
        self._forget(pending)
        sid = pending.sid()
        owner = owner_of(sid, len(self.workers)) if sid else None
        worker = self.workers[owner] if owner is not None else None
        if worker is None or worker.channel is None:
            # A handshake, another route, or a session whose worker is gone (any worker
            # answers that sid as unknown, and the client reconnects).
            worker = self._next_worker()
        if worker is None or worker.channel is None:
            _answer(pending.sock, HTTPStatus.SERVICE_UNAVAILABLE, b"No worker available\n")
            return
        try:
            socket.send_fds(worker.channel, [bytes(pending.buffer)], [pending.sock.fileno()])
        except OSError as exc:  # its queue is full, or it is exiting
            logger.warning("could not hand a connection to worker %d: %s", worker.index, exc)
            _answer(pending.sock, HTTPStatus.SERVICE_UNAVAILABLE, b"Worker busy\n")
            return
        self.handed_over += 1
        pending.sock.close()  # the worker holds its own descriptor now

    def _next_worker(self) -> _Worker | None:
        """The next ready worker in turn (round-robin), or None if none is."""
        count = len(self.workers)
        for _ in range(count):
            worker = self.workers[self._turn % count]
            self._turn += 1
            if worker.ready.is_set() and worker.channel is not None:
                return worker
        return None


def _answer(sock: socket.socket, status: int, body: bytes) -> None:
    """Answer a connection the parent refuses, as far as it accepts bytes now, and close it."""
    phrase = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=UTF-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        sock.send(head.encode("latin-1") + body)
        sock.shutdown(socket.SHUT_WR)
    sock.close()


async def supervise(
    argv: Sequence[str],
    workers: int,
    host: str,
    port: int,
    *,
    head_timeout: float = 10.0,
    max_waiting: int = 10_000,
    max_waiting_per_address: int = 1000,
    local_hub: bool = False,
    announce: Callable[..., None] = logger.info,
) -> int:
    """Run the parent until SIGINT/SIGTERM: the exit code (0 once every worker has stopped;
    1 when the address or the hub's socket cannot be made; a worker's own code when one
    cannot start).

    With `local_hub`, the parent serves a `LocalHub` for the workers (started with
    ``--redis`` and its URL), until they have stopped. `announce(message, *args)` logs the
    listening line (with the bound port)."""
    hub = None
    if local_hub:
        from salas.cluster.hub import LocalHub, connections_for

        hub = LocalHub(max_connections=connections_for(workers))
        try:
            argv = [*argv, HUB_FLAG, await hub.start()]
        except OSError as exc:
            print(f"salas: error: cannot make the workers' hub: {exc}", file=sys.stderr)
            return 1
    try:
        return await _supervise(
            argv,
            workers,
            host,
            port,
            head_timeout=head_timeout,
            max_waiting=max_waiting,
            max_waiting_per_address=max_waiting_per_address,
            announce=announce,
            shared="a local hub" if hub is not None else "Redis",
        )
    finally:
        if hub is not None:
            await hub.close()


async def _supervise(
    argv: Sequence[str],
    workers: int,
    host: str,
    port: int,
    *,
    head_timeout: float,
    max_waiting: int,
    max_waiting_per_address: int,
    announce: Callable[..., None],
    shared: str,
) -> int:
    supervisor = Supervisor(
        argv,
        workers,
        head_timeout=head_timeout,
        max_waiting=max_waiting,
        max_waiting_per_address=max_waiting_per_address,
    )
    try:
        bound = supervisor.bind(host, port)
    except OSError as exc:
        print(
            f"salas: error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        started = loop.create_task(supervisor.start())
        stopped = loop.create_task(stop.wait())
        await asyncio.wait([started, stopped], return_when=asyncio.FIRST_COMPLETED)
        if started.done() and not started.result():
            await supervisor.stop()
            return supervisor.failed or 1
        if started.done():
            shown = f"[{host}]" if ":" in host else host
            announce(
                "salas chat listening on http://%s:%d/ (%d workers sharing rooms over %s)",
                shown,
                bound,
                workers,
                shared,
            )
            await stopped
        started.cancel()
        logger.info("stopping the workers")
        await supervisor.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    logger.info("salas stopped")
    return 0
