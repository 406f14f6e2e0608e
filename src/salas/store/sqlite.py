"""``sqlite:///abs/path.db``, ``sqlite://relative.db`` or a bare path: the default store.

The file and its schema are created on first start. Options (URL query):

- ``table`` — the table's name (default ``messages``; letters, digits, ``_``).

Durability and speed: the database runs in WAL mode with ``synchronous=FULL``, so a
message whose ``append`` returned survives a crash or power loss. What makes that cheap
is group commit (:mod:`salas.db.batching`): one transaction, one WAL sync per batch.

Threads (:class:`~salas.db.sqlite.SQLiteFile`): a writer thread writes each
batch in one hop and one ``BEGIN IMMEDIATE`` transaction, so several processes may share one
file: ids (``AUTOINCREMENT``, never reused) stay strictly increasing in commit order, and
the ``(channel, client_id)`` check runs inside the writing transaction. A reader thread
serves ``history`` and never waits for a write.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from salas.db.batching import DEFAULT_MAX_BATCH
from salas.db.sqlite import SQLiteFile, param, sqlite_location
from salas.db.urls import split_sqlite_url

from ._batched_store import COLUMNS, BatchedMessageStore, HistoryQueries, messages_ddl
from .base import Draft, StoredMessage

__all__ = ["SQLiteStore"]

Row = tuple[int, str, str, str, int, str | None]


def _message(row: Row) -> StoredMessage:
    return StoredMessage(*row)


class SQLiteStore(BatchedMessageStore[SQLiteFile]):
    """A :class:`~salas.store.base.MessageStore` in one SQLite file.

    Args:
        path: The database file, created on ``open`` if missing (its directory must exist).
        table: The messages table's name (default ``"messages"``).
        url: The URL it came from, for reports; default ``sqlite:///<path>``.
        max_batch: The most messages written in one transaction (default 4096).

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
    ) -> None:
        self.path, self.table, self.url = sqlite_location(path, table, url)
        t = f'"{table}"'
        # AUTOINCREMENT: ids never reused, even those of deleted rows.
        schema = messages_ddl(
            table, t, id_column="INTEGER PRIMARY KEY AUTOINCREMENT", integer="INTEGER"
        )
        self._insert = (
            f"INSERT INTO {t} (channel, message, author, ts, client_id) VALUES (?,?,?,?,?)"
        )
        self._by_client_id = f"SELECT {COLUMNS} FROM {t} WHERE channel = ? AND client_id = ?"
        super().__init__(
            SQLiteFile(path, schema, name="sqlite", threads="sqlite"),
            HistoryQueries.on(t, param),
            max_batch=max_batch,
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
        # In the writer thread, inside the batch's transaction.
        stored: list[StoredMessage] = []
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
        return stored

    async def _fetch(self, sql: str, params: tuple[object, ...]) -> list[StoredMessage]:
        rows = await self._db.read(lambda conn: conn.execute(sql, params).fetchall())
        return [_message(row) for row in rows]

    def _whereabouts(self) -> dict[str, object]:
        return {"path": os.path.abspath(self.path)}

    async def _probe(self) -> dict[str, object]:
        await self._db.read(lambda conn: conn.execute("SELECT 1").fetchone())
        return {"journal_mode": self._db.journal_mode}
