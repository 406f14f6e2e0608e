"""The one writer of a SQLite file in a process: its connection, its thread, shared transactions.

salas keeps a chat's messages, its recovery log, its saved sessions and its bans in one
file. With a connection and a thread per store, each store's batch was a transaction of
its own — a write turn, ``BEGIN IMMEDIATE``, a ``COMMIT`` that syncs the WAL
(``synchronous=FULL``) and two thread hops — and under a chat's load the recovery log's
transaction followed each batch of messages by a millisecond. Every store of a file in
one process (and event loop) now writes through one :class:`FileWriter`, which puts what
they ask for at about the same time into one transaction.

Merging: :meth:`FileWriter.write` starts a transaction at once when none is running;
while one runs, what is asked for waits for the next, together with everything else asked
for meanwhile. A write given ``within`` (the recovery log's rows, which nobody waits for)
starts none: it joins the next transaction that starts, and starts one itself only when
none has within that many seconds. In a transaction of several writes each runs inside
its own ``SAVEPOINT``: one that raises is rolled back alone and its caller gets the error,
the others commit. A failed ``BEGIN`` or ``COMMIT`` fails them all (none was written).

Processes sharing the file still write one after another: each transaction holds the
file's write turn (:class:`~salas.db.sqlite.SQLiteFile`) and SQLite's own lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["BUSY_TIMEOUT_S", "FileWriter", "WriteTurn", "in_transaction", "writer_of"]

_T = TypeVar("_T")
#: How long a write waits for another connection or process holding the file's write lock.
BUSY_TIMEOUT_S = 10.0

Work = Callable[[sqlite3.Connection], Any]


class WriteTurn:
    """salas' writers of one file take turns through an exclusive ``flock`` on a file beside
    it (``<database>-writers``): a writer waiting for its turn sleeps in the kernel, which
    wakes it as soon as the turn is free, without taking Python's GIL meanwhile. SQLite's own
    busy handler, which a writer would otherwise wait in, sleeps 1, 2, 5, 10, 15, 20, 25 ms...
    between attempts: with several writers on one file (the workers of ``--workers N``) a
    commit waited tens of milliseconds for a lock free after one. Asking SQLite every
    0.1-2 ms instead cost the event loop's thread CPU (each waiting thread woke and took the
    GIL); this costs nothing while waiting.

    A turn has no timeout: a writer waits as long as the one before it holds its turn (a
    process killed meanwhile lets go of it with its file). Other programs writing the file
    take no turn and still meet SQLite's lock, which does time out."""

    def __init__(self, database: str) -> None:
        self._fd = os.open(f"{database}-writers", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def in_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """``work(conn)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


@dataclass(slots=True)
class _Outcome:
    """What one write of a shared transaction came to: its result, or what it raised."""

    ok: bool
    value: Any


@dataclass(slots=True)
class _Waiting:
    """Writes asked for and not yet in a transaction, in the order asked."""

    works: list[Work] = field(default_factory=list)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)

    def add(self, work: Work, future: asyncio.Future[Any]) -> None:
        self.works.append(work)
        self.futures.append(future)

    def __len__(self) -> int:
        return len(self.works)


def _run_each(conn: sqlite3.Connection, works: list[Work]) -> list[_Outcome]:
    """In the thread, inside the transaction: each work in its own savepoint."""
    if len(works) == 1:  # nothing to keep apart: its error rolls back the transaction
        return [_Outcome(True, works[0](conn))]
    outcomes = []
    for work in works:
        conn.execute("SAVEPOINT salas_write")
        try:
            value = work(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO salas_write")
            conn.execute("RELEASE salas_write")
            outcomes.append(_Outcome(False, exc))
        else:
            conn.execute("RELEASE salas_write")
            outcomes.append(_Outcome(True, value))
    return outcomes


class FileWriter:
    """The writer of one SQLite file for the stores of one event loop (see the module).

    Made and shared by :func:`writer_of`; each store's :class:`~salas.db.sqlite.SQLiteFile`
    opens it (``acquire``) and lets go of it (``release``); the last one closes it.
    """

    def __init__(self, path: str, key: tuple[asyncio.AbstractEventLoop, str]) -> None:
        self.path = path
        self._key = key
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="salas-sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._turn: WriteTurn | None = None
        self._opening: asyncio.Future[None] | None = None
        self._users = 0
        self._next = _Waiting()  # starts a transaction as soon as none runs
        self._riders = _Waiting()  # joins the next transaction
        self._riders_due = float("inf")  # loop time by which the riders' transaction starts
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[list[_Outcome]] | None = None
        self._secure_delete = False
        #: What ``PRAGMA journal_mode=WAL`` answered ("wal" where it took).
        self.journal_mode = ""
        #: Transactions committed, and writes they held: the measure of merging.
        self.transactions = 0
        self.writes_committed = 0

    # -- life cycle ----------------------------------------------------------------------

    async def acquire(self) -> None:
        """Open the connection if this is its first user; sqlite3.Error or OSError if it
        cannot be (the writer is then forgotten, and the next store tries afresh)."""
        self._users += 1
        opening = self._opening
        if opening is not None:
            try:
                await asyncio.shield(opening)
            except BaseException:
                self._users -= 1
                raise
            return
        opening = self._opening = asyncio.get_running_loop().create_future()
        try:
            self._turn = WriteTurn(self.path)
            self._conn, self.journal_mode = await self.call(_connect, self.path)
        except BaseException as exc:
            opening.set_exception(exc)
            opening.exception()  # retrieved: the other users, if any, get it as they await
            self._users -= 1
            _forget(self)
            self._stop()
            raise
        opening.set_result(None)

    async def release(self) -> None:
        """One user fewer; the last one's release finishes what was asked for, then closes
        the connection and stops the thread."""
        self._users -= 1
        if self._users > 0:
            return
        _forget(self)
        while True:
            if self._running is None and (self._next or self._riders):
                self._start()
            running = self._running
            if running is None:
                break
            await asyncio.wait([running])
        conn, self._conn = self._conn, None
        if conn is not None:
            await self.call(conn.close)  # in its own thread: the connection belongs to it
        self._stop()

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._thread.shutdown(wait=True)  # idle by now, so this does not block the loop
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.close()

    async def call(self, fn: Callable[..., _T], *args: object) -> _T:
        """``fn(*args)`` in the writer's thread, outside any transaction (set-up, checkpoints)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def outside_transaction(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn(conn)`` in the writer's thread between transactions (a checkpoint)."""
        conn = self._connection()
        return await self.call(fn, conn)

    async def prepare(
        self,
        schema: str,
        migrate: Callable[[sqlite3.Connection], None] | None,
        secure_delete: bool,
    ) -> None:
        """Run a store's ``schema`` (``CREATE ... IF NOT EXISTS``) in one transaction, then
        ``migrate(conn)`` in another; with ``secure_delete``, turn SQLite's ``secure_delete``
        on for this connection (every store of the file then writes with it: deleted content
        is zeroed)."""
        conn = self._connection()

        def run() -> None:
            if secure_delete and not self._secure_delete:
                conn.execute("PRAGMA secure_delete=ON")
                self._secure_delete = True
            # One transaction (inside the script: executescript commits any open one first).
            conn.executescript(f"BEGIN IMMEDIATE; {schema} COMMIT;")
            if migrate is not None:
                in_transaction(conn, migrate)

        await self.call(run)

    # -- writing -------------------------------------------------------------------------

    async def write(self, work: Callable[[sqlite3.Connection], _T], within: float | None) -> _T:
        """``work(conn)`` in a transaction of the writer's thread, with what else is asked
        for meanwhile (see the module); ``within``: join the next transaction, starting one
        after that many seconds at most. Raises what ``work`` raised (rolled back), or the
        ``sqlite3.Error`` that failed the whole transaction."""
        self._connection()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        if within is None:
            self._next.add(work, future)
            if self._running is None:
                self._start()
        else:
            self._riders.add(work, future)
            self._riders_due = min(self._riders_due, loop.time() + within)
            if self._running is None:
                self._wait_for_riders(loop)
        return await future

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError(f"the writer of {self.path!r} is closed")
        return self._conn

    def _wait_for_riders(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is None and self._riders:
            self._timer = loop.call_at(self._riders_due, self._riders_waited)

    def _riders_waited(self) -> None:
        self._timer = None
        if self._running is None and self._riders:
            self._start()

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._next = self._next, _Waiting()
        riders, self._riders = self._riders, _Waiting()
        self._riders_due = float("inf")
        for work, future in zip(riders.works, riders.futures, strict=True):
            batch.add(work, future)
        # A caller cancelled before its transaction began is not written.
        works = [w for w, f in zip(batch.works, batch.futures, strict=True) if not f.done()]
        futures = [f for f in batch.futures if not f.done()]
        if not works:
            return
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._thread, self._transact, works)
        self._running = running
        running.add_done_callback(lambda done: self._finished(done, futures))

    def _transact(self, works: list[Work]) -> list[_Outcome]:
        conn = self._connection()
        turn = self._turn
        assert turn is not None
        with turn:
            return in_transaction(conn, lambda c: _run_each(c, works))

    def _finished(
        self, done: asyncio.Future[list[_Outcome]], futures: list[asyncio.Future[Any]]
    ) -> None:
        self._running = None
        if done.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = done.exception()
        if error is not None:
            for i, future in enumerate(futures):
                if not future.done():
                    # One exception object per waiter past the first: a shared one would
                    # collect every raiser's traceback frames.
                    future.set_exception(error if i == 0 else _copy(error))
        else:
            outcomes = done.result()
            self.transactions += 1
            self.writes_committed += sum(outcome.ok for outcome in outcomes)
            for future, outcome in zip(futures, outcomes, strict=True):
                if future.done():
                    continue
                if outcome.ok:
                    future.set_result(outcome.value)
                else:
                    future.set_exception(outcome.value)
        if self._next:
            self._start()
        else:
            self._wait_for_riders(asyncio.get_running_loop())


def _copy(error: BaseException) -> BaseException:
    try:
        twin = type(error)(*error.args)
    except Exception:
        return error
    twin.__cause__ = error.__cause__
    return twin


_writers: dict[tuple[asyncio.AbstractEventLoop, str], FileWriter] = {}


def writer_of(path: str) -> FileWriter:
    """The writer of the file at ``path`` for the running loop: the one its other stores
    use, or a new one (not yet acquired)."""
    key = (asyncio.get_running_loop(), os.path.realpath(path))
    writer = _writers.get(key)
    if writer is None:
        writer = _writers[key] = FileWriter(path, key)
    return writer


def _forget(writer: FileWriter) -> None:
    """Stores opening the file from now on get a new writer."""
    if _writers.get(writer._key) is writer:
        del _writers[writer._key]


def _connect(path: str) -> tuple[sqlite3.Connection, str]:
    # Several processes opening one new file at once (the workers of `salas serve
    # --workers`) race on switching it to WAL, which SQLite answers "database is locked"
    # at once rather than through the busy timeout: try again until that timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return _try_connect(path)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _try_connect(path: str) -> tuple[sqlite3.Connection, str]:
    # isolation_level=None: no implicit transactions; writes say BEGIN themselves.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        # FULL: the WAL is synced at every commit — i.e. once per transaction.
        conn.execute("PRAGMA synchronous=FULL")
    except BaseException:
        conn.close()
        raise
    return conn, str(mode)
