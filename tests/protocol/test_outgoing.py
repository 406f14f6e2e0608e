"""A message encoded once for many recipients (salas.protocol.outgoing)."""

from __future__ import annotations

from salas.protocol import SocketPacket, SocketPacketType, decode_payload, encode_payload
from salas.protocol.engineio import PacketType
from salas.protocol.outgoing import EncodedMessage
from salas.protocol.wsframe import binary_frame, text_frame


def test_of_socket_packet_text() -> None:
    """A text Socket.IO packet becomes one Engine.IO MESSAGE packet: "4" + its encoding."""
    message = EncodedMessage.of_socket_packet(
        SocketPacket(SocketPacketType.EVENT, "/", ["hey", "Jude"])
    )
    assert message.packets == ['42["hey","Jude"]']


def test_of_socket_packet_binary() -> None:
    """A binary packet becomes the "4"-prefixed text plus one bytes packet per attachment."""
    message = EncodedMessage.of_socket_packet(
        SocketPacket(SocketPacketType.EVENT, "/admin", ["up", b"\x01", b"\x02\x03"], 4)
    )
    assert message.packets == [
        '452-/admin,4["up",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        b"\x01",
        b"\x02\x03",
    ]


def test_frames_are_every_packet_framed_in_order() -> None:
    """frames is the concatenation of a text frame per str and a binary frame per bytes."""
    message = EncodedMessage(["4a", b"\x00\x01", "4" + "b" * 300])
    assert message.frames == text_frame("4a") + binary_frame(b"\x00\x01") + text_frame(
        "4" + "b" * 300
    )


def test_frames_built_once() -> None:
    """The second access returns the very same bytes object (built once, shared by all)."""
    message = EncodedMessage.of_socket_packet(SocketPacket(SocketPacketType.EVENT, "/", ["x"]))
    first = message.frames
    assert message.frames is first
    assert message.frames is first


def test_packets_for_polling_payload() -> None:
    """The packets join into a polling payload that decodes back to the same messages."""
    message = EncodedMessage.of_socket_packet(
        SocketPacket(SocketPacketType.EVENT, "/", ["bin", b"\x01\x02\x03\x04"])
    )
    body = encode_payload(message.packets)
    assert body == '451-["bin",{"_placeholder":true,"num":0}]\x1ebAQIDBA=='
    decoded = decode_payload(body)
    assert [p.type for p in decoded] == [PacketType.MESSAGE, PacketType.MESSAGE]
    assert decoded[0].data == '51-["bin",{"_placeholder":true,"num":0}]'
    assert decoded[1].data == b"\x01\x02\x03\x04"


def test_empty_message() -> None:
    """A message without packets frames to nothing."""
    assert EncodedMessage([]).frames == b""
