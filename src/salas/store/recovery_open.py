"""`open_recovery_store(url)`: the recovery store for a store URL, chosen as `open_store` does.

>>> store = open_recovery_store("sqlite:///var/lib/salas/history.db")
>>> Server(connection_state_recovery=RecoveryOptions(store=store))

The same URL as the chat's message store puts the recovery tables beside its messages
table, in the same database: ``memory://`` gives a :class:`MemoryRecoveryStore` (recovery
within one process), a SQLite URL or bare path a :class:`SQLiteRecoveryStore`, a
PostgreSQL URL a :class:`PostgresRecoveryStore`. The server opens and closes it.
"""

from __future__ import annotations

from .recovery import MemoryRecoveryStore, RecoveryStore
from .recovery_postgres import PostgresRecoveryStore
from .recovery_sqlite import SQLiteRecoveryStore
from .urls import backend_of

__all__ = ["open_recovery_store"]

# Shorter than `SUPPORTED_URLS`, which lists the same URLs; kept as the error text it was.
_SUPPORTED = "memory://, sqlite:///path.db, a bare file path, postgresql://..."


def open_recovery_store(url: str) -> RecoveryStore:
    """The recovery store for ``url``, not yet opened; StoreError if the URL is bad."""
    backend, url = backend_of(url, _SUPPORTED)
    if backend == "memory":
        return MemoryRecoveryStore()
    if backend == "sqlite":
        return SQLiteRecoveryStore.from_url(url)
    return PostgresRecoveryStore.from_url(url)
