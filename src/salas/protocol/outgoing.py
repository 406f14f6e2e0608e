"""A message encoded once for any number of recipients.

A broadcast builds one `EncodedMessage`; websocket recipients all get the same frame bytes
(built on first use) and long-polling recipients get its packets appended to their payload.
"""

from __future__ import annotations

from salas.protocol.engineio import WirePacket
from salas.protocol.socketio import SocketPacket, encode_packet
from salas.protocol.wsframe import binary_frame, text_frame

__all__ = ["EncodedMessage"]


class EncodedMessage:
    __slots__ = ("frames", "packets")

    def __init__(self, packets: list[WirePacket]) -> None:
        self.packets = packets  # Engine.IO packets in websocket form
        # All packets as websocket frames, concatenated: built here, once, because the
        # per-recipient step reads it for every websocket recipient.
        self.frames = b"".join(
            text_frame(p) if isinstance(p, str) else binary_frame(p) for p in packets
        )

    @classmethod
    def of_socket_packet(cls, packet: SocketPacket) -> EncodedMessage:
        """The Engine.IO MESSAGE packets carrying a Socket.IO packet and its attachments."""
        text, *attachments = encode_packet(packet)
        return cls(["4" + str(text), *attachments])
