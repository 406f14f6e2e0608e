"""What the SQLite and PostgreSQL recovery stores share: :class:`DurableRecoveryStore`.

Both queue appended packets for a :class:`~salas.store.recovery.LogWriter`, put session
saves and takes through group commit in the order they were asked, and keep the same two
tables (:class:`RecoverySQL`), in each database's own types. They differ in how a batch is
written (SQLite: one statement per row, all in one thread hop; PostgreSQL: one statement
per batch over ``unnest`` arrays, one round trip) and how rows are read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from .base import INT64_MAX, Connections, StoreError, not_open
from .batching import GroupCommitter
from .recovery import (
    LoggedPacket,
    LogRow,
    LogWriter,
    SessionRecord,
    SessionRow,
    log_row_or_warn,
    record_of,
    session_row,
    storable_key,
)

__all__ = [
    "LOG_COLUMNS",
    "SESSION_COLUMNS",
    "DurableRecoveryStore",
    "RecoverySQL",
    "SaveSession",
    "SessionOp",
    "TakeSession",
]

#: The columns of the log and sessions tables, in :data:`LogRow` and :data:`SessionRow` order.
LOG_COLUMNS = "log_offset, nsp, rooms, except_rooms, packets, ts"
SESSION_COLUMNS = "pid, sid, nsp, rooms, data, base_offset, disconnected_at"

DbT = TypeVar("DbT", bound=Connections)


@dataclass(frozen=True, slots=True)
class SaveSession:
    row: SessionRow


@dataclass(frozen=True, slots=True)
class TakeSession:
    pid: str


SessionOp = SaveSession | TakeSession


@dataclass(frozen=True, slots=True)
class RecoverySQL:
    """The recovery tables, and the statements that read and prune them."""

    ddl: str
    after: str
    max_offset: str
    prune_log: str
    prune_sessions: str

    @classmethod
    def on(
        cls,
        log: str,
        sessions: str,
        table: str,
        *,
        integer: str,
        blob: str,
        param: Callable[[int], str],
    ) -> RecoverySQL:
        """The statements on tables ``log`` and ``sessions`` (indexes named after ``table``).

        Only the types and placeholders are the database's: ``integer`` its 64-bit integer
        type, ``blob`` its byte-string type, ``param(n)`` its placeholder for the n-th
        parameter.
        """
        return cls(
            ddl=(
                f"CREATE TABLE IF NOT EXISTS {log} ("
                f" log_offset {integer} PRIMARY KEY, nsp TEXT NOT NULL, rooms TEXT NOT NULL,"
                f" except_rooms TEXT NOT NULL, packets {blob} NOT NULL, ts {integer} NOT NULL);"
                f'CREATE INDEX IF NOT EXISTS "{table}_rlog_nsp_offset" ON {log} (nsp, log_offset);'
                f'CREATE INDEX IF NOT EXISTS "{table}_rlog_ts" ON {log} (ts);'
                f"CREATE TABLE IF NOT EXISTS {sessions} ("
                " pid TEXT PRIMARY KEY, sid TEXT NOT NULL, nsp TEXT NOT NULL, rooms TEXT NOT NULL,"
                f" data TEXT NOT NULL, base_offset {integer} NOT NULL,"
                f" disconnected_at {integer} NOT NULL);"
                f'CREATE INDEX IF NOT EXISTS "{table}_rsess_at" ON {sessions} (disconnected_at);'
            ),
            after=(
                f"SELECT {LOG_COLUMNS} FROM {log}"
                f" WHERE nsp = {param(1)} AND log_offset > {param(2)}"
                f" ORDER BY log_offset LIMIT {param(3)}"
            ),
            max_offset=f"SELECT max(log_offset) FROM {log}",
            # The newest packet stays whatever its age: it is what `last_offset` reports.
            prune_log=(
                f"DELETE FROM {log} WHERE ts < {param(1)}"
                f" AND log_offset < (SELECT max(log_offset) FROM {log})"
            ),
            prune_sessions=f"DELETE FROM {sessions} WHERE disconnected_at < {param(1)}",
        )


class DurableRecoveryStore(ABC, Generic[DbT]):
    """A :class:`~salas.store.recovery.RecoveryStore` in a database reached through ``db``
    (opened and closed with the store)."""

    backend: ClassVar[str]
    url: str

    def __init__(self, db: DbT, *, max_batch: int) -> None:
        self._db = db
        self._max_batch = max_batch
        self._log: LogWriter[LogRow] | None = None
        self._sessions: GroupCommitter[SessionOp, SessionRow | None] | None = None
        self._highest = 0  # the highest offset appended through this object

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
        await self._db.open()
        name = f"{self.backend} recovery"
        self._log = LogWriter(self._write_log, name=f"{name} log", max_batch=self._max_batch)
        self._log.start()
        self._sessions = GroupCommitter(
            self._commit_sessions, max_batch=self._max_batch, name=f"{name} sessions"
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
            await self._db.close()

    # -- the contract --------------------------------------------------------------------

    async def last_offset(self) -> int:
        stored = await self._max_logged_offset()
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
            raise self._not_open()
        if not storable_key(nsp) or limit < 1:
            return []
        await self._log.flush()  # a broadcast just before this call is in the answer
        return await self._logged_after(nsp, max(min(offset, INT64_MAX), -INT64_MAX), limit)

    async def save_session(self, record: SessionRecord) -> None:
        await self._session_op(SaveSession(session_row(record)))

    async def take_session(self, pid: str) -> SessionRecord | None:
        if not storable_key(pid):
            return None
        row = await self._session_op(TakeSession(pid))
        return None if row is None else record_of(row)

    async def prune(self, before_ms: int) -> None:
        if self._log is None:
            raise self._not_open()
        await self._log.flush()  # packets appended before this call are pruned too
        await self._prune(before_ms)

    async def _session_op(self, op: SessionOp) -> SessionRow | None:
        sessions = self._sessions
        if sessions is None:
            raise self._not_open()
        return await sessions.submit(op)

    def _not_open(self) -> StoreError:
        return not_open(f"{self.backend} recovery")

    # -- what each database does its own way -------------------------------------------

    @abstractmethod
    async def _write_log(self, rows: list[LogRow]) -> None:
        """Write ``rows`` in one transaction (the LogWriter's ``write``)."""

    @abstractmethod
    async def _commit_sessions(self, ops: Sequence[SessionOp]) -> list[SessionRow | None]:
        """Apply ``ops`` in order in one transaction: None for a save, the row (or None)
        for a take (the GroupCommitter's ``commit``)."""

    @abstractmethod
    async def _max_logged_offset(self) -> int | None:
        """The highest offset in the log table (None when it is empty)."""

    @abstractmethod
    async def _logged_after(self, nsp: str, offset: int, limit: int) -> list[LoggedPacket]:
        """Up to ``limit`` logged packets of ``nsp`` after ``offset``, oldest first."""

    @abstractmethod
    async def _prune(self, before_ms: int) -> None:
        """Delete, in one transaction, packets (but the newest) and sessions older than
        ``before_ms``."""
