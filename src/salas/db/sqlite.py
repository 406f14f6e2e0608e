"""What the SQLite stores (messages and recovery) share: what they accept, and :class:`SQLiteFile`.

Threads: the stdlib ``sqlite3`` module runs in threads. Writes go through the file's one
writer in this process (:mod:`salas.db.sqlite_writer`): one connection and thread that
every store of the file shares, running a batch in one hop (aiosqlite would cost one
thread hop per statement) inside one ``BEGIN IMMEDIATE`` transaction, and putting what
the stores ask for at about the same time into one transaction. The file's write lock is
taken up front, so several processes sharing the file write one after another — salas'
writers in turns kept by a lock file beside the database
(:class:`~salas.db.sqlite_writer.WriteTurn`), so that the next one starts as soon as the one
before commits. Each store has a reader thread that serves queries on a query-only
connection and never waits for a write, since WAL readers do not block on the writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from salas.db.common import check_identifier
from salas.db.errors import StoreError, not_open
from salas.db.sqlite_writer import BUSY_TIMEOUT_S, FileWriter, writer_of

__all__ = ["SQLiteFile", "param", "sqlite_location"]

_T = TypeVar("_T")


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


class SQLiteFile:
    """One store's view of a SQLite file in WAL mode with ``synchronous=FULL``: its reader
    thread, and the file's writer, shared with the other stores of the file in this process.

    ``schema`` (``CREATE ... IF NOT EXISTS`` statements) runs in one transaction on
    ``open``, then ``migrate(conn)`` (if given) in another, holding the write lock, to bring
    an older schema up to date. ``name`` says whose file this is in "<name> store is not
    open"; ``threads`` names the reader thread (``salas-<threads>-reader``; the writer's is
    ``salas-sqlite-writer``). ``secure_delete`` turns on SQLite's ``secure_delete`` pragma
    for the file's writer: content it deletes or overwrites is zeroed in the file, not left
    in free space (the WAL still holds it until :meth:`checkpoint`).
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
        self._writer: FileWriter | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_thread: ThreadPoolExecutor | None = None

    @property
    def is_open(self) -> bool:
        """Whether ``open`` succeeded and ``close`` has not been called since."""
        return self._writer is not None

    @property
    def writer(self) -> FileWriter | None:
        """The file's writer while open (shared with the file's other stores)."""
        return self._writer

    async def open(self) -> None:
        """Connect, creating the file and its schema; StoreError if it cannot."""
        writer = writer_of(self.path)
        try:
            await writer.acquire()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        self._writer = writer
        self.journal_mode = writer.journal_mode
        self._read_thread = ThreadPoolExecutor(
            1, thread_name_prefix=f"salas-{self._threads}-reader"
        )
        try:
            await writer.prepare(self._schema, self._migrate, self._secure_delete)
            self._reader = await _in(self._read_thread, self._connect_reader)
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc

    async def close(self) -> None:
        """Close the reader, stop its thread and let go of the writer (idempotent); the
        last store of the file to close it closes the writer, after what was asked of it."""
        reader, read_thread = self._reader, self._read_thread
        writer, self._writer = self._writer, None
        self._reader = None
        self._read_thread = None
        if read_thread is not None:
            if reader is not None:
                # Closed in its own thread: a connection belongs to the thread that made it.
                await _in(read_thread, reader.close)
            read_thread.shutdown(wait=True)  # idle by now, so this does not block the loop
        if writer is not None:
            await writer.release()

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
        self,
        work: Callable[[sqlite3.Connection], _T],
        *,
        failing: str | None = None,
        within: float | None = None,
    ) -> _T:
        """``work(conn)`` in the writer's thread, in a ``BEGIN IMMEDIATE`` transaction,
        maybe with other stores' writes (``work`` alone is rolled back if it raises);
        StoreError, starting with ``failing``, if it fails. ``within``: this write need not
        start a transaction — it joins the file's next one, which starts within that many
        seconds at most (:mod:`salas.db.sqlite_writer`)."""
        writer = self._writer
        if writer is None:
            raise not_open(self._name)
        try:
            return await writer.write(work, within)
        except sqlite3.Error as exc:
            failing = failing or f"SQLite write to {self.path!r} failed"
            raise StoreError(f"{failing}: {exc}") from exc

    async def checkpoint(self) -> bool:
        """Copy the WAL into the database file and truncate the WAL, in the writer thread.

        Waits for readers as a write does. Returns whether it completed (False when another
        connection still reads an older snapshot; the next checkpoint then finishes it).
        StoreError if closed or if it fails.
        """
        writer = self._writer
        if writer is None:
            raise not_open(self._name)

        def truncate(conn: sqlite3.Connection) -> bool:
            (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return bool(busy == 0)

        try:
            return await writer.outside_transaction(truncate)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite checkpoint of {self.path!r} failed: {exc}") from exc

    # -- the reader thread's side ------------------------------------------------------

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute("PRAGMA query_only=ON")
        return conn
