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
    """One broadcast as it went out: who it was for and its Engine.IO packets.

    Attributes:
        offset: Its offset, strictly increasing across the server's broadcasts.
        nsp: The namespace it was broadcast in.
        rooms: The rooms it was for, sorted; empty: every socket of the namespace.
        except_rooms: The rooms whose sockets were left out, sorted.
        packets: Its Engine.IO packets in websocket form (``"42[...]"``, then any binary
            attachments as bytes).
        ts: When it was logged, in milliseconds since the epoch.
    """

    offset: int
    nsp: str
    rooms: tuple[str, ...]  # empty: every socket of the namespace
    except_rooms: tuple[str, ...]
    packets: tuple[str | bytes, ...]  # Engine.IO packets in websocket form ("42[...]", bytes)
    ts: int = field(default_factory=now_ms)

    def reaches(self, rooms: frozenset[str]) -> bool:
        """Whether a socket in ``rooms`` was a recipient.

        Args:
            rooms: The socket's rooms, its own id among them.
        """
        if self.rooms and rooms.isdisjoint(self.rooms):
            return False
        return rooms.isdisjoint(self.except_rooms)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A disconnected socket, kept so that its client can recover it.

    Attributes:
        pid: The private id: only the client that had the session knows it.
        sid: The socket id it had, and gets back.
        nsp: Its namespace.
        rooms: The rooms it was in.
        data: Its ``data`` (durable backends keep it as JSON; ``{}`` if it is not
            JSON-serialisable).
        base_offset: The log head when the socket connected: where the replay starts for
            a client that never received a broadcast.
        disconnected_at: When it disconnected, in milliseconds since the epoch.
    """

    pid: str  # private id: only the client that had the session knows it
    sid: str
    nsp: str
    rooms: tuple[str, ...]
    data: Any  # the socket's `data` (JSON-serialisable for durable backends)
    base_offset: int  # log head when the socket connected: replay start for a client without offset
    disconnected_at: int = field(default_factory=now_ms)


class RecoveryStore(Protocol):
    """Where the broadcast log and disconnected sessions are kept (see the module's contract).

    Made by :func:`~salas.recovery.open_recovery_store` from a URL and given as
    ``RecoveryOptions(store=...)``; the server opens and closes it. The durable backends
    raise :class:`~salas.db.errors.StoreError` from the awaited methods when they are not
    open or their database fails; the memory backend raises nothing.
    """

    async def open(self) -> None:
        """Connect, and create the schema on first start (idempotent).

        Raises:
            StoreError: The database cannot be opened or reached, or its schema created.
        """
        ...

    async def close(self) -> None:
        """Write what is still queued, then close (idempotent)."""
        ...

    async def last_offset(self) -> int:
        """The highest offset ever logged (0 when none): new offsets continue after it.

        Raises:
            StoreError: The store is not open, or the read failed.
        """
        ...

    def append(self, packet: LoggedPacket) -> None:
        """Log ``packet`` without waiting and without raising.

        Durable backends queue it and write in batches; a packet that cannot be stored,
        or one appended while the store is closed, is dropped (with a warning for the
        former).

        Args:
            packet: The broadcast; its offset is above every one appended before.
        """
        ...

    async def flush(self) -> None:
        """Return once everything appended so far is written (or given up on)."""
        ...

    async def packets_after(self, nsp: str, offset: int, limit: int) -> list[LoggedPacket]:
        """Logged packets of a namespace after an offset, oldest first.

        Args:
            nsp: The namespace.
            offset: Only packets with a larger offset.
            limit: How many packets at most.

        Returns:
            Up to ``limit`` packets, including every one appended before this call.

        Raises:
            StoreError: The store is not open, or the read failed.
        """
        ...

    async def save_session(self, record: SessionRecord) -> None:
        """Keep ``record`` until it is taken or pruned.

        A later save under the same pid replaces it.

        Args:
            record: The disconnected socket's session.

        Raises:
            StoreError: The store is not open, or the write failed.
        """
        ...

    async def take_session(self, pid: str) -> SessionRecord | None:
        """Remove and return the session saved under ``pid``: it is recovered at most once.

        Args:
            pid: The private id the client presented.

        Returns:
            The session, or None when none is saved under ``pid``.

        Raises:
            StoreError: The store is not open, or the write failed.
        """
        ...

    async def prune(self, before_ms: int) -> None:
        """Forget packets and sessions older than a time, but never the newest packet.

        Args:
            before_ms: Milliseconds since the epoch: packets logged and sessions
                disconnected before it are deleted.

        Raises:
            StoreError: The store is not open, or the delete failed.
        """
        ...


# The rows of the durable backends' tables: a logged packet and a saved session, with
# rooms and data as JSON text and the packets as one byte string (see :mod:`.codec`).
LogRow = tuple[int, str, str, str, bytes, int]
SessionRow = tuple[str, str, str, str, str, int, int]
