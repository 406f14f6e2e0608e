"""Connection state recovery in SQLite: the broadcast log and saved sessions in the chat's file.

Same URL as the message store (``sqlite:///abs/path.db``, ``sqlite://relative.db`` or a bare
path, option ``?table=``); beside the messages table ``<table>`` it creates
``<table>_recovery_log`` (one row per broadcast: offset, namespace, rooms, except-rooms as
JSON, the Engine.IO packets as one BLOB, ms timestamp; indexed by namespace and offset) and
``<table>_recovery_sessions`` (one row per disconnected socket, keyed by its private id).

Writes: ``append`` only queues; one writer task writes what is queued in one transaction
(:class:`~salas.recovery.durable.LogWriter`). Session saves and takes go through group commit
(:mod:`salas.db.batching`), in the order they were asked, so a server shutting down with
thousands of sockets saves them in a few transactions. All writes go through the file's
one writer in this process, shared with the message store (WAL, ``synchronous=FULL``,
``BEGIN IMMEDIATE``; :mod:`salas.db.sqlite_writer`): the log's rows join the file's next
transaction — under load, the next batch of messages — or take one of their own at most
:data:`LOG_ROWS_WITHIN` after they were handed over. Reads run in a thread of their own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from salas.db.batching import DEFAULT_COMMIT_INTERVAL, DEFAULT_MAX_BATCH
from salas.db.sqlite import SQLiteFile, param, sqlite_location
from salas.db.urls import split_sqlite_url

from .codec import packet_of
from .durable import (
    SESSION_COLUMNS,
    DurableRecoveryStore,
    RecoverySQL,
    SaveSession,
    SessionOp,
)
from .types import LoggedPacket, LogRow, SessionRow

__all__ = ["LOG_ROWS_WITHIN", "SQLiteRecoveryStore"]

#: Seconds within which logged packets are written: with the file's next transaction, or
#: in one of their own at the latest this long after they were handed to the writer.
LOG_ROWS_WITHIN = DEFAULT_COMMIT_INTERVAL


class SQLiteRecoveryStore(DurableRecoveryStore[SQLiteFile]):
    """A :class:`~salas.recovery.types.RecoveryStore` in a SQLite file.

    Args:
        path: The database file (the message store's, usually), created on ``open`` if
            missing (its directory must exist).
        table: The messages table's name, which the recovery tables are named after
            (default ``"messages"``).
        url: The URL it came from, for reports; default ``sqlite:///<path>``.
        max_batch: The most rows written in one transaction (default 4096).

    Attributes:
        backend: ``"sqlite"``.
        path: As given.
        table: As given.
        url: As given, or derived from ``path``.

    Raises:
        StoreError: ``path`` is empty, ``:memory:`` or a ``file:`` URI, or ``table`` is not
            up to 40 letters, digits and ``_`` (not starting with a digit).
    """

    backend = "sqlite"
    # The file's writer paces the log (LOG_ROWS_WITHIN): its writer task need not too.
    log_interval = 0.0

    def __init__(
        self,
        path: str,
        *,
        table: str = "messages",
        url: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.path, self.table, self.url = sqlite_location(path, table, url)
        log, sessions = f'"{table}_recovery_log"', f'"{table}_recovery_sessions"'
        # INTEGER, not BIGINT: only "INTEGER PRIMARY KEY" makes log_offset the rowid.
        self._sql = RecoverySQL.on(
            log, sessions, table, integer="INTEGER", blob="BLOB", param=param
        )
        # OR IGNORE: an offset logged twice (two processes on one file) keeps its first row
        # instead of failing a whole batch.
        self._insert_log = f"INSERT OR IGNORE INTO {log} VALUES (?,?,?,?,?,?)"
        self._save = f"INSERT OR REPLACE INTO {sessions} VALUES (?,?,?,?,?,?,?)"
        self._take = f"DELETE FROM {sessions} WHERE pid = ? RETURNING {SESSION_COLUMNS}"
        file = SQLiteFile(path, self._sql.ddl, name="sqlite recovery", threads="recovery")
        super().__init__(file, max_batch=max_batch)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteRecoveryStore:
        """The recovery store at a SQLite URL, not yet opened.

        Args:
            url: The same URLs as :meth:`SQLiteStore.from_url` (``?table=``), for the same
                file.
            **options: The constructor's other keyword arguments (``max_batch``).

        Raises:
            StoreError: An unknown URL option, or as the constructor.
        """
        path, table = split_sqlite_url(url)
        return cls(path, table=table, url=url, **options)

    # -- the database's side -------------------------------------------------------------
    #
    # Every write runs in the file's writer thread, inside a transaction it may share with
    # the file's other stores; its statements one per row.

    async def _write_log(self, rows: list[LogRow]) -> None:
        # Nobody waits for the log: its rows join the file's next transaction (the next
        # batch of messages, under load) rather than start one of their own.
        await self._db.write(
            lambda conn: conn.executemany(self._insert_log, rows), within=LOG_ROWS_WITHIN
        )

    async def _commit_sessions(self, ops: Sequence[SessionOp]) -> list[SessionRow | None]:
        return await self._db.write(lambda conn: self._apply_sessions(conn, ops))

    def _apply_sessions(
        self, conn: sqlite3.Connection, ops: Sequence[SessionOp]
    ) -> list[SessionRow | None]:
        results: list[SessionRow | None] = []
        for op in ops:
            if isinstance(op, SaveSession):
                conn.execute(self._save, op.row)
                results.append(None)
            else:
                rows = conn.execute(self._take, (op.pid,)).fetchall()
                results.append(rows[0] if rows else None)
        return results

    async def _max_logged_offset(self) -> int | None:
        stored: int | None = await self._db.read(
            lambda conn: conn.execute(self._sql.max_offset).fetchone()[0]
        )
        return stored

    async def _logged_after(self, nsp: str, offset: int, limit: int) -> list[LoggedPacket]:
        params = (nsp, offset, limit)
        return await self._db.read(
            lambda conn: [packet_of(row) for row in conn.execute(self._sql.after, params)]
        )

    async def _prune(self, before_ms: int) -> None:
        def prune(conn: sqlite3.Connection) -> None:
            conn.execute(self._sql.prune_log, (before_ms,))
            conn.execute(self._sql.prune_sessions, (before_ms,))

        await self._db.write(prune, failing=f"SQLite prune of {self.path!r} failed")
