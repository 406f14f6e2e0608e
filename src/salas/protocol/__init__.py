"""Sans-I/O codecs: Engine.IO packets and payloads, Socket.IO packets, websocket frames.

Pure functions and small state machines; nothing here touches asyncio or sockets.
"""

from salas.protocol.engineio import (
    EnginePacket,
    PacketType,
    WirePacket,
    decode_packet,
    decode_payload,
    encode_payload,
)
from salas.protocol.errors import ProtocolError
from salas.protocol.socketio import (
    PacketDecoder,
    SocketPacket,
    SocketPacketType,
    encode_packet,
    has_binary,
)
from salas.protocol.wsframe import binary_frame, text_frame

__all__ = [
    "EnginePacket",
    "PacketDecoder",
    "PacketType",
    "ProtocolError",
    "SocketPacket",
    "SocketPacketType",
    "WirePacket",
    "binary_frame",
    "decode_packet",
    "decode_payload",
    "encode_packet",
    "encode_payload",
    "has_binary",
    "text_frame",
]
