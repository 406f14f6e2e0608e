"""Socket.IO v5 packets, with binary attachments (sans-I/O).

Text form: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`. A packet whose
data holds bytes is sent as BINARY_EVENT / BINARY_ACK: each bytes value is replaced by
`{"_placeholder": true, "num": n}` and the bytes follow as separate binary messages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import orjson

from salas.protocol.errors import ProtocolError

__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_DEPTH",
    "RESERVED_EVENTS",
    "PacketDecoder",
    "SocketPacket",
    "SocketPacketType",
    "encode_packet",
    "has_binary",
]

# Event names the client and server libraries use for themselves; an EVENT may not carry one.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
# A packet may announce at most this many binary attachments: the decoder holds them in
# memory until the last one arrives, so an unbounded count is a way to exhaust memory.
MAX_ATTACHMENTS = 256
# Arrays and objects may nest at most this deep in a packet's data. A chat needs three or
# four levels; without a limit, a few kilobytes of "[[[[..." exhaust the JSON parsers' stack
# (orjson stops at 1024 levels, the json module then raises RecursionError), and every
# recursive walk of the data after them would need the same guard.
MAX_DEPTH = 32
# Digits accepted in an ack id (Node's parser accepts any integer; 2**53 fits in 16).
_MAX_ACK_ID_DIGITS = 16


class SocketPacketType(IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(slots=True)
class SocketPacket:
    type: SocketPacketType
    nsp: str = "/"
    data: Any = None
    id: int | None = None
    attachments: list[bytes] = field(default_factory=list)


_BINARY_TYPES = (SocketPacketType.BINARY_EVENT, SocketPacketType.BINARY_ACK)
_ACK_TYPES = (SocketPacketType.ACK, SocketPacketType.BINARY_ACK)
# Tuples, not `bytes | bytearray`: a union written in a call is built anew on every call,
# and these checks run for every emit.
_BYTES_TYPES = (bytes, bytearray, memoryview)
_SEQUENCE_TYPES = (list, tuple)
# Values that can hold nothing further (the common case in event payloads).
_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})
_TYPES_BY_DIGIT = {str(int(t)): t for t in SocketPacketType}
_DIGIT_OF = {t: str(int(t)) for t in SocketPacketType}
# Enum members looked up once: attribute access on an Enum class is slow on hot paths.
_EVENT = SocketPacketType.EVENT
_ACK = SocketPacketType.ACK
_BINARY_OF = {_EVENT: SocketPacketType.BINARY_EVENT, _ACK: SocketPacketType.BINARY_ACK}


def has_binary(value: Any) -> bool:
    """True when bytes appear anywhere inside `value` (lists, tuples, dict values)."""
    if type(value) in _LEAF_TYPES:
        return False
    if isinstance(value, _BYTES_TYPES):
        return True
    if isinstance(value, _SEQUENCE_TYPES):
        items: Any = value
    elif isinstance(value, dict):
        items = value.values()
    else:
        return False
    for item in items:  # noqa: SIM110 - a plain loop: any() over a generator costs more here
        if type(item) not in _LEAF_TYPES and has_binary(item):
            return True
    return False


def _deconstruct(value: Any, buffers: list[bytes]) -> Any:
    if isinstance(value, _BYTES_TYPES):
        buffers.append(bytes(value))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(value, _SEQUENCE_TYPES):
        return [_deconstruct(v, buffers) for v in value]
    if isinstance(value, dict):
        return {k: _deconstruct(v, buffers) for k, v in value.items()}
    return value


def _reconstruct(value: Any, buffers: list[bytes]) -> Any:
    if isinstance(value, dict):
        if value.get("_placeholder") is True:
            num = value.get("num")
            if type(num) is not int or not 0 <= num < len(buffers):
                raise ProtocolError("attachment placeholder out of range")
            return buffers[num]
        return {k: _reconstruct(v, buffers) for k, v in value.items()}
    if isinstance(value, list):
        return [_reconstruct(v, buffers) for v in value]
    return value


def encode_packet(packet: SocketPacket) -> list[str | bytes]:
    """Encode to the text part followed by its binary attachments, if any.

    EVENT and ACK packets whose data holds bytes are turned into their BINARY_ form.
    """
    packet_type = packet.type
    data = packet.data
    buffers: list[bytes] = []
    if packet_type is _EVENT or packet_type is _ACK:
        if has_binary(data):
            packet_type = _BINARY_OF[packet_type]
            data = _deconstruct(data, buffers)
    elif packet_type in _BINARY_TYPES:
        data = _deconstruct(data, buffers)
    out = _DIGIT_OF[packet_type]
    if buffers or packet_type in _BINARY_TYPES:
        out += f"{len(buffers)}-"
    if packet.nsp != "/":
        out += packet.nsp + ","
    if packet.id is not None:
        out += str(packet.id)
    if data is not None:
        out += orjson.dumps(data).decode()
    return [out, *buffers]


def _valid_payload(packet_type: SocketPacketType, data: Any, present: bool) -> bool:
    """The shape each packet type's data must have (as Node's parser checks it).

    `present` tells an absent payload from an explicit JSON `null`.
    """
    if packet_type is _EVENT:  # first: nearly every packet a client sends
        if type(data) is not list or not data:
            return False
        name = data[0]
        if type(name) is str:
            return name not in RESERVED_EVENTS
        return type(name) is int
    if packet_type is SocketPacketType.CONNECT:
        return not present or isinstance(data, dict)
    if packet_type is SocketPacketType.DISCONNECT:
        return not present
    if packet_type is SocketPacketType.CONNECT_ERROR:
        return isinstance(data, (str, dict))
    if packet_type in (SocketPacketType.EVENT, SocketPacketType.BINARY_EVENT):
        if not isinstance(data, list) or not data:
            return False
        name = data[0]
        if isinstance(name, str):
            return name not in RESERVED_EVENTS
        return type(name) is int
    # ACK / BINARY_ACK
    return isinstance(data, list)


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (JSON.parse refuses them)."""
    raise ValueError(name)


