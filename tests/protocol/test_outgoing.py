"""A message encoded once for many recipients (salas.protocol.outgoing)."""

from __future__ import annotations

from salas.protocol import SocketPacket, SocketPacketType, decode_payload, encode_payload
from salas.protocol.engineio import PacketType
from salas.protocol.outgoing import (
    OFFSETS_NONE,
    OFFSETS_TAGGED,
    OFFSETS_TRAILING,
    EncodedMessage,
)
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


def _broadcast(data: list[object], stamp: str, nsp: str = "/") -> EncodedMessage:
    packet = SocketPacket(SocketPacketType.EVENT, nsp, list(data))
    if stamp:
        packet.data.append(stamp)
    return EncodedMessage.of_broadcast(packet, stamp)


def test_logged_broadcast_loses_its_offset_for_offsets_none_only() -> None:
    """A logged broadcast (ending with its offset) is sent without it to OFFSETS_NONE
    sockets, built once and kept; trailing and tagged sockets get the message itself."""
    message = _broadcast(["said", "hi"], "17")
    assert message.packets == ['42["said","hi","17"]']
    plain = message.for_mode(OFFSETS_NONE)
    assert plain.packets == ['42["said","hi"]'] and plain.stamp is None
    assert message.for_mode(OFFSETS_NONE) is plain
    assert message.for_mode(OFFSETS_TRAILING) is message
    assert message.for_mode(OFFSETS_TAGGED) is message


def test_unlogged_broadcast_gains_an_empty_offset_for_tagged_only() -> None:
    """A volatile broadcast (no offset) ends with "" for OFFSETS_TAGGED sockets only."""
    message = _broadcast(["typing", {"on": True}], "")
    assert message.for_mode(OFFSETS_TAGGED).packets == ['42["typing",{"on":true},""]']
    assert message.for_mode(OFFSETS_NONE) is message
    assert message.for_mode(OFFSETS_TRAILING) is message


def test_other_form_of_a_message_from_another_process() -> None:
    """A message known only by its packets (from the Redis adapter), binary attachments and
    a namespace included, is decoded to build its other form."""
    sent = _broadcast(["up", b"\x01", "x"], "5", "/chat")
    received = EncodedMessage(list(sent.packets), "5")
    assert received.for_mode(OFFSETS_NONE).packets == [
        '451-/chat,["up",{"_placeholder":true,"num":0},"x"]',
        b"\x01",
    ]


def test_a_message_without_stamp_has_one_form() -> None:
    """Direct emits and broadcasts without recovery: every mode gets the message itself."""
    message = EncodedMessage.of_socket_packet(SocketPacket(SocketPacketType.EVENT, "/", ["a"]))
    assert message.odd_mode is None
    assert all(message.for_mode(m) is message for m in (OFFSETS_NONE, OFFSETS_TAGGED))


def test_unreadable_message_from_another_process_is_sent_as_it_is() -> None:
    """Packets this process cannot decode (hostile or corrupt) never break a broadcast:
    every recipient gets them unchanged."""
    received = EncodedMessage(["42not json", b"\x00"], "9")
    assert received.for_mode(OFFSETS_NONE) is received
