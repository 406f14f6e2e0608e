"""`open_recovery_store(url)`: the recovery store for a store URL, chosen as `open_store` does.

>>> store = open_recovery_store("sqlite:///var/lib/salas/history.db")
>>> Server(connection_state_recovery=RecoveryOptions(store=store))

The same URL as the chat's message store puts the recovery tables beside its messages
table, in the same database: ``memory://`` gives a :class:`MemoryRecoveryStore` (recovery
within one process), a SQLite URL or bare path a :class:`SQLiteRecoveryStore`, a
PostgreSQL URL a :class:`PostgresRecoveryStore`. The server opens and closes it.
"""

from __future__ import annotations

import re

from .base import StoreError
from .postgres import redact
from .recovery import MemoryRecoveryStore, RecoveryStore
from .recovery_postgres import PostgresRecoveryStore
from .recovery_sqlite import SQLiteRecoveryStore

__all__ = ["open_recovery_store"]

_SUPPORTED = "memory://, sqlite:///path.db, a bare file path, postgresql://..."
# "name:" without "://": a URL with a typo, not a file name (as `open_store` judges it).
_SCHEME_WITHOUT_SLASHES = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]+:")


def open_recovery_store(url: str) -> RecoveryStore:
    """The recovery store for ``url``, not yet opened; StoreError if the URL is bad."""
    if not isinstance(url, str) or not url.strip():
        raise StoreError(f"empty store URL; supported: {_SUPPORTED}")
    url = url.strip()
    scheme, sep, _ = url.partition("://")
    if not sep:
        if _SCHEME_WITHOUT_SLASHES.match(url):
            raise StoreError(f"malformed store URL {redact(url)!r}; supported: {_SUPPORTED}")
        return SQLiteRecoveryStore.from_url(url)
    scheme = scheme.lower()
    if scheme == "memory":
        return MemoryRecoveryStore()
    if scheme == "sqlite":
        return SQLiteRecoveryStore.from_url(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresRecoveryStore.from_url(url)
    raise StoreError(
        f"unknown store URL scheme {scheme!r} in {redact(url)!r}; supported: {_SUPPORTED}"
    )
