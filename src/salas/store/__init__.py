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
  ``?schema=`` and ``?table=``; other query parameters go to asyncpg). asyncpg is the
  ``postgres`` extra (``pip install 'salas[postgres]'``), imported when such a URL is
  opened.

SQLite and PostgreSQL write through group commit (:mod:`salas.db.batching`);
their ``batches_committed`` counts the transactions.

Moderation: ``delete`` leaves a tombstone that ``history`` skips (see
:mod:`salas.store.base`); bans live in a :class:`BanStore` (:mod:`salas.store.bans`) that
:func:`open_ban_store` opens from the same URL, in the same database (table
``<table>_bans``):

>>> bans = open_ban_store("sqlite:///var/lib/salas/history.db")
>>> await bans.open()

Connection state recovery (the server's broadcast log and disconnected sessions) is
:mod:`salas.recovery`, on the same URLs and the same plumbing (:mod:`salas.db`).
"""

from __future__ import annotations

from salas.db.errors import StoreError
from salas.db.urls import backend_of

from .bans import Ban, BanStore, MemoryBanStore
from .base import (
    HISTORY_LIMIT_DEFAULT,
    STORE_PAGE_MAX,
    InvalidInputError,
    MessageStore,
    StoredMessage,
)
from .memory import MemoryStore
from .postgres import PostgresBanStore, PostgresStore
from .sqlite import SQLiteBanStore, SQLiteStore

__all__ = [
    "HISTORY_LIMIT_DEFAULT",
    "STORE_PAGE_MAX",
    "SUPPORTED_URLS",
    "Ban",
    "BanStore",
    "InvalidInputError",
    "MemoryBanStore",
    "MemoryStore",
    "MessageStore",
    "PostgresBanStore",
    "PostgresStore",
    "SQLiteBanStore",
    "SQLiteStore",
    "StoreError",
    "StoredMessage",
    "open_ban_store",
    "open_store",
]

#: The store URLs ``open_store`` accepts, as its error messages list them.
SUPPORTED_URLS = (
    "memory://, sqlite:///abs/path.db, sqlite://relative.db, a bare file path such as "
    "salas.db, postgresql://user@host:5432/db (or postgres://)"
)


def open_store(url: str, *, commit_interval: float | None = None) -> MessageStore:
    """The message store for a URL, not yet opened (``await store.open()``).

    Args:
        url: ``memory://``, a SQLite URL or bare file path, or a PostgreSQL URL (see the
            module's docstring for each one's options).
        commit_interval: For SQLite and PostgreSQL, the group commit's pacing in seconds
            (None: the default, 0.003; see :class:`SQLiteStore`). Ignored by memory.

    Returns:
        A :class:`MemoryStore`, :class:`SQLiteStore` or :class:`PostgresStore`.

    Raises:
        StoreError: The URL is empty, malformed or of an unknown scheme, has an unknown or
            invalid option, or names PostgreSQL without the ``postgres`` extra installed.
    """
    backend, url = backend_of(url, SUPPORTED_URLS)
    if backend == "memory":
        return MemoryStore(url)
    options = {} if commit_interval is None else {"commit_interval": commit_interval}
    if backend == "sqlite":
        return SQLiteStore.from_url(url, **options)
    return PostgresStore.from_url(url, **options)


def open_ban_store(url: str) -> BanStore:
    """The ban store for a message store URL, not yet opened (``await bans.open()``).

    The same URL as :func:`open_store` puts the bans table ``<table>_bans`` beside the
    messages table, in the same database; ``memory://`` keeps bans in this process only.

    Args:
        url: As :func:`open_store`'s, options included.

    Returns:
        A :class:`MemoryBanStore`, :class:`SQLiteBanStore` or :class:`PostgresBanStore`.

    Raises:
        StoreError: As :func:`open_store`.
    """
    backend, url = backend_of(url, SUPPORTED_URLS)
    if backend == "memory":
        return MemoryBanStore(url)
    if backend == "sqlite":
        return SQLiteBanStore.from_url(url)
    return PostgresBanStore.from_url(url)
