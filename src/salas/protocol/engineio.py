"""Engine.IO v4 packets and HTTP long-polling payloads (sans-I/O).

An Engine.IO packet is one character for its type followed by its data. Over websocket a
packet is one frame; text packets are `<type><data>` and a binary frame is a MESSAGE packet
carrying raw bytes. Over HTTP long-polling several packets travel in one body separated by
the record separator `\\x1e`, and a binary packet becomes `b<base64>`.

Packets are handled here in their *websocket form*: `str` for a text packet (type digit
included) and `bytes` for a binary message. That is the form the engine queues, so that a
broadcast encoded once can be framed once for websocket recipients and joined into a
payload for polling recipients.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from enum import IntEnum
from typing import NamedTuple

from salas.protocol.errors import ProtocolError

__all__ = [
    "RECORD_SEPARATOR",
    "EnginePacket",
    "PacketType",
    "WirePacket",
    "decode_packet",
    "decode_payload",
    "encode_payload",
]

RECORD_SEPARATOR = "\x1e"

# A packet in websocket form: text ("4hello", "2", "3probe") or a binary message.
WirePacket = str | bytes


class PacketType(IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class EnginePacket(NamedTuple):
    type: PacketType
    data: str | bytes  # "" when the packet carries nothing


_TYPES = {str(t.value): t for t in PacketType}


def decode_packet(wire: WirePacket) -> EnginePacket:
    """Decode one packet in websocket form; bytes are always a binary MESSAGE."""
    if isinstance(wire, bytes):
        return EnginePacket(PacketType.MESSAGE, wire)
    if not wire:
        raise ProtocolError("empty packet")
    packet_type = _TYPES.get(wire[0])
    if packet_type is None:
        raise ProtocolError(f"unknown packet type {wire[0]!r}")
    return EnginePacket(packet_type, wire[1:])


def encode_payload(packets: Sequence[WirePacket]) -> str:
    """Join packets into one long-polling body (binary as `b` + base64)."""
    return RECORD_SEPARATOR.join(
        p if isinstance(p, str) else "b" + base64.b64encode(p).decode("ascii") for p in packets
    )


def decode_payload(body: str) -> list[EnginePacket]:
    """Split a long-polling body into packets; raise ProtocolError on any malformed part."""
    packets: list[EnginePacket] = []
    for part in body.split(RECORD_SEPARATOR):
        if part.startswith("b"):
            try:
                data = base64.b64decode(part[1:], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ProtocolError("invalid base64 in binary packet") from exc
            packets.append(EnginePacket(PacketType.MESSAGE, data))
        else:
            packets.append(decode_packet(part))
    return packets
