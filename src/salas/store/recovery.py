"""Persistence for connection state recovery: the broadcast log and disconnected sessions.

`salas.server` stamps every broadcast with an offset (a strictly increasing integer, sent
to clients as a string) and appends it here; when a client's transport drops, its session
(pid, socket id, rooms, data) is saved here. A client that reconnects with `{pid, offset}`
gets its session back and every logged packet after `offset` that was meant for its rooms.

The memory backend is the default (recovery within one process, as Node's server does).
The durable backends (:mod:`salas.store.recovery_sqlite`, :mod:`salas.store.recovery_postgres`,
chosen by URL with :func:`salas.store.open_recovery_store`) keep both across a restart of the
server; ``tests/store/test_recovery_conformance.py`` runs one suite over all three.

Contract, beyond the method docs: ``last_offset`` never goes back, not even when ``prune``
has forgotten every packet (the newest packet is kept), so a restarted server never hands
out an offset a client already holds; ``packets_after`` sees everything appended before it
was called; ``take_session`` sees every ``save_session`` awaited before it.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson

from .base import StoreError, now_ms, unstorable
from .batching import DEFAULT_MAX_BATCH, BatchWriter

__all__ = [
    "LogRow",
    "LogWriter",
    "LoggedPacket",
    "MemoryRecoveryStore",
    "RecoveryStore",
    "SessionRecord",
    "SessionRow",
    "dump_data",
    "dump_rooms",
    "load_data",
    "load_rooms",
    "log_row",
    "log_row_or_warn",
    "now_ms",
    "pack_packets",
    "packet_of",
    "record_of",
    "session_row",
    "storable_key",
    "unpack_packets",
]

logger = logging.getLogger("salas.store")


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
        """Forget packets and sessions older than `before_ms` (but never the newest packet)."""
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
        # The newest packet stays whatever its age: it is what `last_offset` reports.
        while keep < len(self._packets) - 1 and self._packets[keep].ts < before_ms:
            keep += 1
        if keep:
            del self._packets[:keep]
            del self._offsets[:keep]
        for pid in [p for p, r in self._sessions.items() if r.disconnected_at < before_ms]:
            del self._sessions[pid]


# -- encodings shared by the durable backends -------------------------------------------------
#
# `packets` are one BLOB / BYTEA: a format byte, then per packet a tag (text or binary), a
# 4-byte length and the bytes (text as UTF-8, lone surrogates kept), so str and bytes come
# back exactly as they went in. Rooms and `data` are JSON text: orjson, or the standard
# library for the strings orjson refuses (lone surrogates), escaped to ASCII.

_FORMAT = 1
_TEXT = 0x74  # "t"
_BINARY = 0x62  # "b"
_HEAD = struct.Struct(">BI")
_FORMAT_BYTE = bytes((_FORMAT,))


def pack_packets(packets: Iterable[str | bytes]) -> bytes:
    """`packets` as one byte string that `unpack_packets` turns back into the same tuple."""
    if type(packets) is tuple and len(packets) == 1 and type(packets[0]) is str:
        # The common case, one text packet, without the loop (it runs for every broadcast).
        raw = packets[0].encode("utf-8", "surrogatepass")
        return _FORMAT_BYTE + _HEAD.pack(_TEXT, len(raw)) + raw
    out = bytearray((_FORMAT,))
    for packet in packets:
        if isinstance(packet, str):
            raw, tag = packet.encode("utf-8", "surrogatepass"), _TEXT
        elif isinstance(packet, bytes | bytearray | memoryview):
            raw, tag = bytes(packet), _BINARY
        else:
            raise TypeError(f"a packet is str or bytes, not {type(packet).__name__}")
        out += _HEAD.pack(tag, len(raw))
        out += raw
    return bytes(out)


def unpack_packets(blob: bytes) -> tuple[str | bytes, ...]:
    """The packets `pack_packets` packed; StoreError if `blob` is not such a value."""
    view = memoryview(blob)
    if len(view) < 1 or view[0] != _FORMAT:
        raise StoreError("recovery log: packets in an unknown format")
    packets: list[str | bytes] = []
    at, end = 1, len(view)
    while at < end:
        if at + _HEAD.size > end:
            raise StoreError("recovery log: truncated packets")
        tag, size = _HEAD.unpack_from(view, at)
        at += _HEAD.size
        if at + size > end or tag not in (_TEXT, _BINARY):
            raise StoreError("recovery log: corrupt packets")
        raw = bytes(view[at : at + size])
        at += size
        packets.append(raw.decode("utf-8", "surrogatepass") if tag == _TEXT else raw)
    return tuple(packets)


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        # Lone surrogates (which orjson refuses) survive as \udXXX escapes; anything else
        # the standard library cannot encode either raises TypeError/ValueError.
        return json.dumps(value, ensure_ascii=True, allow_nan=False)


def _loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def dump_rooms(rooms: Sequence[str]) -> str:
    """Room names as a JSON array."""
    if type(rooms) is tuple:
        return _dump_room_tuple(rooms)
    return _dumps(list(rooms))


@functools.lru_cache(maxsize=4096)
def _dump_room_tuple(rooms: tuple[str, ...]) -> str:
    # Broadcasts go to the same few rooms over and over.
    return _dumps(list(rooms))


def load_rooms(text: str | bytes) -> tuple[str, ...]:
    """The room names `dump_rooms` wrote."""
    rooms = _loads(text)
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise StoreError("recovery store: rooms are not a JSON array of strings")
    return tuple(rooms)


def dump_data(data: Any, sid: str) -> str:
    """A socket's `data` as JSON; `{}` (and a warning) when it is not JSON-serialisable."""
    try:
        return _dumps(data)
    except (TypeError, ValueError) as exc:
        logger.warning(
            "socket %s: its data is not JSON-serialisable (%s); it is saved as {} for recovery",
            sid,
            exc,
        )
        return "{}"


