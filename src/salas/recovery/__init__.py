"""salas.recovery: connection state recovery — the policy, the broadcast log and saved
sessions, and their backends, chosen by URL.

>>> from salas import Server
>>> from salas.recovery import RecoveryOptions, open_recovery_store
>>> io = Server(connection_state_recovery=RecoveryOptions(
...     store=open_recovery_store("sqlite:///var/lib/salas/history.db")))

Modules: :mod:`.types` (what is logged and saved, and the :class:`RecoveryStore`
Protocol), :mod:`.codec` (how the durable backends store it), :mod:`.policy` (offsets,
which disconnections are recoverable, restore and replay: the :class:`Recovery` the
server holds), :mod:`.memory`, :mod:`.sqlite`, :mod:`.postgres` (the backends; the last
needs the ``postgres`` extra), :mod:`.durable` (what the SQLite and PostgreSQL backends
share) and :mod:`.open` (:func:`open_recovery_store`).
"""

from __future__ import annotations

from .memory import MemoryRecoveryStore
from .open import open_recovery_store
from .policy import RECOVERABLE_REASONS, Recovery, RecoveryOptions, RestoredSession
from .postgres import PostgresRecoveryStore
from .sqlite import SQLiteRecoveryStore
from .types import LoggedPacket, RecoveryStore, SessionRecord

__all__ = [
    "RECOVERABLE_REASONS",
    "LoggedPacket",
    "MemoryRecoveryStore",
    "PostgresRecoveryStore",
    "Recovery",
    "RecoveryOptions",
    "RecoveryStore",
    "RestoredSession",
    "SQLiteRecoveryStore",
    "SessionRecord",
    "open_recovery_store",
]
