"""salas.store: the chat's message history, behind one Protocol, chosen by URL.

>>> store = open_store("sqlite:///var/lib/salas/history.db")
>>> await store.open()
>>> m = await store.append("lobby", "hello", "ana", client_id="c1")
>>> await store.history("lobby", before=m.id + 1, limit=50)

Backends, by URL scheme:

- ``memory://`` — this process's memory (tests, throw-away chats);
- ``sqlite:///abs/path.db``, ``sqlite://relative.db`` or a bare path like ``salas.db`` —
  the default, a SQLite file in WAL mode (option ``?table=``);
- ``postgresql://...`` or ``postgres://...`` — PostgreSQL via asyncpg (options
  ``?schema=`` and ``?table=``; other query parameters go to asyncpg).

SQLite and PostgreSQL write through group commit (:mod:`salas.store.batching`);
their ``batches_committed`` counts the transactions.

Connection state recovery (the server's broadcast log and disconnected sessions) has its
own Protocol, :class:`RecoveryStore`, with the same three backends on the same URLs:
``open_recovery_store(url)`` puts its tables beside the messages table.
"""

from __future__ import annotations

from .base import (
    HISTORY_LIMIT_DEFAULT,
    HISTORY_LIMIT_MAX,
    InvalidInputError,
    MessageStore,
    StoredMessage,
    StoreError,
)
from .memory import MemoryStore
from .postgres import PostgresStore
from .recovery import LoggedPacket, MemoryRecoveryStore, RecoveryStore, SessionRecord
from .recovery_open import open_recovery_store
from .recovery_postgres import PostgresRecoveryStore
from .recovery_sqlite import SQLiteRecoveryStore
from .sqlite import SQLiteStore
from .urls import backend_of

__all__ = [
    "HISTORY_LIMIT_DEFAULT",
    "HISTORY_LIMIT_MAX",
    "SUPPORTED_URLS",
    "InvalidInputError",
    "LoggedPacket",
    "MemoryRecoveryStore",
    "MemoryStore",
    "MessageStore",
    "PostgresRecoveryStore",
    "PostgresStore",
    "RecoveryStore",
    "SQLiteRecoveryStore",
    "SQLiteStore",
    "SessionRecord",
    "StoreError",
    "StoredMessage",
    "open_recovery_store",
    "open_store",
]

SUPPORTED_URLS = (
    "memory://, sqlite:///abs/path.db, sqlite://relative.db, a bare file path such as "
    "salas.db, postgresql://user@host:5432/db (or postgres://)"
)


def open_store(url: str) -> MessageStore:
    """The store for ``url``, not yet opened (``await store.open()``); StoreError if bad."""
    backend, url = backend_of(url, SUPPORTED_URLS)
    if backend == "memory":
        return MemoryStore(url)
    if backend == "sqlite":
        return SQLiteStore.from_url(url)
    return PostgresStore.from_url(url)
