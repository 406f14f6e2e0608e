"""Connection state recovery in PostgreSQL: the broadcast log and saved sessions, via asyncpg.

Same URL as the message store (``postgresql://...`` or ``postgres://...``, options
``?schema=`` and ``?table=``, every other query parameter asyncpg's); beside the messages
table ``<schema>.<table>`` it creates ``<table>_recovery_log`` (one row per broadcast:
offset, namespace, rooms and except-rooms as JSON text, the Engine.IO packets as one BYTEA,
ms timestamp; indexed by namespace and offset) and ``<table>_recovery_sessions`` (one row
per disconnected socket, keyed by its private id).

Writes: ``append`` only queues; one writer task writes what is queued with one ``INSERT
... SELECT FROM unnest(...)`` (:class:`~salas.store.recovery.LogWriter`). Session saves and
takes go through group commit (:mod:`salas.store.batching`): one transaction per batch,
applied in the order they were asked (runs of saves as one statement, runs of takes as one
``DELETE ... RETURNING``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._pg_common import PostgresPool, advisory_lock_key, create_schema
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
from .urls import split_postgres_url

__all__ = ["PostgresRecoveryStore"]

_INT64_MAX = 2**63 - 1
_SESSION_COLUMNS = "pid, sid, nsp, rooms, data, base_offset, disconnected_at"


@dataclass(frozen=True, slots=True)
class _Save:
    row: SessionRow


@dataclass(frozen=True, slots=True)
class _Take:
    pid: str


class PostgresRecoveryStore:
    """A :class:`~salas.store.recovery.RecoveryStore` in two PostgreSQL tables."""

    backend = "postgresql"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        table: str = "messages",
        url: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pool: int = 4,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        # The message store's checks of schema and table, so both accept the same URLs.
        self.schema = check_identifier("schema", schema)
        self.table = check_identifier("table", table)
        self.url = url if url is not None else dsn
        self.dsn = dsn
        self._max_batch = max_batch
        self._lock_key = advisory_lock_key("salas.recovery", schema, table)
        log = f'"{schema}"."{table}_recovery_log"'
        sessions = f'"{schema}"."{table}_recovery_sessions"'
        self._log_table = log
        self._ddl = (
            f"CREATE TABLE IF NOT EXISTS {log} ("
            " log_offset BIGINT PRIMARY KEY, nsp TEXT NOT NULL, rooms TEXT NOT NULL,"
            " except_rooms TEXT NOT NULL, packets BYTEA NOT NULL, ts BIGINT NOT NULL);"
            f'CREATE INDEX IF NOT EXISTS "{table}_rlog_nsp_offset" ON {log} (nsp, log_offset);'
            f'CREATE INDEX IF NOT EXISTS "{table}_rlog_ts" ON {log} (ts);'
            f"CREATE TABLE IF NOT EXISTS {sessions} ("
            " pid TEXT PRIMARY KEY, sid TEXT NOT NULL, nsp TEXT NOT NULL, rooms TEXT NOT NULL,"
            " data TEXT NOT NULL, base_offset BIGINT NOT NULL,"
            " disconnected_at BIGINT NOT NULL);"
            f'CREATE INDEX IF NOT EXISTS "{table}_rsess_at" ON {sessions} (disconnected_at);'
        )
        # DO NOTHING: an offset logged twice (two processes on one table) keeps its first
        # row instead of failing a whole batch.
        self._insert_log = (
            f"INSERT INTO {log} (log_offset, nsp, rooms, except_rooms, packets, ts)"
            " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"
            " $5::bytea[], $6::bigint[]) ON CONFLICT (log_offset) DO NOTHING"
        )
        self._after = (
            f"SELECT log_offset, nsp, rooms, except_rooms, packets, ts FROM {log}"
            " WHERE nsp = $1 AND log_offset > $2 ORDER BY log_offset LIMIT $3"
        )
        self._max_offset = f"SELECT max(log_offset) FROM {log}"
        self._save = (
            f"INSERT INTO {sessions} ({_SESSION_COLUMNS}) SELECT * FROM unnest($1::text[],"
            " $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])"
            " ON CONFLICT (pid) DO UPDATE SET sid = EXCLUDED.sid, nsp = EXCLUDED.nsp,"
            " rooms = EXCLUDED.rooms, data = EXCLUDED.data,"
            " base_offset = EXCLUDED.base_offset, disconnected_at = EXCLUDED.disconnected_at"
        )
        self._take = (
            f"DELETE FROM {sessions} WHERE pid = ANY($1::text[]) RETURNING {_SESSION_COLUMNS}"
        )
        self._prune_log = (
            f"DELETE FROM {log} WHERE ts < $1 AND log_offset < (SELECT max(log_offset) FROM {log})"
        )
        self._prune_sessions = f"DELETE FROM {sessions} WHERE disconnected_at < $1"
        self._db = PostgresPool(
            dsn,
            setup=self._create_schema,
            table=log,
            name="postgresql recovery",
            min_size=1,
            max_size=max_pool,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        self._log: LogWriter[LogRow] | None = None
        self._sessions: GroupCommitter[_Save | _Take, SessionRow | None] | None = None
        self._highest = 0  # the highest offset appended through this object

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresRecoveryStore:
        """The same URLs as :meth:`PostgresStore.from_url` (``?schema=``, ``?table=``)."""
        dsn, schema, table = split_postgres_url(url)
        return cls(dsn, schema=schema, table=table, url=url, **options)

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
        self._log = LogWriter(
            self._write_log, name="postgresql recovery log", max_batch=self._max_batch
        )
        self._log.start()
        self._sessions = GroupCommitter(
            self._commit_sessions, max_batch=self._max_batch, name="postgresql recovery sessions"
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
        stored = await self._db.fetchval(self._max_offset)
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
            raise StoreError("postgresql recovery store is not open")
        if not storable_key(nsp) or limit < 1:
            return []
        await self._log.flush()  # a broadcast just before this call is in the answer
        offset = max(min(offset, _INT64_MAX), -_INT64_MAX)
        rows = await self._db.fetch(self._after, nsp, offset, limit)
        return [packet_of(row) for row in rows]

    async def save_session(self, record: SessionRecord) -> None:
        await self._session_op(_Save(session_row(record)))

    async def take_session(self, pid: str) -> SessionRecord | None:
        if not storable_key(pid):
            return None
        row = await self._session_op(_Take(pid))
        return None if row is None else record_of(row)

    async def prune(self, before_ms: int) -> None:
        if self._log is None:
            raise StoreError("postgresql recovery store is not open")
        await self._log.flush()  # packets appended before this call are pruned too
        async with self._db.transaction(f"PostgreSQL prune of {self._log_table} failed") as conn:
            await conn.execute(self._prune_log, before_ms)
            await conn.execute(self._prune_sessions, before_ms)

    # -- database side -------------------------------------------------------------------

    async def _create_schema(self, conn: Any) -> None:
        await create_schema(conn, schema=self.schema, ddl=self._ddl, lock_key=self._lock_key)

    async def _write_log(self, rows: list[LogRow]) -> None:
        await self._db.execute(self._insert_log, *zip(*rows, strict=True))

    async def _commit_sessions(self, ops: Sequence[_Save | _Take]) -> list[SessionRow | None]:
        async with self._db.transaction("PostgreSQL write of recovery sessions failed") as conn:
            return await self._apply_sessions(conn, ops)

    async def _apply_sessions(
        self, conn: Any, ops: Sequence[_Save | _Take]
    ) -> list[SessionRow | None]:
        results: list[SessionRow | None] = [None] * len(ops)
        start = 0
        while start < len(ops):
            kind = type(ops[start])
            end = start
            while end < len(ops) and type(ops[end]) is kind:
                end += 1
            run = ops[start:end]
            if kind is _Save:
                # One row per pid (the last save wins), as saving one after another would.
                rows = {op.row[0]: op.row for op in run if isinstance(op, _Save)}
                await conn.execute(self._save, *zip(*rows.values(), strict=True))
            else:
                pids = [op.pid for op in run if isinstance(op, _Take)]
                taken = {row["pid"]: tuple(row) for row in await conn.fetch(self._take, pids)}
                for i, pid in enumerate(pids, start):
                    results[i] = taken.pop(pid, None)  # a pid taken twice: the first gets it
            start = end
        return results

    async def _session_op(self, op: _Save | _Take) -> SessionRow | None:
        sessions = self._sessions
        if sessions is None:
            raise StoreError("postgresql recovery store is not open")
        return await sessions.submit(op)
