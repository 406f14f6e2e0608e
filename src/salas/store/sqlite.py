"""``sqlite:///abs/path.db``, ``sqlite://relative.db`` or a bare path: the default store.

The file and its schema are created on first start. Options (URL query):

- ``table`` — the table's name (default ``messages``; letters, digits, ``_``).

Durability and speed: the database runs in WAL mode with ``synchronous=FULL``, so a
message whose ``append`` returned survives a crash or power loss. What makes that cheap
is group commit (:mod:`salas.db.batching`): one transaction, one WAL sync per batch.

Threads (:class:`~salas.db.sqlite.SQLiteFile`): the file's writer thread, which the
recovery log and bans of the same file share (:mod:`salas.db.sqlite_writer`), writes each
batch in one hop and one ``BEGIN IMMEDIATE`` transaction, so several processes may share one
file: ids (``AUTOINCREMENT``, never reused) stay strictly increasing in commit order, and
the ``(channel, client_id)`` check runs inside the writing transaction. A reader thread
serves ``history`` and never waits for a write.

Deletion (``delete``): the row's text is overwritten with ``""`` in its own transaction.
The writer runs with ``PRAGMA secure_delete=ON``, so the old text is zeroed in the file's
pages rather than left in free space, and each deletion ends with a
``wal_checkpoint(TRUNCATE)``, so the WAL holding the old page versions is emptied too
(when a reader of another connection still holds an older snapshot, the checkpoint is
left to the next one, and a warning is logged). What the file system or its backups keep
of earlier bytes is beyond SQLite.

A table made by an older salas gets the new columns (``user_id``, ``deleted_at``,
``deleted_by``) with ``ALTER TABLE ... ADD COLUMN`` on ``open``.

Bans (:class:`SQLiteBanStore`): the table ``<table>_bans`` in the same file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from salas.db.batching import DEFAULT_COMMIT_INTERVAL, DEFAULT_MAX_BATCH
from salas.db.errors import StoreError
from salas.db.sqlite import SQLiteFile, param, sqlite_location
from salas.db.urls import split_sqlite_url

from ._batched_store import (
    ADDED_COLUMNS,
    COLUMNS,
    BatchedMessageStore,
    HistoryQueries,
    messages_ddl,
)
from .bans import Ban, BanQueries, check_ban, check_now, check_target
from .base import Draft, StoredMessage

__all__ = ["SQLiteBanStore", "SQLiteStore"]

logger = logging.getLogger(__name__)

Row = tuple[int, str, str, str, int, str | None, str | None, int | None, str | None]


def _message(row: Row) -> StoredMessage:
    return StoredMessage(*row)


def _row(draft: Draft) -> tuple[object, ...]:
    """`draft`'s values in the order of the INSERT's columns."""
    return (draft.channel, draft.message, draft.user, draft.ts, draft.client_id, draft.user_id)


class SQLiteStore(BatchedMessageStore[SQLiteFile]):
    """A :class:`~salas.store.base.MessageStore` in one SQLite file.

    Args:
        path: The database file, created on ``open`` if missing (its directory must exist).
        table: The messages table's name (default ``"messages"``).
        url: The URL it came from, for reports; default ``sqlite:///<path>``.
        max_batch: The most messages written in one transaction (default 4096).
        commit_interval: Seconds between the starts of two transactions while messages
            keep coming (default 0.003; see :mod:`salas.db.batching`, "Pacing"). 0 for a
            caller that appends one message at a time and waits for each (the chat of a
            cluster holds a room's lock across the append): pacing would only delay it.

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

    def __init__(
        self,
        path: str,
        *,
        table: str = "messages",
        url: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
    ) -> None:
        self.path, self.table, self.url = sqlite_location(path, table, url)
        t = f'"{table}"'
        # AUTOINCREMENT: ids never reused, even those of deleted rows.
        schema = messages_ddl(
            table, t, id_column="INTEGER PRIMARY KEY AUTOINCREMENT", integer="INTEGER"
        )
        self._insert = (
            f"INSERT INTO {t} (channel, message, author, ts, client_id, user_id)"
            " VALUES (?,?,?,?,?,?)"
        )
        self._by_client_id = f"SELECT {COLUMNS} FROM {t} WHERE channel = ? AND client_id = ?"
        # Skipped (rowcount 0) when the room already holds this client_id (the unique index).
        self._insert_new = (
            self._insert + " ON CONFLICT (channel, client_id) WHERE client_id IS NOT NULL"
            " DO NOTHING"
        )
        super().__init__(
            SQLiteFile(
                path,
                schema,
                name="sqlite",
                threads="sqlite",
                migrate=self._add_missing_columns,
                secure_delete=True,
            ),
            HistoryQueries.on(t, param),
            max_batch=max_batch,
            commit_interval=commit_interval,
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        """The store at a SQLite URL, not yet opened.

        Args:
            url: ``sqlite:///abs/path.db``, ``sqlite://relative.db`` (option ``?table=``),
                or a bare path, taken literally.
            **options: The constructor's other keyword arguments (``max_batch``).

        Raises:
            StoreError: An unknown URL option, or as the constructor.
        """
        path, table = split_sqlite_url(url)
        return cls(path, table=table, url=url, **options)

    # -- the database's side -------------------------------------------------------------

    async def _commit(self, drafts: Sequence[Draft]) -> list[StoredMessage]:
        return await self._db.write(lambda conn: self._write_batch(conn, drafts))

    def _write_batch(
        self, conn: sqlite3.Connection, drafts: Sequence[Draft]
    ) -> list[StoredMessage]:
        # In the writer thread, inside the batch's transaction, which holds the file's write
        # lock: nobody else inserts meanwhile, so the ids of one executemany are consecutive
        # (AUTOINCREMENT hands out max + 1 each time) and end at last_insert_rowid().
        stored: list[StoredMessage] = []
        plain: list[Draft] = []  # a run of drafts without client_id, inserted together
        for draft in drafts:
            if draft.client_id is None:
                plain.append(draft)
                continue
            if plain:
                stored += self._insert_plain(conn, plain)
                plain = []
            stored.append(self._insert_once(conn, draft))
        if plain:
            stored += self._insert_plain(conn, plain)
        return stored

    def _insert_plain(self, conn: sqlite3.Connection, drafts: list[Draft]) -> list[StoredMessage]:
        conn.executemany(self._insert, [_row(draft) for draft in drafts])
        (last,) = conn.execute("SELECT last_insert_rowid()").fetchone()
        first = last - len(drafts) + 1
        return [draft.stored(first + i) for i, draft in enumerate(drafts)]

    def _insert_once(self, conn: sqlite3.Connection, draft: Draft) -> StoredMessage:
        # One statement when the client_id is new (the common case); the row stored first
        # when it is not — earlier in this batch, or committed by another process.
        cursor = conn.execute(self._insert_new, _row(draft))
        if cursor.rowcount == 1:
            assert cursor.lastrowid is not None
            return draft.stored(cursor.lastrowid)
        first = conn.execute(self._by_client_id, (draft.channel, draft.client_id)).fetchone()
        return _message(first)

    def _add_missing_columns(self, conn: sqlite3.Connection) -> None:
        # In the writer thread, holding the write lock: two processes opening an old file
        # at once add each column once.
        have = {row[1] for row in conn.execute(f'PRAGMA table_info("{self.table}")')}
        for name, kind in ADDED_COLUMNS:
            if name not in have:
                sql_type = "TEXT" if kind == "text" else "INTEGER"
                conn.execute(f'ALTER TABLE "{self.table}" ADD COLUMN {name} {sql_type}')

    async def _delete(
        self, channel: str, id: int, deleted_at: int, by: str | None
    ) -> StoredMessage | None:
        q = self._queries

        def tombstone(conn: sqlite3.Connection) -> tuple[bool, Row | None]:
            changed = conn.execute(q.tombstone, (deleted_at, by, channel, id)).rowcount > 0
            row: Row | None = conn.execute(q.get, (channel, id)).fetchone()
            return changed, row

        changed, row = await self._db.write(tombstone)
        if changed:
            # Committed: a checkpoint that cannot finish now is no reason to fail the call.
            try:
                done = await self._db.checkpoint()
            except StoreError as exc:
                done = False
                logger.warning("after deleting message %d: %s", id, exc)
            if not done:
                logger.warning(
                    "after deleting message %d: the WAL checkpoint could not finish "
                    "(another connection is reading); the next one will",
                    id,
                )
        return None if row is None else _message(row)

    async def _fetch(self, sql: str, params: tuple[object, ...]) -> list[StoredMessage]:
        rows = await self._db.read(lambda conn: conn.execute(sql, params).fetchall())
        return [_message(row) for row in rows]

    def _whereabouts(self) -> dict[str, object]:
        return {"path": os.path.abspath(self.path)}

    async def _probe(self) -> dict[str, object]:
        await self._db.read(lambda conn: conn.execute("SELECT 1").fetchone())
        return {"journal_mode": self._db.journal_mode}


def _ban(row: tuple[str, str, int | None, str, int]) -> Ban:
    return Ban(*row)


class SQLiteBanStore:
    """A :class:`~salas.store.bans.BanStore` in a SQLite file: the table ``<table>_bans``.

    Args:
        path: The database file (the message store's, usually), created on ``open`` if
            missing (its directory must exist).
        table: The messages table's name, which the bans table is named after (default
            ``"messages"``).
        url: The URL it came from, for reports; default ``sqlite:///<path>``.

    Attributes:
        backend: ``"sqlite"``.
        path: As given.
        table: As given.
        url: As given, or derived from ``path``.

    Raises:
        StoreError: As :class:`SQLiteStore`'s constructor.
    """

    backend = "sqlite"

    def __init__(self, path: str, *, table: str = "messages", url: str | None = None) -> None:
        self.path, self.table, self.url = sqlite_location(path, table, url)
        self._sql = BanQueries.on(f'"{table}_bans"', integer="INTEGER", param=param)
        self._db = SQLiteFile(path, self._sql.ddl, name="sqlite ban", threads="sqlite-bans")

    @classmethod
    def from_url(cls, url: str) -> SQLiteBanStore:
        """The ban store at a SQLite URL (the message store's), not yet opened.

        Raises:
            StoreError: An unknown URL option, or as the constructor.
        """
        path, table = split_sqlite_url(url)
        return cls(path, table=table, url=url)

    async def open(self) -> None:
        """Open the file, creating the bans table if needed (idempotent).

        Raises:
            StoreError: The file cannot be opened or its table created.
        """
        if not self._db.is_open:
            await self._db.open()

    async def close(self) -> None:
        """Close the file (idempotent)."""
        await self._db.close()

    async def ban(self, channel: str, user_id: str, until_ms: int | None, by: str) -> Ban:
        """Ban a user from a room; see :meth:`BanStore.ban`.

        Also removes the room's expired bans, in the same transaction.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the write failed.
        """
        ban = check_ban(channel, user_id, until_ms, by)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(self._sql.purge, (channel, ban.at_ms))
            conn.execute(self._sql.upsert, (channel, user_id, ban.until_ms, by, ban.at_ms))

        await self._db.write(write)
        return ban

    async def unban(self, channel: str, user_id: str) -> bool:
        """Lift a ban; see :meth:`BanStore.unban`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the write failed.
        """
        check_target(channel, user_id)
        now = check_now(None)
        lifted: bool = await self._db.write(
            lambda conn: conn.execute(self._sql.lift, (channel, user_id, now)).rowcount > 0
        )
        return lifted

    async def is_banned(self, channel: str, user_id: str, now: int | None = None) -> Ban | None:
        """The active ban, if any; see :meth:`BanStore.is_banned`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the read failed.
        """
        check_target(channel, user_id)
        at = check_now(now)
        row = await self._db.read(
            lambda conn: conn.execute(self._sql.active, (channel, user_id, at)).fetchone()
        )
        return None if row is None else _ban(row)

    async def bans(self, channel: str, now: int | None = None) -> list[Ban]:
        """A room's active bans; see :meth:`BanStore.bans`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the read failed.
        """
        check_target(channel)
        at = check_now(now)
        rows = await self._db.read(
            lambda conn: conn.execute(self._sql.listing, (channel, at)).fetchall()
        )
        return [_ban(row) for row in rows]
