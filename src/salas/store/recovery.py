"""Persistence for connection state recovery: the broadcast log and disconnected sessions.

`salas.server` stamps every broadcast with an offset (a strictly increasing integer, sent
to clients as a string) and appends it here; when a client's transport drops, its session
(pid, socket id, rooms, data) is saved here. A client that reconnects with `{pid, offset}`
gets its session back and every logged packet after `offset` that was meant for its rooms.

The memory backend is the default (recovery within one process, as Node's server does).
Durable backends keep both across a restart of the server.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["LoggedPacket", "MemoryRecoveryStore", "RecoveryStore", "SessionRecord", "now_ms"]


def now_ms() -> int:
    return int(time.time() * 1000)


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
    async def open(self) -> None: ...
    async def close(self) -> None: ...

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

    async def save_session(self, record: SessionRecord) -> None: ...

    async def take_session(self, pid: str) -> SessionRecord | None:
        """The session saved under `pid`, removed so that it is recovered at most once."""
        ...

    async def prune(self, before_ms: int) -> None:
        """Forget packets and sessions older than `before_ms`."""
        ...


class MemoryRecoveryStore:
    """Recovery within one process (what the Node server offers)."""

    def __init__(self) -> None:
        self._packets: list[LoggedPacket] = []  # in offset order
        self._offsets: list[int] = []
        self._sessions: dict[str, SessionRecord] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def last_offset(self) -> int:
        return self._offsets[-1] if self._offsets else 0

    def append(self, packet: LoggedPacket) -> None:
        self._packets.append(packet)
        self._offsets.append(packet.offset)

    async def flush(self) -> None:
        return None

    async def packets_after(self, nsp: str, offset: int, limit: int) -> list[LoggedPacket]:
        start = bisect.bisect_right(self._offsets, offset)
        found: list[LoggedPacket] = []
        for packet in self._packets[start:]:
            if packet.nsp == nsp:
                found.append(packet)
                if len(found) >= limit:
                    break
        return found

    async def save_session(self, record: SessionRecord) -> None:
        self._sessions[record.pid] = record

    async def take_session(self, pid: str) -> SessionRecord | None:
        return self._sessions.pop(pid, None)

    async def prune(self, before_ms: int) -> None:
        keep = 0
        while keep < len(self._packets) and self._packets[keep].ts < before_ms:
            keep += 1
        if keep:
            del self._packets[:keep]
            del self._offsets[:keep]
        for pid in [p for p, r in self._sessions.items() if r.disconnected_at < before_ms]:
            del self._sessions[pid]
