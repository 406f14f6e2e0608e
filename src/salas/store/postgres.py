"""``postgresql://user:pw@host:5432/db`` (or ``postgres://``): history in PostgreSQL, via asyncpg.

The schema and table are created on first start. Options (URL query; every other query
parameter is asyncpg's, e.g. ``sslmode``):

- ``schema`` — the schema holding the table (default ``public``; created if missing),
- ``table`` — the table's name (default ``messages``).

Both accept letters, digits and ``_`` (up to 40). Several salas deployments, or test
runs, can share one database with distinct schemas or tables.

Writes go through group commit (:mod:`salas.db.batching`): one transaction per batch.
Every batch first takes a transaction-level advisory lock keyed by the table, then draws
its ids from the sequence, so when several salas processes write to one table their
batches commit one after another in id order: ids are strictly increasing in commit
order (a reader paging with ``after=`` never skips a late-committing smaller id), and
the ``(channel, client_id)`` check cannot race. The lock is held for one short
transaction per batch, not per message.

If the connection drops while a batch commits, its outcome is unknown: its callers get
:class:`~salas.db.errors.StoreError`, and a retry with the same ``client_id`` is
answered with the stored message if it did commit.

Deletion (``delete``): the row's text is overwritten with ``""`` in its own transaction;
no query returns it afterwards. PostgreSQL keeps the old row version in the table's
pages (and its WAL) until VACUUM reclaims the space, which autovacuum does in time;
it has no "secure delete" that zeroes it at once.

A table made by an older salas gets the new columns (``user_id``, ``deleted_at``,
``deleted_by``) with ``ALTER TABLE ... ADD COLUMN`` on ``open``.

Bans (:class:`PostgresBanStore`): the table ``<table>_bans`` in the same schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from salas.db.batching import DEFAULT_COMMIT_INTERVAL, DEFAULT_MAX_BATCH
from salas.db.errors import StoreError
from salas.db.postgres import (
    PostgresPool,
    advisory_lock_key,
    create_schema,
    db_errors,
    param,
    postgres_location,
)
from salas.db.urls import split_postgres_url

from ._batched_store import (
    ADDED_COLUMNS,
    BatchedMessageStore,
    HistoryQueries,
    messages_ddl,
)
from .bans import Ban, BanQueries, check_ban, check_now, check_target
from .base import Draft, StoredMessage

__all__ = ["PostgresBanStore", "PostgresStore"]


def _message(row: Any) -> StoredMessage:
    return StoredMessage(
        row["id"],
        row["channel"],
        row["message"],
        row["author"],
        row["ts"],
        row["client_id"],
        row["user_id"],
        row["deleted_at"],
        row["deleted_by"],
    )


class PostgresStore(BatchedMessageStore[PostgresPool]):
    """A :class:`~salas.store.base.MessageStore` in one PostgreSQL table.

    Args:
        dsn: asyncpg's connection string (``postgresql://user:pw@host:5432/db``).
        schema: The schema holding the table (default ``"public"``; created if missing).
        table: The table's name (default ``"messages"``).
        url: The URL it came from, for reports; default ``dsn``.
        max_batch: The most messages written in one transaction (default 4096).
        commit_interval: Seconds between the starts of two transactions while messages
            keep coming (default 0.003; see :mod:`salas.db.batching`, "Pacing"). 0 for a
            caller that appends one message at a time and waits for each (the chat of a
            cluster holds a room's lock across the append): pacing would only delay it.
        min_pool: Connections the pool keeps open (default 1).
        max_pool: Connections the pool opens at most (default 10).
        connect_timeout: Seconds to wait for a connection, and for ``health``'s probe
            (default 5.0).
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
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
        min_pool: int = 1,
        max_pool: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        self.schema, self.table, self.url = postgres_location(dsn, schema, table, url)
        self.dsn = dsn
        self._connect_timeout = connect_timeout
        # Same key in every process writing this table: it is what serialises their batches.
        self._lock_key = advisory_lock_key("salas.store", schema, table)
        self._qualified = t = f'"{schema}"."{table}"'
        self._ddl = messages_ddl(
            table,
            t,
            id_column="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            integer="BIGINT",
        )
        self._existing = (
            "SELECT m.id, m.channel, m.message, m.author, m.ts, m.client_id,"
            " m.user_id, m.deleted_at, m.deleted_by"
            " FROM unnest($1::text[], $2::text[]) AS k(channel, client_id)"
            f" JOIN {t} AS m ON m.channel = k.channel AND m.client_id = k.client_id"
            " WHERE m.client_id IS NOT NULL"  # lets the planner use the partial unique index
        )
        self._insert = (
            f"INSERT INTO {t} (id, channel, message, author, ts, client_id, user_id)"
            " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"
            " $5::bigint[], $6::text[], $7::text[])"
        )
        self._sequence = ""
        pool = PostgresPool(
            dsn,
            setup=self._create_schema,
            table=t,
            name="postgresql",
            min_size=min_pool,
            max_size=max_pool,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        super().__init__(
            pool, HistoryQueries.on(t, param), max_batch=max_batch, commit_interval=commit_interval
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        """The store at a PostgreSQL URL, not yet opened.

        salas' own query options (``schema``, ``table``) are taken out of the URL; every
        other one stays in the DSN for asyncpg.

        Args:
            url: ``postgresql://...`` or ``postgres://...``.
            **options: The constructor's other keyword arguments.

        Raises:
            StoreError: As the constructor.
        """
        dsn, schema, table = split_postgres_url(url)
        return cls(dsn, schema=schema, table=table, url=url, **options)

    # -- the database's side -------------------------------------------------------------

    async def _create_schema(self, conn: Any) -> None:
        await create_schema(conn, schema=self.schema, ddl=self._ddl)
        # Still holding create_schema's lock: processes opening an old table at once add
        # each column once.
        have = {
            row["column_name"]
            for row in await conn.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = $1 AND table_name = $2",
                self.schema,
                self.table,
            )
        }
        for name, kind in ADDED_COLUMNS:
            if name not in have:
                sql_type = "TEXT" if kind == "text" else "BIGINT"
                await conn.execute(f"ALTER TABLE {self._qualified} ADD COLUMN {name} {sql_type}")
        self._sequence = await conn.fetchval(
            "SELECT pg_get_serial_sequence($1, 'id')", self._qualified
        )

    async def _commit(self, drafts: Sequence[Draft]) -> list[StoredMessage]:
        async with self._db.transaction() as conn:
            return await self._write_batch(conn, drafts)

    async def _write_batch(self, conn: Any, drafts: Sequence[Draft]) -> list[StoredMessage]:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key)
        results: list[StoredMessage | None] = [None] * len(drafts)
        # A (channel, client_id) repeated within the batch is stored once, by its first
        # occurrence; the repeats resolve to the same message.
        first_of: dict[tuple[str, str], int] = {}
        repeats: list[tuple[int, int]] = []
        for i, draft in enumerate(drafts):
            if draft.client_id is not None:
                first = first_of.setdefault((draft.channel, draft.client_id), i)
                if first != i:
                    repeats.append((i, first))
        if first_of:
            channels = [channel for channel, _ in first_of]
            client_ids = [client_id for _, client_id in first_of]
            for row in await conn.fetch(self._existing, channels, client_ids):
                results[first_of[row["channel"], row["client_id"]]] = _message(row)
        repeated = {i for i, _ in repeats}
        fresh = [i for i, r in enumerate(results) if r is None and i not in repeated]
        if fresh:
            rows = await conn.fetch(
                "SELECT nextval($1::regclass) AS id FROM generate_series(1, $2)",
                self._sequence,
                len(fresh),
            )
            # Drawn under the lock: larger than any id committed before, and ours alone.
            ids = sorted(row["id"] for row in rows)
            batch = [drafts[i] for i in fresh]
            await conn.execute(
                self._insert,
                ids,
                [d.channel for d in batch],
                [d.message for d in batch],
                [d.user for d in batch],
                [d.ts for d in batch],
                [d.client_id for d in batch],
                [d.user_id for d in batch],
            )
            for i, id in zip(fresh, ids, strict=True):
                results[i] = drafts[i].stored(id)
        for i, first in repeats:
            results[i] = results[first]
        stored = [r for r in results if r is not None]
        assert len(stored) == len(drafts)
        return stored

    async def _delete(
        self, channel: str, id: int, deleted_at: int, by: str | None
    ) -> StoredMessage | None:
        q = self._queries
        async with self._db.transaction() as conn:
            await conn.execute(q.tombstone, deleted_at, by, channel, id)
            row = await conn.fetchrow(q.get, channel, id)
        return None if row is None else _message(row)

    async def _fetch(self, sql: str, params: tuple[object, ...]) -> list[StoredMessage]:
        return [_message(row) for row in await self._db.fetch(sql, *params)]

    def _whereabouts(self) -> dict[str, object]:
        return {"schema": self.schema, "table": self.table}

    async def _probe(self) -> dict[str, object]:
        try:
            await asyncio.wait_for(self._db.pool.fetchval("SELECT 1"), self._connect_timeout)
        except db_errors() as exc:
            raise StoreError(f"{type(exc).__name__}: {exc}") from exc
        return {}


def _ban(row: Any) -> Ban:
    return Ban(row["channel"], row["user_id"], row["until_ms"], row["banned_by"], row["at_ms"])


class PostgresBanStore:
    """A :class:`~salas.store.bans.BanStore` in PostgreSQL: the table ``<table>_bans``.

    Args:
        dsn: asyncpg's connection string.
        schema: The schema holding the table (default ``"public"``; created if missing).
        table: The messages table's name, which the bans table is named after (default
            ``"messages"``).
        url: The URL it came from, for reports; default ``dsn``.
        max_pool: Connections the pool opens at most (default 2: bans are rare writes
            and one indexed read per join).
        connect_timeout: Seconds to wait for a connection (default 5.0).
        command_timeout: Seconds a statement may run (default 30.0).

    Attributes:
        backend: ``"postgresql"``.
        dsn: As given.
        schema: As given.
        table: As given.
        url: As given, or ``dsn``.

    Raises:
        StoreError: As :class:`PostgresStore`'s constructor.
    """

    backend = "postgresql"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        table: str = "messages",
        url: str | None = None,
        max_pool: int = 2,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        self.schema, self.table, self.url = postgres_location(dsn, schema, table, url)
        self.dsn = dsn
        qualified = f'"{schema}"."{table}_bans"'
        self._sql = BanQueries.on(qualified, integer="BIGINT", param=param)
        self._db = PostgresPool(
            dsn,
            setup=self._create_schema,
            table=qualified,
            name="postgresql ban",
            min_size=1,
            max_size=max_pool,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        self._open = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresBanStore:
        """The ban store at a PostgreSQL URL (the message store's), not yet opened.

        Raises:
            StoreError: As the constructor.
        """
        dsn, schema, table = split_postgres_url(url)
        return cls(dsn, schema=schema, table=table, url=url, **options)

    async def _create_schema(self, conn: Any) -> None:
        await create_schema(conn, schema=self.schema, ddl=self._sql.ddl)

    async def open(self) -> None:
        """Connect, creating the schema and the bans table if needed (idempotent).

        Raises:
            StoreError: The database cannot be reached or the table created.
        """
        if not self._open:
            await self._db.open()
            self._open = True

    async def close(self) -> None:
        """Close the pool (idempotent)."""
        self._open = False
        await self._db.close()

    async def ban(self, channel: str, user_id: str, until_ms: int | None, by: str) -> Ban:
        """Ban a user from a room; see :meth:`BanStore.ban`.

        Also removes the room's expired bans, in the same transaction.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the write failed.
        """
        ban = check_ban(channel, user_id, until_ms, by)
        async with self._db.transaction() as conn:
            await conn.execute(self._sql.purge, channel, ban.at_ms)
            await conn.execute(self._sql.upsert, channel, user_id, ban.until_ms, by, ban.at_ms)
        return ban

    async def unban(self, channel: str, user_id: str) -> bool:
        """Lift a ban; see :meth:`BanStore.unban`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the write failed.
        """
        check_target(channel, user_id)
        now = check_now(None)
        async with self._db.transaction() as conn:
            status: str = await conn.execute(self._sql.lift, channel, user_id, now)
        return status != "DELETE 0"

    async def is_banned(self, channel: str, user_id: str, now: int | None = None) -> Ban | None:
        """The active ban, if any; see :meth:`BanStore.is_banned`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the read failed.
        """
        check_target(channel, user_id)
        at = check_now(now)
        rows = await self._db.fetch(self._sql.active, channel, user_id, at)
        return _ban(rows[0]) if rows else None

    async def bans(self, channel: str, now: int | None = None) -> list[Ban]:
        """A room's active bans; see :meth:`BanStore.bans`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the read failed.
        """
        check_target(channel)
        at = check_now(now)
        return [_ban(row) for row in await self._db.fetch(self._sql.listing, channel, at)]
