"""``sqlite:///abs/path.db``, ``sqlite://relative.db`` or a bare path: the default store.

The file and its schema are created on first start. Options (URL query):

- ``table`` — the table's name (default ``messages``; letters, digits, ``_``).

Durability and speed: the database runs in WAL mode with ``synchronous=FULL``, so a
message whose ``append`` returned survives a crash or power loss. What makes that cheap
is group commit (:mod:`salas.store.batching`): one transaction, one WAL sync per batch.

Threads (:class:`~salas.store._sqlite_common.SQLiteFile`): a writer thread writes each
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

from ._sqlite_common import SQLiteFile, check_sqlite_path, sqlite_url
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

_COLUMNS = "id, channel, message, author, ts, client_id"

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
        self.path = check_sqlite_path(path)
        self.url = sqlite_url(path, url)
        self.table = check_identifier("table", table)
        self._max_batch = max_batch
        # ``author``, not ``user``: ``user`` is reserved in PostgreSQL; both backends agree.
        t = f'"{table}"'
        schema = (
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
        self._file = SQLiteFile(path, schema, name="sqlite", threads="sqlite")
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
        await self._file.open()
        self._committer = GroupCommitter(self._commit, max_batch=self._max_batch, name="sqlite")
        self._committer.start()

    async def close(self) -> None:
        committer, self._committer = self._committer, None
        try:
            if committer is not None:
                await committer.close()
        finally:
            await self._file.close()

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
        rows = await self._file.read(lambda conn: conn.execute(sql, params).fetchall())
        messages = [_message(row) for row in rows]
        if newest_first:
            messages.reverse()
        return messages

    async def health(self) -> dict[str, object]:
        report: dict[str, object] = {"backend": self.backend, "path": os.path.abspath(self.path)}
        if self._committer is None:
            return {**report, "ok": False, "error": "store is not open"}
        try:
            await self._file.read(lambda conn: conn.execute("SELECT 1").fetchone())
        except StoreError as exc:
            return {**report, "ok": False, "error": str(exc)}
        return {
            **report,
            "ok": True,
            "journal_mode": self._file.journal_mode,
            "batches_committed": self._committer.batches_committed,
            "batches_failed": self._committer.batches_failed,
            "pending": self._committer.pending,
        }

    # -- the writer thread's side --------------------------------------------------------

    def _write_batch(
        self, conn: sqlite3.Connection, drafts: Sequence[Draft]
    ) -> list[StoredMessage]:
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

    async def _commit(self, drafts: Sequence[Draft]) -> list[StoredMessage]:
        return await self._file.write(lambda conn: self._write_batch(conn, drafts))
