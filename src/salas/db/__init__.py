"""The SQLite and PostgreSQL plumbing that the message store and the recovery store share.

- :mod:`salas.db.errors` — :class:`StoreError`, the one error of every store;
- :mod:`salas.db.common` — checks and values every backend agrees on;
- :mod:`salas.db.urls` — which backend a store URL names, and its options;
- :mod:`salas.db.batching` — group commit and the batch-writer task;
- :mod:`salas.db.sqlite` — a store's SQLite file: its reader thread and the file's writer;
- :mod:`salas.db.sqlite_writer` — the one writer of a SQLite file in a process, whose
  transactions hold what the file's stores ask for at about the same time;
- :mod:`salas.db.postgres` — an asyncpg pool (asyncpg is imported only when one is made:
  the ``postgres`` extra).
"""

from __future__ import annotations

from salas.db.errors import StoreError

__all__ = ["StoreError"]