# A JSON string (escapes included) and any run of characters that are not brackets: what
# the depth check strips to keep only the structure.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def _check_depth(payload: str) -> None:
    """ProtocolError when arrays and objects in `payload` nest deeper than MAX_DEPTH.

    Called only for a payload with more opening brackets than that: fewer cannot nest past
    it, so the common case costs two scans in C (`str.count`) and nothing more.
    """
    depth = 0
    for char in _NOT_BRACKETS.sub("", _JSON_STRING.sub("", payload)):
        if char == "[" or char == "{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ProtocolError("payload nested too deeply")
        else:
            depth -= 1


def _loads(payload: str) -> Any:
    """The JSON value of `payload` (depth-checked); ProtocolError if it is not JSON."""
    if payload.count("[") + payload.count("{") > MAX_DEPTH:
        _check_depth(payload)
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        # orjson refuses lone surrogates ("\ud83d", half an emoji cut by a browser),
        # which JSON.parse accepts; the application gets them and may refuse the text.
        try:
            return json.loads(payload, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise ProtocolError("invalid payload") from None


def decode_text(text: str) -> tuple[SocketPacket, int]:
    """Decode the text part of a packet; returns it and how many attachments it announced."""
    if text[:2] == "2[":
        # An EVENT to the main namespace without an ack id: most of what clients send.
        event = _loads(text[1:])
        if not _valid_payload(_EVENT, event, True):
            raise ProtocolError("invalid payload")
        return SocketPacket(_EVENT, "/", event), 0
    if not text:
        raise ProtocolError("empty packet")
    packet_type = _TYPES_BY_DIGIT.get(text[0])
    if packet_type is None:
        raise ProtocolError(f"unknown packet type {text[0]!r}")
    i = 1
    end = len(text)
    attachments = 0
    if packet_type in _BINARY_TYPES:
        dash = text.find("-", i)
        count = text[i:dash] if dash != -1 else ""
        if not count.isdigit() or not count.isascii():
            raise ProtocolError("illegal attachments")
        attachments = int(count)
        if attachments == 0:
            raise ProtocolError("binary packet without attachments")
        if attachments > MAX_ATTACHMENTS:
            raise ProtocolError("too many attachments")
        i = dash + 1
    nsp = "/"
    if i < end and text[i] == "/":
        comma = text.find(",", i)
        if comma == -1:
            nsp = text[i:]
            i = end
        else:
            nsp = text[i:comma]
            i = comma + 1
    ack_id: int | None = None
    digits_end = i
    while digits_end < end and "0" <= text[digits_end] <= "9":
        digits_end += 1
    if digits_end > i:
        if digits_end - i > _MAX_ACK_ID_DIGITS:
            raise ProtocolError("invalid ack id")
        ack_id = int(text[i:digits_end])
        i = digits_end
    data: Any = None
    if i < end:
        data = _loads(text[i:])
    if not _valid_payload(packet_type, data, i < end):
        raise ProtocolError("invalid payload")
    if ack_id is None and packet_type in _ACK_TYPES:
        raise ProtocolError("ack without id")
    return SocketPacket(packet_type, nsp, data, ack_id), attachments


class PacketDecoder:
    """Turns a connection's incoming messages into packets, reassembling binary ones.

    `feed` returns a complete packet, or None while attachments are still expected.
    Any malformed input raises ProtocolError; the caller then closes the session.
    """

    __slots__ = ("_buffers", "_expected", "_pending")

    def __init__(self) -> None:
        self._pending: SocketPacket | None = None
        self._expected = 0
        # The attachments received so far; the shared empty tuple between binary packets
        # (one decoder per connection, and most never see one).
        self._buffers: list[bytes] | tuple[()] = ()

    def feed(self, message: str | bytes) -> SocketPacket | None:
        if isinstance(message, str):
            if self._pending is not None:
                raise ProtocolError("got a text packet while waiting for binary attachments")
            packet, attachments = decode_text(message)
            if attachments == 0:
                if packet.type in _BINARY_TYPES:
                    packet.data = _reconstruct(packet.data, [])
                return packet
            self._pending = packet
            self._expected = attachments
            self._buffers = []
            return None
        buffers = self._buffers
        if self._pending is None or not isinstance(buffers, list):
            raise ProtocolError("unexpected binary attachment")
        buffers.append(message)
        if len(buffers) < self._expected:
            return None
        packet = self._pending
        self._pending = None
        self._buffers = ()
        packet.data = _reconstruct(packet.data, buffers)
        packet.attachments = buffers
        return packet
