"""`open_recovery_store(url)`: the recovery store for a store URL, chosen as `open_store` does.

>>> store = open_recovery_store("sqlite:///var/lib/salas/history.db")
>>> Server(connection_state_recovery=RecoveryOptions(store=store))

The same URL as the chat's message store puts the recovery tables beside its messages
table, in the same database: ``memory://`` gives a :class:`MemoryRecoveryStore` (recovery
within one process), a SQLite URL or bare path a :class:`SQLiteRecoveryStore`, a
PostgreSQL URL a :class:`PostgresRecoveryStore` (asyncpg, the ``postgres`` extra, is
imported then). The server opens and closes it.
"""

from __future__ import annotations

from salas.db.urls import backend_of

from .memory import MemoryRecoveryStore
from .postgres import PostgresRecoveryStore
from .sqlite import SQLiteRecoveryStore
from .types import RecoveryStore

__all__ = ["open_recovery_store"]

# Shorter than `salas.store.SUPPORTED_URLS`, which lists the same URLs.
_SUPPORTED = "memory://, sqlite:///path.db, a bare file path, postgresql://..."


def open_recovery_store(url: str) -> RecoveryStore:
    """The recovery store for a store URL, not yet opened (the server opens it).

    Args:
        url: ``memory://``, a SQLite URL or bare file path, or a PostgreSQL URL: the same
            URLs, and options, as :func:`~salas.store.open_store`.

    Returns:
        A :class:`MemoryRecoveryStore`, :class:`SQLiteRecoveryStore` or
        :class:`PostgresRecoveryStore`.

    Raises:
        StoreError: The URL is empty, malformed or of an unknown scheme, has an unknown or
            invalid option, or names PostgreSQL without the ``postgres`` extra installed.
    """
    backend, url = backend_of(url, _SUPPORTED)
    if backend == "memory":
        return MemoryRecoveryStore()
    if backend == "sqlite":
        return SQLiteRecoveryStore.from_url(url)
    return PostgresRecoveryStore.from_url(url)
