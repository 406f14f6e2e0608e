"""Connection state recovery's data: a logged broadcast, a saved session, their rows, and
the :class:`RecoveryStore` Protocol every backend implements.

The server stamps every broadcast with an offset (a strictly increasing integer, sent to
clients as a string) and appends it to the store; when a client's transport drops, its
session (pid, socket id, rooms, data) is saved there. A client that reconnects with
`{pid, offset}` gets its session back and every logged packet after `offset` that was
meant for its rooms.

Contract, beyond the method docs: ``last_offset`` never goes back, not even when ``prune``
has forgotten every packet (the newest packet is kept), so a restarted server never hands
out an offset a client already holds; ``packets_after`` sees everything appended before it
was called; ``take_session`` sees every ``save_session`` awaited before it.
``tests/recovery/test_recovery_conformance.py`` runs one suite over every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from salas.db.common import now_ms

__all__ = ["LogRow", "LoggedPacket", "RecoveryStore", "SessionRecord", "SessionRow"]


@dataclass(frozen=True, slots=True)
class LoggedPacket:
    """One broadcast as it went out: who it was for and its Engine.IO packets."""

    offset: int
    nsp: str
    rooms: tuple[str, ...]  # empty: every socket of the namespace
    except_rooms: tuple[str, ...]
    packets: tuple[str | bytes, ...]  # Engine.IO packets in websocket form ("42[...]", bytes)
    ts: int = field(default_factory=now_ms)

    def reaches(self, rooms: frozenset[str]) -> bool:
        """Whether a socket in `rooms` was a recipient."""
        if self.rooms and rooms.isdisjoint(self.rooms):
            return False
        return rooms.isdisjoint(self.except_rooms)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A disconnected socket, kept so that its client can recover it."""

    pid: str  # private id: only the client that had the session knows it
    sid: str
    nsp: str
    rooms: tuple[str, ...]
    data: Any  # the socket's `data` (JSON-serialisable for durable backends)
    base_offset: int  # log head when the socket connected: replay start for a client without offset
    disconnected_at: int = field(default_factory=now_ms)


class RecoveryStore(Protocol):
    """Where the broadcast log and disconnected sessions are kept (see the module's contract)."""

    async def open(self) -> None:
        """Connect, and create the schema on first start (idempotent)."""
        ...

    async def close(self) -> None:
        """Write what is still queued, then close."""
        ...

    async def last_offset(self) -> int:
        """The highest offset ever logged (0 when none): new offsets continue after it."""
        ...

    def append(self, packet: LoggedPacket) -> None:
        """Log `packet` without waiting (durable backends write in batches)."""
        ...

    async def flush(self) -> None:
        """Return once everything appended so far is durable."""
        ...

    async def packets_after(self, nsp: str, offset: int, limit: int) -> list[LoggedPacket]:
        """Logged packets of `nsp` with an offset above `offset`, oldest first."""
        ...

    async def save_session(self, record: SessionRecord) -> None:
        """Keep `record` until it is taken or pruned (a later save under its pid replaces it)."""
        ...

    async def take_session(self, pid: str) -> SessionRecord | None:
        """The session saved under `pid`, removed so that it is recovered at most once."""
        ...

    async def prune(self, before_ms: int) -> None:
        """Forget packets and sessions older than `before_ms` (but never the newest packet)."""
        ...


# The rows of the durable backends' tables: a logged packet and a saved session, with
# rooms and data as JSON text and the packets as one byte string (see :mod:`.codec`).
LogRow = tuple[int, str, str, str, bytes, int]
SessionRow = tuple[str, str, str, str, str, int, int]
