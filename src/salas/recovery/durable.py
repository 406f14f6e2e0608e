"""What the SQLite and PostgreSQL recovery stores share: :class:`DurableRecoveryStore`,
and the :class:`LogWriter` that writes the broadcast log in batches.

Both queue appended packets for a :class:`LogWriter`, put session
saves and takes through group commit in the order they were asked, and keep the same two
tables (:class:`RecoverySQL`), in each database's own types. They differ in how a batch is
written (SQLite: one statement per row, all in one thread hop; PostgreSQL: one statement
per batch over ``unnest`` arrays, one round trip) and how rows are read.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from salas.db.batching import (
    DEFAULT_COMMIT_INTERVAL,
    DEFAULT_MAX_BATCH,
    BatchWriter,
    GroupCommitter,
)
from salas.db.common import INT64_MAX, Connections
from salas.db.errors import StoreError, not_open

from .codec import log_row_or_warn, record_of, session_row, storable_key
from .types import LoggedPacket, LogRow, SessionRecord, SessionRow

__all__ = [
    "LOG_COLUMNS",
    "SESSION_COLUMNS",
    "DurableRecoveryStore",
    "LogWriter",
    "RecoverySQL",
    "SaveSession",
    "SessionOp",
    "TakeSession",
]

logger = logging.getLogger("salas.recovery")

#: The columns of the log and sessions tables, in :data:`LogRow` and :data:`SessionRow` order.
LOG_COLUMNS = "log_offset, nsp, rooms, except_rooms, packets, ts"
SESSION_COLUMNS = "pid, sid, nsp, rooms, data, base_offset, disconnected_at"

DbT = TypeVar("DbT", bound=Connections)


RowT = TypeVar("RowT")


class LogWriter(BatchWriter[RowT]):
    """Rows queued synchronously by `append`, written by one task, one transaction per batch.

    `write(rows)` must write all rows in one transaction, or raise having written none. A
    batch that fails is tried again (three attempts in all), then dropped with an error in
    the log: the recovery log is best effort, and a database that is down must not make the
    queue grow without bound either (beyond `max_pending` rows the oldest are dropped).
    """

    RETRY_DELAYS = (0.1, 1.0)

    def __init__(
        self,
        write: Callable[[list[RowT]], Awaitable[None]],
        *,
        name: str,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = 100_000,
        interval: float = DEFAULT_COMMIT_INTERVAL,
    ) -> None:
        super().__init__(name=name, role="log-writer", interval=interval)
        self._write = write
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._appended = 0  # rows ever queued
        self._finished = 0  # rows written, or given up on
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._overflowing = False
        #: Transactions committed, rows they wrote, and rows dropped (failed or overflowed).
        self.batches_committed = 0
        self.rows_committed = 0
        self.rows_dropped = 0

    @property
    def pending(self) -> int:
        """Rows queued and not yet written."""
        return self._appended - self._finished

    def append(self, row: RowT) -> bool:
        """Queue `row` (never blocks); False when the writer is closed and drops it."""
        if not self.running:
            return False
        queue = self._queue
        if len(queue) >= self._max_pending:
            queue.popleft()
            self._finished += 1
            self.rows_dropped += 1
            if not self._overflowing:
                self._overflowing = True
                logger.error(
                    "%s: %d rows wait to be written; dropping the oldest", self._name, len(queue)
                )
        queue.append(row)
        self._appended += 1
        if len(queue) == 1:
            self._wakeup.set()
        return True

    async def flush(self) -> None:
        """Return once every row queued before this call is written (or given up on)."""
        target = self._appended
        if self._finished >= target or self._task is None:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        await waiter

    async def _write_next(self) -> None:
        count = min(len(self._queue), self._max_batch)
        batch = [self._queue.popleft() for _ in range(count)]
        await self._write_batch(batch)
        self._finished += count
        if not self._queue:
            self._overflowing = False
        self._release()

    def _stopped(self) -> None:
        # Reached with waiters only if the task was cancelled (the loop is going away).
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(StoreError(f"{self._name}: closed before writing"))
        self._waiters.clear()

    async def _write_batch(self, batch: list[RowT]) -> None:
        for attempt, delay in enumerate((*self.RETRY_DELAYS, None)):
            try:
                await self._write(batch)
            except Exception as exc:
                if delay is None:
                    self.rows_dropped += len(batch)
                    logger.error(
                        "%s: dropped %d rows after %d failed writes: %s",
                        self._name,
                        len(batch),
                        attempt + 1,
                        exc,
                    )
                    return
                logger.warning(
                    "%s: writing %d rows failed (%s); retrying", self._name, len(batch), exc
                )
                await asyncio.sleep(delay)
            else:
                self.batches_committed += 1
                self.rows_committed += len(batch)
                return

    def _release(self) -> None:
        done = self._finished
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, waiter in self._waiters:
            if target <= done:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._waiters = still


@dataclass(frozen=True, slots=True)
class SaveSession:
    """A session save queued for group commit."""

    row: SessionRow


@dataclass(frozen=True, slots=True)
class TakeSession:
    """A session take queued for group commit."""

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
    """A :class:`~salas.recovery.types.RecoveryStore` in a database.

    Subclasses write and read rows their database's way (``_write_log``,
    ``_commit_sessions``, ``_max_logged_offset``, ``_logged_after``, ``_prune``).

    Args:
        db: The connections, opened and closed with the store.
        max_batch: The most packets, or session operations, written in one transaction.

    Attributes:
        backend: The backend's name, as errors give it.
        url: The URL the store was made from.
        shared: True: every process opening the same database shares what it holds (with
            a cluster adapter, each process logs only its own broadcasts, and sessions of
            live sockets are written through; see :mod:`salas.recovery.policy`).
    """

    backend: ClassVar[str]
    shared: ClassVar[bool] = True
    #: Seconds between the starts of two log batches while packets keep coming (the
    #: LogWriter's pacing); 0 where the database's own writer paces them.
    log_interval: ClassVar[float] = DEFAULT_COMMIT_INTERVAL
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
        """Connect, create the tables if needed, start the writers (idempotent).

        Raises:
            StoreError: The database cannot be opened or reached, or its tables created.
        """
        if self._log is not None:
            return
        await self._db.open()
        name = f"{self.backend} recovery"
        self._log = LogWriter(
            self._write_log,
            name=f"{name} log",
            max_batch=self._max_batch,
            interval=self.log_interval,
        )
        self._log.start()
        self._sessions = GroupCommitter(
            self._commit_sessions, max_batch=self._max_batch, name=f"{name} sessions"
        )
        self._sessions.start()

    async def close(self) -> None:
        """Write what is queued (packets and session operations), then disconnect."""
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
        """The highest offset in the table or appended through this store, 0 when none.

        Raises:
            StoreError: The store is not open, or the read failed.
        """
        stored = await self._max_logged_offset()
        return max(stored or 0, self._highest)

    def append(self, packet: LoggedPacket) -> None:
        """Queue ``packet`` for the log writer; never waits, never raises.

        Dropped while the store is closed, and, with a warning, when it cannot be stored
        (e.g. a namespace with a NUL character). A batch that fails three times is
        dropped, as are the oldest queued packets beyond 100,000: the log is best effort.
        """
        log = self._log
        if log is None:
            return  # closed: the sockets it was for are gone too
        row = log_row_or_warn(packet)
        if row is not None and log.append(row):
            self._highest = max(self._highest, packet.offset)

    async def flush(self) -> None:
        """Return once every packet appended before the call is written or given up on."""
        if self._log is not None:
            await self._log.flush()

    async def packets_after(self, nsp: str, offset: int, limit: int) -> list[LoggedPacket]:
        """Up to ``limit`` logged packets of ``nsp`` after ``offset``, oldest first.

        Waits for the packets appended before the call to be written first.

        Raises:
            StoreError: The store is not open, or the read failed.
        """
        if self._log is None:
            raise self._not_open()
        if not storable_key(nsp) or limit < 1:
            return []
        await self._log.flush()  # a broadcast just before this call is in the answer
        return await self._logged_after(nsp, max(min(offset, INT64_MAX), -INT64_MAX), limit)

    async def save_session(self, record: SessionRecord) -> None:
        """Save ``record`` (group-committed), replacing any earlier save under its pid.

        Raises:
            StoreError: The store is not open, or its batch failed.
        """
        await self._session_op(SaveSession(session_row(record)))

    async def take_session(self, pid: str) -> SessionRecord | None:
        """Delete and return the session saved under ``pid`` (group-committed), or None.

        Raises:
            StoreError: The store is not open, or its batch failed.
        """
        if not storable_key(pid):
            return None
        row = await self._session_op(TakeSession(pid))
        return None if row is None else record_of(row)

    async def prune(self, before_ms: int) -> None:
        """Delete packets (but the newest) and sessions older than ``before_ms`` (ms).

        Waits for the packets appended before the call to be written first.

        Raises:
            StoreError: The store is not open, or the delete failed.
        """
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
