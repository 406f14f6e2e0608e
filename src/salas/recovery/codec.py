"""How the durable recovery backends store a packet and a session: the two codecs (packets
as one byte string; rooms and ``data`` as JSON text) and the mappers between
:class:`~salas.recovery.types.LoggedPacket` / :class:`~salas.recovery.types.SessionRecord`
and their table rows.
"""

from __future__ import annotations

import functools
import json
import logging
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from salas.db.common import unstorable
from salas.db.errors import StoreError

from .types import LoggedPacket, LogRow, SessionRecord, SessionRow

__all__ = [
    "dump_data",
    "dump_rooms",
    "load_data",
    "load_rooms",
    "log_row",
    "log_row_or_warn",
    "pack_packets",
    "packet_of",
    "record_of",
    "session_row",
    "storable_key",
    "unpack_packets",
]

logger = logging.getLogger("salas.recovery")

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
        # Not `dump_rooms`: a session's rooms include its own id, never seen again, and
        # would only push the broadcasts' rooms out of that function's cache.
        _dumps(list(record.rooms)),
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
