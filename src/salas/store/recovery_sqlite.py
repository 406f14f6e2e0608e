"""Connection state recovery in SQLite: the broadcast log and saved sessions in the chat's file.

Same URL as the message store (``sqlite:///abs/path.db``, ``sqlite://relative.db`` or a bare
path, option ``?table=``); beside the messages table ``<table>`` it creates
``<table>_recovery_log`` (one row per broadcast: offset, namespace, rooms, except-rooms as
JSON, the Engine.IO packets as one BLOB, ms timestamp; indexed by namespace and offset) and
``<table>_recovery_sessions`` (one row per disconnected socket, keyed by its private id).

Writes: ``append`` only queues; one writer task writes what is queued in one transaction
(:class:`~salas.store.recovery.LogWriter`). Session saves and takes go through group commit
(:mod:`salas.store.batching`), in the order they were asked, so a server shutting down with
thousands of sockets saves them in a few transactions. All writes run in one thread with
its own connection (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``: the message store's
connection to the same file waits its turn), reads in another.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._sqlite_common import SQLiteFile, check_sqlite_path, sqlite_url
from .base import StoreError, check_identifier
from .batching import DEFAULT_MAX_BATCH, GroupCommitter
from .recovery import (
    LoggedPacket,
    LogRow,
    LogWriter,
    SessionRecord,
    SessionRow,
    log_row_or_warn,
    packet_of,
    record_of,
    session_row,
    storable_key,
)
from .urls import split_sqlite_url

__all__ = ["SQLiteRecoveryStore"]

_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class _Save:
    row: SessionRow


@dataclass(frozen=True, slots=True)
class _Take:
    pid: str


class SQLiteRecoveryStore:
    """A :class:`~salas.store.recovery.RecoveryStore` in a SQLite file."""

    backend = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        table: str = "messages",
        url: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        # The message store's checks of path and table, so both accept the same URLs.
        self.path = check_sqlite_path(path)
        self.url = sqlite_url(path, url)
        self.table = check_identifier("table", table)
        self._max_batch = max_batch
        log, sessions = f'"{table}_recovery_log"', f'"{table}_recovery_sessions"'
        schema = (
            f"CREATE TABLE IF NOT EXISTS {log} ("
            " log_offset INTEGER PRIMARY KEY, nsp TEXT NOT NULL, rooms TEXT NOT NULL,"
            " except_rooms TEXT NOT NULL, packets BLOB NOT NULL, ts INTEGER NOT NULL);"
            f'CREATE INDEX IF NOT EXISTS "{table}_rlog_nsp_offset" ON {log} (nsp, log_offset);'
            f'CREATE INDEX IF NOT EXISTS "{table}_rlog_ts" ON {log} (ts);'
            f"CREATE TABLE IF NOT EXISTS {sessions} ("
            " pid TEXT PRIMARY KEY, sid TEXT NOT NULL, nsp TEXT NOT NULL, rooms TEXT NOT NULL,"
            " data TEXT NOT NULL, base_offset INTEGER NOT NULL,"
            " disconnected_at INTEGER NOT NULL);"
            f'CREATE INDEX IF NOT EXISTS "{table}_rsess_at" ON {sessions} (disconnected_at);'
        )
        # OR IGNORE: an offset logged twice (two processes on one file) keeps its first row
        # instead of failing a whole batch.
        self._insert_log = f"INSERT OR IGNORE INTO {log} VALUES (?,?,?,?,?,?)"
        self._after = (
            f"SELECT log_offset, nsp, rooms, except_rooms, packets, ts FROM {log}"
            " WHERE nsp = ? AND log_offset > ? ORDER BY log_offset LIMIT ?"
        )
        self._max_offset = f"SELECT max(log_offset) FROM {log}"
        self._save = f"INSERT OR REPLACE INTO {sessions} VALUES (?,?,?,?,?,?,?)"
        self._take = (
            f"DELETE FROM {sessions} WHERE pid = ? RETURNING"
            " pid, sid, nsp, rooms, data, base_offset, disconnected_at"
        )
        self._prune_log = (
            f"DELETE FROM {log} WHERE ts < ? AND log_offset < (SELECT max(log_offset) FROM {log})"
        )
        self._prune_sessions = f"DELETE FROM {sessions} WHERE disconnected_at < ?"
        self._file = SQLiteFile(path, schema, name="sqlite recovery", threads="recovery")
        self._log: LogWriter[LogRow] | None = None
        self._sessions: GroupCommitter[_Save | _Take, SessionRow | None] | None = None
        self._highest = 0  # the highest offset appended through this object

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteRecoveryStore:
        """The same URLs as :meth:`SQLiteStore.from_url` (``?table=``), the same file."""
        path, table = split_sqlite_url(url)
        return cls(path, table=table, url=url, **options)

    # -- measures of batching ------------------------------------------------------------

    @property
    def batches_committed(self) -> int:
        """Transactions that wrote appended packets since ``open``."""
        return 0 if self._log is None else self._log.batches_committed

    @property
    def session_batches_committed(self) -> int:
        """Transactions that saved or took sessions since ``open``."""
        return 0 if self._sessions is None else self._sessions.batches_committed

    # -- life cycle ----------------------------------------------------------------------

    async def open(self) -> None:
        if self._log is not None:
            return
        await self._file.open()
        self._log = LogWriter(
            self._write_log, name="sqlite recovery log", max_batch=self._max_batch
        )
        self._log.start()
        self._sessions = GroupCommitter(
            self._commit_sessions, max_batch=self._max_batch, name="sqlite recovery sessions"
        )
        self._sessions.start()

    async def close(self) -> None:
        log, self._log = self._log, None
        sessions, self._sessions = self._sessions, None
        try:
            if log is not None:
                await log.close()
            if sessions is not None:
                await sessions.close()
        finally:
            await self._file.close()

    # -- the contract --------------------------------------------------------------------

    async def last_offset(self) -> int:
        stored = await self._file.read(lambda conn: conn.execute(self._max_offset).fetchone()[0])
        return max(stored or 0, self._highest)

    def append(self, packet: LoggedPacket) -> None:
        log = self._log
        if log is None:
            return  # closed: the sockets it was for are gone too
        row = log_row_or_warn(packet)
        if row is not None and log.append(row):
            self._highest = max(self._highest, packet.offset)

    async def flush(self) -> None:
        if self._log is not None:
            await self._log.flush()

    async def packets_after(self, nsp: str, offset: int, limit: int) -> list[LoggedPacket]:
        if self._log is None:
            raise StoreError("sqlite recovery store is not open")
        if not storable_key(nsp) or limit < 1:
            return []
        await self._log.flush()  # a broadcast just before this call is in the answer
        params = (nsp, max(min(offset, _INT64_MAX), -_INT64_MAX), limit)
        return await self._file.read(
            lambda conn: [packet_of(row) for row in conn.execute(self._after, params)]
        )

    async def save_session(self, record: SessionRecord) -> None:
        await self._session_op(_Save(session_row(record)))

    async def take_session(self, pid: str) -> SessionRecord | None:
        if not storable_key(pid):
            return None
        row = await self._session_op(_Take(pid))
        return None if row is None else record_of(row)

    async def prune(self, before_ms: int) -> None:
        await self.flush()  # packets appended before this call are pruned too
        if self._log is None:
            raise StoreError("sqlite recovery store is not open")

        def prune(conn: sqlite3.Connection) -> None:
            conn.execute(self._prune_log, (before_ms,))
            conn.execute(self._prune_sessions, (before_ms,))

        await self._file.write(prune, failing=f"SQLite prune of {self.path!r} failed")

    # -- the writer thread's side --------------------------------------------------------

    def _apply_sessions(
        self, conn: sqlite3.Connection, ops: Sequence[_Save | _Take]
    ) -> list[SessionRow | None]:
        results: list[SessionRow | None] = []
        for op in ops:
            if isinstance(op, _Save):
                conn.execute(self._save, op.row)
                results.append(None)
            else:
                rows = conn.execute(self._take, (op.pid,)).fetchall()
                results.append(rows[0] if rows else None)
        return results

    async def _write_log(self, rows: list[LogRow]) -> None:
        await self._file.write(lambda conn: conn.executemany(self._insert_log, rows))

    async def _commit_sessions(self, ops: Sequence[_Save | _Take]) -> list[SessionRow | None]:
        return await self._file.write(lambda conn: self._apply_sessions(conn, ops))

    async def _session_op(self, op: _Save | _Take) -> SessionRow | None:
        sessions = self._sessions
        if sessions is None:
            raise StoreError("sqlite recovery store is not open")
        return await sessions.submit(op)
