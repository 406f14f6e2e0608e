"""What the SQLite stores (messages and recovery) share: what they accept, and :class:`SQLiteFile`.

Threads: the stdlib ``sqlite3`` module runs in two dedicated threads, one per connection.
The writer thread runs a whole batch in one hop (aiosqlite would cost one thread hop per
statement), inside one ``BEGIN IMMEDIATE`` transaction: the file's write lock is taken up
front, so several connections and processes sharing the file write one after another —
salas' writers in turns kept by a lock file beside the database (:class:`_WriteTurn`), so
that the next one starts as soon as the one before commits. The reader thread serves
queries on a query-only connection and never waits for a write, since WAL readers do not
block on the writer.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from salas.db.common import check_identifier
from salas.db.errors import StoreError, not_open

__all__ = ["SQLiteFile", "param", "sqlite_location"]

_T = TypeVar("_T")
# How long a write waits for another connection or process holding the file's write lock.
_BUSY_TIMEOUT_S = 10.0


def param(n: int) -> str:
    """SQLite's placeholder for the n-th parameter of a statement: ``?`` (by position)."""
    return "?"


def sqlite_location(path: str, table: str, url: str | None) -> tuple[str, str, str]:
    """``(path, table, url)`` of a SQLite store, checked, so that the message and recovery
    stores accept the same: StoreError for a path SQLite cannot keep a store in or a table
    name unfit for SQL. ``url`` is the URL the store came from, or ``sqlite:///<path>``."""
    if path.lstrip("/") == ":memory:" or path.startswith("file:"):
        raise StoreError(
            f"SQLite path {path!r} is not supported: use memory:// for an in-memory store"
        )
    if not path:
        raise StoreError("SQLite store needs a file path, e.g. sqlite:///var/salas.db")
    table = check_identifier("table", table)
    return path, table, url if url is not None else f"sqlite:///{path}"


async def _in(thread: ThreadPoolExecutor, fn: Callable[..., _T], *args: object) -> _T:
    return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)