def load_data(text: str | bytes) -> Any:
    """The `data` `dump_data` wrote."""
    return _loads(text)


@functools.lru_cache(maxsize=256)
def _storable_namespace(nsp: str) -> bool:
    return storable_key(nsp)


def storable_key(text: str) -> bool:
    """Whether `text` can be a key or name in every backend (no NUL, valid Unicode)."""
    return unstorable(text) is None


# -- rows of the durable backends' tables ---------------------------------------------

LogRow = tuple[int, str, str, str, bytes, int]
SessionRow = tuple[str, str, str, str, str, int, int]


def log_row(packet: LoggedPacket) -> LogRow | None:
    """`packet` as a row of the log table; None (and nothing stored) if it cannot be."""
    if not _storable_namespace(packet.nsp):
        return None
    return (
        packet.offset,
        packet.nsp,
        dump_rooms(packet.rooms),
        dump_rooms(packet.except_rooms),
        pack_packets(packet.packets),
        packet.ts,
    )


def log_row_or_warn(packet: LoggedPacket) -> LogRow | None:
    """`log_row(packet)`, or None with a warning: a broadcast never fails for its log."""
    try:
        row = log_row(packet)
    except Exception as exc:
        logger.warning("broadcast %d not logged for recovery: %s", packet.offset, exc)
        return None
    if row is None:
        logger.warning(
            "broadcast %d not logged for recovery: namespace %r cannot be stored",
            packet.offset,
            packet.nsp,
        )
    return row


def session_row(record: SessionRecord) -> SessionRow:
    """`record` as a row of the sessions table (`data` as JSON, `{}` if it cannot be)."""
    return (
        record.pid,
        record.sid,
        record.nsp,
        dump_rooms(record.rooms),
        dump_data(record.data, record.sid),
        record.base_offset,
        record.disconnected_at,
    )


def packet_of(row: Sequence[Any]) -> LoggedPacket:
    """The packet a log row holds."""
    offset, nsp, rooms, except_rooms, packets, ts = row
    return LoggedPacket(
        offset, nsp, load_rooms(rooms), load_rooms(except_rooms), unpack_packets(packets), ts
    )


def record_of(row: Sequence[Any]) -> SessionRecord:
    """The session a sessions row holds."""
    pid, sid, nsp, rooms, data, base_offset, disconnected_at = row
    return SessionRecord(
        pid, sid, nsp, load_rooms(rooms), load_data(data), base_offset, disconnected_at
    )


# -- appends written in batches ------------------------------------------------------------------

RowT = TypeVar("RowT")


class LogWriter(BatchWriter[RowT]):
    """Rows queued synchronously by `append`, written by one task, one transaction per batch.

    `write(rows)` must write all rows in one transaction, or raise having written none. A
    batch that fails is tried again (three attempts in all), then dropped with an error in
    the log: the recovery log is best effort, and a database that is down must not make the
    queue grow without bound either (beyond `max_pending` rows the oldest are dropped).
    """

    RETRY_DELAYS = (0.1, 1.0)

    def __init__(
        self,
        write: Callable[[list[RowT]], Awaitable[None]],
        *,
        name: str,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = 100_000,
    ) -> None:
        super().__init__(name=name, role="log-writer")
        self._write = write
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._appended = 0  # rows ever queued
        self._finished = 0  # rows written, or given up on
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._overflowing = False
        #: Transactions committed, rows they wrote, and rows dropped (failed or overflowed).
        self.batches_committed = 0
        self.rows_committed = 0
        self.rows_dropped = 0

    @property
    def pending(self) -> int:
        """Rows queued and not yet written."""
        return self._appended - self._finished

    def append(self, row: RowT) -> bool:
        """Queue `row` (never blocks); False when the writer is closed and drops it."""
        if not self.running:
            return False
        queue = self._queue
        if len(queue) >= self._max_pending:
            queue.popleft()
            self._finished += 1
            self.rows_dropped += 1
            if not self._overflowing:
                self._overflowing = True
                logger.error(
                    "%s: %d rows wait to be written; dropping the oldest", self._name, len(queue)
                )
        queue.append(row)
        self._appended += 1
        if len(queue) == 1:
            self._wakeup.set()
        return True

    async def flush(self) -> None:
        """Return once every row queued before this call is written (or given up on)."""
        target = self._appended
        if self._finished >= target or self._task is None:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        await waiter

    async def _write_next(self) -> None:
        count = min(len(self._queue), self._max_batch)
        batch = [self._queue.popleft() for _ in range(count)]
        await self._write_batch(batch)
        self._finished += count
        if not self._queue:
            self._overflowing = False
        self._release()

    def _stopped(self) -> None:
        # Reached with waiters only if the task was cancelled (the loop is going away).
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(StoreError(f"{self._name}: closed before writing"))
        self._waiters.clear()

    async def _write_batch(self, batch: list[RowT]) -> None:
        for attempt, delay in enumerate((*self.RETRY_DELAYS, None)):
            try:
                await self._write(batch)
            except Exception as exc:
                if delay is None:
                    self.rows_dropped += len(batch)
                    logger.error(
                        "%s: dropped %d rows after %d failed writes: %s",
                        self._name,
                        len(batch),
                        attempt + 1,
                        exc,
                    )
                    return
                logger.warning(
                    "%s: writing %d rows failed (%s); retrying", self._name, len(batch), exc
                )
                await asyncio.sleep(delay)
            else:
                self.batches_committed += 1
                self.rows_committed += len(batch)
                return

    def _release(self) -> None:
        done = self._finished
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, waiter in self._waiters:
            if target <= done:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._waiters = still
