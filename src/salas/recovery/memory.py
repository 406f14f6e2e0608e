"""``memory://``: connection state recovery within one process (what the Node server offers).

Nothing survives a restart of the server; a client that reconnects to the same process
within the window gets its session back.
"""

from __future__ import annotations

import bisect

from .types import LoggedPacket, SessionRecord

__all__ = ["MemoryRecoveryStore"]


class MemoryRecoveryStore:
    """A :class:`~salas.recovery.types.RecoveryStore` in this process's memory.

    Recovery within one process (what the Node server offers); the default of
    :class:`~salas.recovery.RecoveryOptions`. No method raises.

    Attributes:
        backend: ``"memory"``.
    """

    backend = "memory"

    def __init__(self) -> None:
        self._packets: list[LoggedPacket] = []  # in offset order
        self._offsets: list[int] = []
        self._sessions: dict[str, SessionRecord] = {}

    async def open(self) -> None:
        """Nothing to open."""
        return None

    async def close(self) -> None:
        """Nothing to close: what it holds stays until the object goes."""
        return None

    async def last_offset(self) -> int:
        """The offset of the newest packet logged, 0 when none."""
        return self._offsets[-1] if self._offsets else 0

    def append(self, packet: LoggedPacket) -> None:
        """Log ``packet``; its offset must be above every one appended before."""
        self._packets.append(packet)
        self._offsets.append(packet.offset)

    async def flush(self) -> None:
        """Nothing to wait for: ``append`` is immediate."""
        return None

    async def packets_after(self, nsp: str, offset: int, limit: int) -> list[LoggedPacket]:
        """Up to ``limit`` logged packets of ``nsp`` after ``offset``, oldest first."""
        start = bisect.bisect_right(self._offsets, offset)
        found: list[LoggedPacket] = []
        for packet in self._packets[start:]:
            if packet.nsp == nsp:
                found.append(packet)
                if len(found) >= limit:
                    break
        return found

    async def save_session(self, record: SessionRecord) -> None:
        """Keep ``record`` under its pid, replacing any earlier save."""
        self._sessions[record.pid] = record

    async def take_session(self, pid: str) -> SessionRecord | None:
        """Remove and return the session saved under ``pid``, or None."""
        return self._sessions.pop(pid, None)

    async def prune(self, before_ms: int) -> None:
        """Forget packets and sessions older than ``before_ms`` (ms since the epoch).

        The newest packet stays, whatever its age.
        """
        keep = 0
        # The newest packet stays whatever its age: it is what `last_offset` reports.
        while keep < len(self._packets) - 1 and self._packets[keep].ts < before_ms:
            keep += 1
        if keep:
            del self._packets[:keep]
            del self._offsets[:keep]
        for pid in [p for p, r in self._sessions.items() if r.disconnected_at < before_ms]:
            del self._sessions[pid]
