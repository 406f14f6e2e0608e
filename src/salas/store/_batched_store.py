"""What the SQLite and PostgreSQL message stores share: :class:`BatchedMessageStore`.

Both write through group commit (:mod:`salas.db.batching`) and page history with the
same four statements; they differ in how a batch is written (the ``_commit`` of each),
how a deletion is written (``_delete``), how rows are read, and what their health report
names. The table they keep is the same, column for column (:func:`messages_ddl`), in each
database's own types; a table made before a column existed gets it on ``open``
(:data:`ADDED_COLUMNS`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from salas.db.batching import DEFAULT_COMMIT_INTERVAL, CommitObserver, GroupCommitter
from salas.db.common import Connections, now_ms
from salas.db.errors import StoreError, not_open

from .base import (
    HISTORY_LIMIT_DEFAULT,
    Draft,
    StoredMessage,
    check_append,
    check_delete,
    check_history,
)

__all__ = ["ADDED_COLUMNS", "COLUMNS", "BatchedMessageStore", "HistoryQueries", "messages_ddl"]

#: The messages table's columns, in :class:`StoredMessage` order. ``author``, not ``user``:
#: ``user`` is reserved in PostgreSQL; both backends agree.
COLUMNS = "id, channel, message, author, ts, client_id, user_id, deleted_at, deleted_by"

#: The columns added after the first schema, each ``(name, kind)`` with ``kind`` ``"text"``
#: or ``"integer"``: all nullable, so ``ALTER TABLE ... ADD COLUMN`` gives old rows NULL
#: (no user id, not deleted).
ADDED_COLUMNS = (("user_id", "text"), ("deleted_at", "integer"), ("deleted_by", "text"))

DbT = TypeVar("DbT", bound=Connections)


def messages_ddl(table: str, qualified: str, *, id_column: str, integer: str) -> str:
    """The messages table ``qualified`` and its indexes (named after ``table``).

    Only the types are the database's: ``id_column`` is how it hands out ids that are never
    reused, ``integer`` its 64-bit integer type.
    """
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified} ("
        f" id {id_column},"
        " channel TEXT NOT NULL, message TEXT NOT NULL, author TEXT NOT NULL,"
        f" ts {integer} NOT NULL, client_id TEXT,"
        f" user_id TEXT, deleted_at {integer}, deleted_by TEXT);"
        f'CREATE INDEX IF NOT EXISTS "{table}_channel_id" ON {qualified} (channel, id);'
        f'CREATE UNIQUE INDEX IF NOT EXISTS "{table}_channel_client_id"'
        f" ON {qualified} (channel, client_id) WHERE client_id IS NOT NULL;"
    )


@dataclass(frozen=True, slots=True)
class HistoryQueries:
    """The statements of ``history`` (one per combination of bounds, tombstones skipped),
    of ``get`` and of ``delete``."""

    latest: str
    before: str
    after: str
    between: str
    #: ``(channel, id)``: the row, tombstone or not.
    get: str
    #: ``(deleted_at, deleted_by, channel, id)``: overwrite a live message's text.
    tombstone: str

    @classmethod
    def on(cls, qualified: str, param: Callable[[int], str]) -> HistoryQueries:
        """The statements on table ``qualified``.

        Args:
            qualified: The table's name, quoted (and schema-qualified) for SQL.
            param: ``param(n)`` is the database's placeholder for the n-th parameter
                (``?`` in SQLite, ``$n`` in PostgreSQL).
        """
        everything = f"SELECT {COLUMNS} FROM {qualified} WHERE channel = {param(1)}"
        select = f"{everything} AND deleted_at IS NULL"
        return cls(
            latest=f"{select} ORDER BY id DESC LIMIT {param(2)}",
            before=f"{select} AND id < {param(2)} ORDER BY id DESC LIMIT {param(3)}",
            after=f"{select} AND id > {param(2)} ORDER BY id LIMIT {param(3)}",
            between=(
                f"{select} AND id > {param(2)} AND id < {param(3)} ORDER BY id LIMIT {param(4)}"
            ),
            get=f"{everything} AND id = {param(2)}",
            tombstone=(
                f"UPDATE {qualified} SET message = '', deleted_at = {param(1)},"
                f" deleted_by = {param(2)}"
                f" WHERE channel = {param(3)} AND id = {param(4)} AND deleted_at IS NULL"
            ),
        )


class BatchedMessageStore(ABC, Generic[DbT]):
    """A :class:`~salas.store.base.MessageStore` whose appends are group-committed.

    Subclasses write a batch (``_commit``), read rows (``_fetch``) and say where the
    messages are (``_whereabouts``, ``_probe``) their database's way.

    Args:
        db: The connections, opened and closed with the store.
        queries: The statements of ``history``.
        max_batch: The most messages written in one transaction.

    Attributes:
        backend: The backend's name, as health reports and errors give it.
        url: The URL the store was made from.
    """

    backend: ClassVar[str]
    url: str

    def __init__(
        self,
        db: DbT,
        queries: HistoryQueries,
        *,
        max_batch: int,
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
    ) -> None:
        self._db = db
        self._queries = queries
        self._max_batch = max_batch
        self._commit_interval = commit_interval
        self._committer: GroupCommitter[Draft, StoredMessage] | None = None
        self._commit_observer: CommitObserver | None = None

    # -- measures of group commit ------------------------------------------------------

    @property
    def commit_interval(self) -> float:
        """Seconds between the starts of two transactions while messages keep coming."""
        return self._commit_interval

    @property
    def batches_committed(self) -> int:
        """Write transactions committed since ``open``."""
        return 0 if self._committer is None else self._committer.batches_committed

    @property
    def messages_committed(self) -> int:
        """Messages handed to committed transactions since ``open`` (repeats included)."""
        return 0 if self._committer is None else self._committer.items_committed

    def observe_commits(self, observer: CommitObserver | None) -> None:
        """Tell ``observer(seconds, ok)`` of every group commit from now on (None: stop).

        It outlives a close and reopen of the store; :mod:`salas.metrics` uses it.
        """
        self._commit_observer = observer
        if self._committer is not None:
            self._committer.observer = observer

    # -- life cycle ----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create the schema if needed, start group commit (idempotent).

        Raises:
            StoreError: The database cannot be opened or reached, or its schema created.
        """
        if self._committer is not None:
            return
        await self._db.open()
        self._committer = GroupCommitter(
            self._commit,
            max_batch=self._max_batch,
            name=self.backend,
            interval=self._commit_interval,
        )
        self._committer.observer = self._commit_observer
        self._committer.start()

    async def close(self) -> None:
        """Write every message already queued, then disconnect (idempotent)."""
        committer, self._committer = self._committer, None
        try:
            if committer is not None:
                await committer.close()
        finally:
            await self._db.close()

    # -- the contract --------------------------------------------------------------------

    async def append(
        self,
        channel: str,
        message: str,
        user: str,
        client_id: str | None = None,
        *,
        user_id: str | None = None,
    ) -> StoredMessage:
        """Store one message durably and return it; see :meth:`MessageStore.append`.

        The message joins the batch being formed and the call returns when that batch's
        transaction has committed.

        Raises:
            InvalidInputError: An argument is not storable text.
            StoreError: The store is not open, or its batch failed.
        """
        draft = check_append(channel, message, user, client_id, user_id=user_id)
        if self._committer is None:
            raise not_open(self.backend)
        return await self._committer.submit(draft)

    async def history(
        self,
        channel: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = HISTORY_LIMIT_DEFAULT,
    ) -> list[StoredMessage]:
        """A page of a channel's messages, oldest first; see :meth:`MessageStore.history`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the query failed.
        """
        before, after, limit = check_history(channel, before, after, limit)
        q = self._queries
        params: tuple[object, ...]
        if after is not None and before is not None:
            sql, params, newest_first = q.between, (channel, after, before, limit), False
        elif after is not None:
            sql, params, newest_first = q.after, (channel, after, limit), False
        elif before is not None:
            sql, params, newest_first = q.before, (channel, before, limit), True
        else:
            sql, params, newest_first = q.latest, (channel, limit), True
        messages = await self._fetch(sql, params)
        if newest_first:
            messages.reverse()
        return messages

    async def get(self, channel: str, id: int) -> StoredMessage | None:
        """One message by id, tombstones included; see :meth:`MessageStore.get`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the query failed.
        """
        id = check_delete(channel, id, None)
        if self._committer is None:
            raise not_open(self.backend)
        rows = await self._fetch(self._queries.get, (channel, id))
        return rows[0] if rows else None

    async def delete(self, channel: str, id: int, *, by: str | None = None) -> StoredMessage | None:
        """Overwrite a message's text, leaving a tombstone; see :meth:`MessageStore.delete`.

        One transaction of its own, beside group commit (deletions are rare).

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the write failed.
        """
        id = check_delete(channel, id, by)
        if self._committer is None:
            raise not_open(self.backend)
        return await self._delete(channel, id, now_ms(), by)

    async def health(self) -> dict[str, object]:
        """Whether the database answers; see :meth:`MessageStore.health`.

        Returns:
            The backend, where the messages are, ``ok``, and when ok the database's
            details plus ``batches_committed``, ``batches_failed`` and ``pending`` (messages
            queued for the next batch); otherwise ``error``.
        """
        report: dict[str, object] = {"backend": self.backend, **self._whereabouts()}
        committer = self._committer
        if committer is None:
            return {**report, "ok": False, "error": "store is not open"}
        try:
            details = await self._probe()
        except StoreError as exc:
            return {**report, "ok": False, "error": str(exc)}
        return {
            **report,
            "ok": True,
            **details,
            "batches_committed": committer.batches_committed,
            "batches_failed": committer.batches_failed,
            "pending": committer.pending,
        }

    # -- what each database does its own way -------------------------------------------

    @abstractmethod
    async def _commit(self, drafts: Sequence[Draft]) -> list[StoredMessage]:
        """Write ``drafts`` in one transaction (GroupCommitter's ``commit``)."""

    @abstractmethod
    async def _delete(
        self, channel: str, id: int, deleted_at: int, by: str | None
    ) -> StoredMessage | None:
        """Run ``tombstone`` then ``get`` in one transaction: the row afterwards, or None."""

    @abstractmethod
    async def _fetch(self, sql: str, params: tuple[object, ...]) -> list[StoredMessage]:
        """The messages a history statement selects, in its order."""

    @abstractmethod
    def _whereabouts(self) -> dict[str, object]:
        """Where the messages are, for ``health`` (a path; a schema and table)."""

    @abstractmethod
    async def _probe(self) -> dict[str, object]:
        """Ask the database whether it answers: what ``health`` adds when it does;
        StoreError, whose text ``health`` reports, when it does not."""