class _WriteTurn:
    """salas' writers of one file take turns through an exclusive ``flock`` on a file beside
    it (``<database>-writers``): a writer waiting for its turn sleeps in the kernel, which
    wakes it as soon as the turn is free, without taking Python's GIL meanwhile. SQLite's own
    busy handler, which a writer would otherwise wait in, sleeps 1, 2, 5, 10, 15, 20, 25 ms...
    between attempts: with several writers on one file (the workers of ``--workers N``; one
    process's message store, recovery log and bans) a commit waited tens of milliseconds for
    a lock free after one. Asking SQLite every 0.1-2 ms instead cost the event loop's thread
    CPU (each waiting thread woke and took the GIL); this costs nothing while waiting.

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


def _in_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T]) -> _T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _in_turn(
    turn: _WriteTurn, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T]
) -> _T:
    with turn:
        return _in_transaction(conn, work)


class SQLiteFile:
    """One SQLite file in WAL mode with ``synchronous=FULL``: a writer and a reader thread.

    ``schema`` (``CREATE ... IF NOT EXISTS`` statements) runs in one transaction on
    ``open``, then ``migrate(conn)`` (if given) in another, holding the write lock, to bring
    an older schema up to date. ``name`` says whose file this is in "<name> store is not
    open"; ``threads`` names the threads (``salas-<threads>-writer``,
    ``salas-<threads>-reader``). ``secure_delete`` turns on SQLite's ``secure_delete``
    pragma for the writer: content it deletes or overwrites is zeroed in the file, not
    left in free space (the WAL still holds it until :meth:`checkpoint`).
    """

    def __init__(
        self,
        path: str,
        schema: str,
        *,
        name: str,
        threads: str,
        migrate: Callable[[sqlite3.Connection], None] | None = None,
        secure_delete: bool = False,
    ) -> None:
        self.path = path
        self._migrate = migrate
        self._secure_delete = secure_delete
        #: What ``PRAGMA journal_mode=WAL`` answered on ``open`` ("wal" where it took).
        self.journal_mode = ""
        self._schema = schema
        self._name = name
        self._threads = threads
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        self._turn: _WriteTurn | None = None
        self._read_thread: ThreadPoolExecutor | None = None

    @property
    def is_open(self) -> bool:
        """Whether ``open`` succeeded and ``close`` has not been called since."""
        return self._writer is not None

    async def open(self) -> None:
        """Connect both threads, creating the file and its schema; StoreError if it cannot."""
        self._write_thread = ThreadPoolExecutor(
            1, thread_name_prefix=f"salas-{self._threads}-writer"
        )
        self._read_thread = ThreadPoolExecutor(
            1, thread_name_prefix=f"salas-{self._threads}-reader"
        )
        try:
            self._turn = _WriteTurn(self.path)
            self._writer = await _in(self._write_thread, self._connect_writer)
            self._reader = await _in(self._read_thread, self._connect_reader)
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc

    async def close(self) -> None:
        """Close both connections and stop their threads (idempotent)."""
        reader, read_thread = self._reader, self._read_thread
        writer, write_thread = self._writer, self._write_thread
        self._reader = self._writer = None
        self._read_thread = self._write_thread = None
        for conn, thread in ((reader, read_thread), (writer, write_thread)):
            if thread is None:
                continue
            if conn is not None:
                # Closed in its own thread: a connection belongs to the thread that made it.
                await _in(thread, conn.close)
            thread.shutdown(wait=True)  # idle by now, so this does not block the loop
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.close()

    async def read(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        """``query(conn)`` in the reader thread; StoreError if closed or if it fails."""
        reader, thread = self._reader, self._read_thread
        if reader is None or thread is None:
            raise not_open(self._name)
        try:
            return await _in(thread, query, reader)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite read from {self.path!r} failed: {exc}") from exc

    async def write(
        self, work: Callable[[sqlite3.Connection], _T], *, failing: str | None = None
    ) -> _T:
        """``work(conn)`` in the writer thread, in one ``BEGIN IMMEDIATE`` transaction
        (rolled back if it raises); StoreError, starting with ``failing``, if it fails."""
        writer, thread, turn = self._writer, self._write_thread, self._turn
        if writer is None or thread is None or turn is None:
            raise not_open(self._name)
        try:
            return await _in(thread, _in_turn, turn, writer, work)
        except sqlite3.Error as exc:
            failing = failing or f"SQLite write to {self.path!r} failed"
            raise StoreError(f"{failing}: {exc}") from exc

    async def checkpoint(self) -> bool:
        """Copy the WAL into the database file and truncate the WAL, in the writer thread.

        Waits for readers as a write does. Returns whether it completed (False when another
        connection still reads an older snapshot; the next checkpoint then finishes it).
        StoreError if closed or if it fails.
        """
        writer, thread = self._writer, self._write_thread
        if writer is None or thread is None:
            raise not_open(self._name)

        def truncate() -> bool:
            (busy, _, _) = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return bool(busy == 0)

        try:
            return await _in(thread, truncate)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite checkpoint of {self.path!r} failed: {exc}") from exc

    # -- the threads' side -------------------------------------------------------------

    def _connect_writer(self) -> sqlite3.Connection:
        # Several processes opening one new file at once (the workers of `salas serve
        # --workers`) race on switching it to WAL, which SQLite answers "database is locked"
        # at once rather than through the busy timeout: try again until that timeout.
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                return self._try_connect_writer()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def _try_connect_writer(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; `write` says BEGIN itself.
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            self.journal_mode = str(mode)
            # FULL: the WAL is synced at every commit — i.e. once per batch.
            conn.execute("PRAGMA synchronous=FULL")
            if self._secure_delete:
                conn.execute("PRAGMA secure_delete=ON")
            # One transaction (inside the script: executescript commits any open one first).
            conn.executescript(f"BEGIN IMMEDIATE; {self._schema} COMMIT;")
            if self._migrate is not None:
                _in_transaction(conn, self._migrate)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute("PRAGMA query_only=ON")
        return conn
