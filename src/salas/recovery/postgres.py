"""Connection state recovery in PostgreSQL: the broadcast log and saved sessions, via asyncpg.

Same URL as the message store (``postgresql://...`` or ``postgres://...``, options
``?schema=`` and ``?table=``, every other query parameter asyncpg's); beside the messages
table ``<schema>.<table>`` it creates ``<table>_recovery_log`` (one row per broadcast:
offset, namespace, rooms and except-rooms as JSON text, the Engine.IO packets as one BYTEA,
ms timestamp; indexed by namespace and offset) and ``<table>_recovery_sessions`` (one row
per disconnected socket, keyed by its private id).

Writes: ``append`` only queues; one writer task writes what is queued with one ``INSERT
... SELECT FROM unnest(...)`` (:class:`~salas.recovery.durable.LogWriter`). Session saves and
takes go through group commit (:mod:`salas.db.batching`): one transaction per batch,
applied in the order they were asked (runs of saves as one statement, runs of takes as one
``DELETE ... RETURNING``).

asyncpg is the ``postgres`` extra, imported when such a store is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from salas.db.batching import DEFAULT_MAX_BATCH
from salas.db.postgres import (
    PostgresPool,
    create_schema,
    param,
    postgres_location,
)
from salas.db.urls import split_postgres_url

from .codec import packet_of
from .durable import (
    LOG_COLUMNS,
    SESSION_COLUMNS,
    DurableRecoveryStore,
    RecoverySQL,
    SaveSession,
    SessionOp,
    TakeSession,
)
from .types import LoggedPacket, LogRow, SessionRow

__all__ = ["PostgresRecoveryStore"]


class PostgresRecoveryStore(DurableRecoveryStore[PostgresPool]):
    """A :class:`~salas.recovery.types.RecoveryStore` in two PostgreSQL tables.

    Args:
        dsn: asyncpg's connection string (``postgresql://user:pw@host:5432/db``).
        schema: The schema holding the tables (default ``"public"``; created if missing).
        table: The messages table's name, which the recovery tables are named after
            (default ``"messages"``).
        url: The URL it came from, for reports; default ``dsn``.
        max_batch: The most rows written in one transaction (default 4096).
        max_pool: Connections the pool opens at most (default 4; it keeps 1 open).
        connect_timeout: Seconds to wait for a connection (default 5.0).
        command_timeout: Seconds a statement may run (default 30.0).

    Attributes:
        backend: ``"postgresql"``.
        dsn: As given.
        schema: As given.
        table: As given.
        url: As given, or ``dsn``.

    Raises:
        StoreError: asyncpg is not installed (the message names the ``postgres`` extra),
            or ``schema`` or ``table`` is not up to 40 letters, digits and ``_``.
    """

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
        self.schema, self.table, self.url = postgres_location(dsn, schema, table, url)
        self.dsn = dsn
        log = f'"{schema}"."{table}_recovery_log"'
        sessions = f'"{schema}"."{table}_recovery_sessions"'
        self._log_table = log
        self._sql = RecoverySQL.on(
            log, sessions, table, integer="BIGINT", blob="BYTEA", param=param
        )
        # DO NOTHING: an offset logged twice (two processes on one table) keeps its first
        # row instead of failing a whole batch.
        self._insert_log = (
            f"INSERT INTO {log} ({LOG_COLUMNS})"
            " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"
            " $5::bytea[], $6::bigint[]) ON CONFLICT (log_offset) DO NOTHING"
        )
        self._save = (
            f"INSERT INTO {sessions} ({SESSION_COLUMNS}) SELECT * FROM unnest($1::text[],"
            " $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])"
            " ON CONFLICT (pid) DO UPDATE SET sid = EXCLUDED.sid, nsp = EXCLUDED.nsp,"
            " rooms = EXCLUDED.rooms, data = EXCLUDED.data,"
            " base_offset = EXCLUDED.base_offset, disconnected_at = EXCLUDED.disconnected_at"
        )
        self._take = (
            f"DELETE FROM {sessions} WHERE pid = ANY($1::text[]) RETURNING {SESSION_COLUMNS}"
        )
        pool = PostgresPool(
            dsn,
            setup=self._create_schema,
            table=log,
            name="postgresql recovery",
            min_size=1,
            max_size=max_pool,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        super().__init__(pool, max_batch=max_batch)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresRecoveryStore:
        """The recovery store at a PostgreSQL URL, not yet opened.

        Args:
            url: The same URLs as :meth:`PostgresStore.from_url` (``?schema=``,
                ``?table=``; other query parameters go to asyncpg).
            **options: The constructor's other keyword arguments.

        Raises:
            StoreError: As the constructor.
        """
        dsn, schema, table = split_postgres_url(url)
        return cls(dsn, schema=schema, table=table, url=url, **options)

    # -- the database's side -------------------------------------------------------------
    #
    # Every write is one statement per batch (or per run of saves or takes) over arrays.

    async def _create_schema(self, conn: Any) -> None:
        await create_schema(conn, schema=self.schema, ddl=self._sql.ddl)

    async def _write_log(self, rows: list[LogRow]) -> None:
        await self._db.execute(self._insert_log, *zip(*rows, strict=True))

    async def _commit_sessions(self, ops: Sequence[SessionOp]) -> list[SessionRow | None]:
        async with self._db.transaction("PostgreSQL write of recovery sessions failed") as conn:
            return await self._apply_sessions(conn, ops)

    async def _apply_sessions(self, conn: Any, ops: Sequence[SessionOp]) -> list[SessionRow | None]:
        results: list[SessionRow | None] = [None] * len(ops)
        start = 0
        while start < len(ops):
            kind = type(ops[start])
            end = start
            while end < len(ops) and type(ops[end]) is kind:
                end += 1
            run = ops[start:end]
            if kind is SaveSession:
                # One row per pid (the last save wins), as saving one after another would.
                rows = {op.row[0]: op.row for op in run if isinstance(op, SaveSession)}
                await conn.execute(self._save, *zip(*rows.values(), strict=True))
            else:
                pids = [op.pid for op in run if isinstance(op, TakeSession)]
                taken = {row["pid"]: tuple(row) for row in await conn.fetch(self._take, pids)}
                for i, pid in enumerate(pids, start):
                    results[i] = taken.pop(pid, None)  # a pid taken twice: the first gets it
            start = end
        return results

    async def _max_logged_offset(self) -> int | None:
        stored: int | None = await self._db.fetchval(self._sql.max_offset)
        return stored

    async def _logged_after(self, nsp: str, offset: int, limit: int) -> list[LoggedPacket]:
        return [packet_of(row) for row in await self._db.fetch(self._sql.after, nsp, offset, limit)]

    async def _prune(self, before_ms: int) -> None:
        async with self._db.transaction(f"PostgreSQL prune of {self._log_table} failed") as conn:
            await conn.execute(self._sql.prune_log, before_ms)
            await conn.execute(self._sql.prune_sessions, before_ms)
