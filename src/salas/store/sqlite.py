"""``sqlite:///abs/path.db``, ``sqlite://relative.db`` or a bare path: the default store.

The file and its schema are created on first start. Options (URL query):

- ``table`` — the table's name (default ``messages``; letters, digits, ``_``).

Durability and speed: the database runs in WAL mode with ``synchronous=FULL``, so a
message whose ``append`` returned survives a crash or power loss. What makes that cheap
is group commit (:mod:`salas.store.batching`): one transaction, one WAL sync per batch.

Threads: the stdlib ``sqlite3`` module runs in two dedicated threads, one per
connection. The writer thread writes a whole batch in one hop (aiosqlite would cost one
thread hop per statement); the reader thread serves ``history`` and never waits for a
write, since WAL readers do not block on the writer. Writes take SQLite's write lock with
``BEGIN IMMEDIATE``, so several processes may share one file: ids (``AUTOINCREMENT``,
never reused) stay strictly increasing in commit order, and the ``(channel, client_id)``
check runs inside the writing transaction.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .base import (
    HISTORY_LIMIT_DEFAULT,
    Draft,
    StoredMessage,
    StoreError,
    check_append,
    check_history,
    check_identifier,
)
from .batching import DEFAULT_MAX_BATCH, GroupCommitter
from .urls import split_sqlite_url

__all__ = ["SQLiteStore"]

_T = TypeVar("_T")
_COLUMNS = "id, channel, message, author, ts, client_id"
# How long a write waits for another process holding the file's write lock.
_BUSY_TIMEOUT_S = 10.0

Row = tuple[int, str, str, str, int, str | None]


def _message(row: Row) -> StoredMessage:
    return StoredMessage(*row)


class SQLiteStore:
    """A :class:`~salas.store.base.MessageStore` in one SQLite file."""

    backend = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        table: str = "messages",
        url: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if path.lstrip("/") == ":memory:" or path.startswith("file:"):
            raise StoreError(
                f"SQLite path {path!r} is not supported: use memory:// for an in-memory store"
            )
        if not path:
            raise StoreError("SQLite store needs a file path, e.g. sqlite:///var/salas.db")
        self.url = url if url is not None else f"sqlite:///{path}"
        self.path = path
        self.table = check_identifier("table", table)
        self._max_batch = max_batch
        # ``author``, not ``user``: ``user`` is reserved in PostgreSQL; both backends agree.
        t = f'"{table}"'
        self._schema = (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"  # AUTOINCREMENT: ids never reused
            " channel TEXT NOT NULL, message TEXT NOT NULL, author TEXT NOT NULL,"
            " ts INTEGER NOT NULL, client_id TEXT);"
            f'CREATE INDEX IF NOT EXISTS "{table}_channel_id" ON {t} (channel, id);'
            f'CREATE UNIQUE INDEX IF NOT EXISTS "{table}_channel_client_id"'
            f" ON {t} (channel, client_id) WHERE client_id IS NOT NULL;"
        )
        self._insert = (
            f"INSERT INTO {t} (channel, message, author, ts, client_id) VALUES (?,?,?,?,?)"
        )
        self._by_client_id = f"SELECT {_COLUMNS} FROM {t} WHERE channel = ? AND client_id = ?"
        select = f"SELECT {_COLUMNS} FROM {t} WHERE channel = ?"
        self._latest = f"{select} ORDER BY id DESC LIMIT ?"
        self._before = f"{select} AND id < ? ORDER BY id DESC LIMIT ?"
        self._after = f"{select} AND id > ? ORDER BY id LIMIT ?"
        self._between = f"{select} AND id > ? AND id < ? ORDER BY id LIMIT ?"
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        self._read_thread: ThreadPoolExecutor | None = None
        self._journal_mode = ""
        self._committer: GroupCommitter[Draft, StoredMessage] | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        """``sqlite:///abs/path.db``, ``sqlite://relative.db`` (``?table=``), or a bare path."""
        path, table = split_sqlite_url(url)
        return cls(path, table=table, url=url, **options)

    # -- measures of group commit ------------------------------------------------------

    @property
    def batches_committed(self) -> int:
        """Write transactions committed since ``open``."""
        return 0 if self._committer is None else self._committer.batches_committed

    @property
    def messages_committed(self) -> int:
        """Messages handed to committed transactions since ``open`` (repeats included)."""
        return 0 if self._committer is None else self._committer.items_committed

    # -- life cycle ----------------------------------------------------------------------

    async def open(self) -> None:
        if self._committer is not None:
            return
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="salas-sqlite-writer")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="salas-sqlite-reader")
        try:
            self._writer = await self._in(self._write_thread, self._connect_writer)
            self._reader = await self._in(self._read_thread, self._connect_reader)
        except sqlite3.Error as exc:
            await self._close_connections()
            raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        self._committer = GroupCommitter(self._commit, max_batch=self._max_batch, name="sqlite")
        self._committer.start()

    async def close(self) -> None:
        committer, self._committer = self._committer, None
        try:
            if committer is not None:
                await committer.close()
        finally:
            await self._close_connections()

    # -- the contract --------------------------------------------------------------------

    async def append(
        self, channel: str, message: str, user: str, client_id: str | None = None
    ) -> StoredMessage:
        draft = check_append(channel, message, user, client_id)
        if self._committer is None:
            raise StoreError("sqlite store is not open")
        return await self._committer.submit(draft)

    async def history(
        self,
        channel: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = HISTORY_LIMIT_DEFAULT,
    ) -> list[StoredMessage]:
        before, after, limit = check_history(channel, before, after, limit)
        params: tuple[object, ...]
        if after is not None and before is not None:
            sql, params, newest_first = self._between, (channel, after, before, limit), False
        elif after is not None:
            sql, params, newest_first = self._after, (channel, after, limit), False
        elif before is not None:
            sql, params, newest_first = self._before, (channel, before, limit), True
        else:
            sql, params, newest_first = self._latest, (channel, limit), True
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        messages = [_message(row) for row in rows]
        if newest_first:
            messages.reverse()
        return messages

    async def health(self) -> dict[str, object]:
        report: dict[str, object] = {"backend": self.backend, "path": os.path.abspath(self.path)}
        if self._committer is None:
            return {**report, "ok": False, "error": "store is not open"}
        try:
            await self._read(lambda conn: conn.execute("SELECT 1").fetchone())
        except (StoreError, sqlite3.Error) as exc:
            return {**report, "ok": False, "error": str(exc)}
        return {
            **report,
            "ok": True,
            "journal_mode": self._journal_mode,
            "batches_committed": self._committer.batches_committed,
            "batches_failed": self._committer.batches_failed,
            "pending": self._committer.pending,
        }

    # -- the threads' side -----------------------------------------------------------------

    def _connect_writer(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; _write_batch says BEGIN itself.
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            self._journal_mode = str(mode)
            # FULL: the WAL is synced at every commit — i.e. once per batch.
            conn.execute("PRAGMA synchronous=FULL")
            # One transaction (inside the script: executescript commits any open one first).
            conn.executescript(f"BEGIN IMMEDIATE; {self._schema} COMMIT;")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _write_batch(self, drafts: Sequence[Draft]) -> list[StoredMessage]:
        conn = self._writer
        assert conn is not None
        stored: list[StoredMessage] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for draft in drafts:
                if draft.client_id is not None:
                    # Inside the transaction, so also catches a repeat earlier in this batch
                    # or committed by another process.
                    row = conn.execute(self._by_client_id, (draft.channel, draft.client_id))
                    first = row.fetchone()
                    if first is not None:
                        stored.append(_message(first))
                        continue
                cursor = conn.execute(
                    self._insert,
                    (draft.channel, draft.message, draft.user, draft.ts, draft.client_id),
                )
                assert cursor.lastrowid is not None
                stored.append(draft.stored(cursor.lastrowid))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return stored

    # -- glue ----------------------------------------------------------------------------

    async def _commit(self, drafts: Sequence[Draft]) -> list[StoredMessage]:
        assert self._write_thread is not None
        try:
            return await self._in(self._write_thread, self._write_batch, drafts)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite write to {self.path!r} failed: {exc}") from exc

    async def _read(self, query: Callable[[sqlite3.Connection], _T]) -> _T:
        reader, thread = self._reader, self._read_thread
        if reader is None or thread is None:
            raise StoreError("sqlite store is not open")
        try:
            return await self._in(thread, query, reader)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite read from {self.path!r} failed: {exc}") from exc

    @staticmethod
    async def _in(thread: ThreadPoolExecutor, fn: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(thread, fn, *args)

    async def _close_connections(self) -> None:
        reader, read_thread = self._reader, self._read_thread
        writer, write_thread = self._writer, self._write_thread
        self._reader = self._writer = None
        self._read_thread = self._write_thread = None
        for conn, thread in ((reader, read_thread), (writer, write_thread)):
            if thread is None:
                continue
            if conn is not None:
                # Closed in its own thread: a connection belongs to the thread that made it.
                await self._in(thread, conn.close)
            thread.shutdown(wait=True)  # idle by now, so this does not block the loop
