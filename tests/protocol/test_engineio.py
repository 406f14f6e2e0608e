"""Engine.IO v4 packets and long-polling payloads (salas.protocol.engineio)."""

from __future__ import annotations

import pytest

from salas.protocol import ProtocolError
from salas.protocol.engineio import (
    RECORD_SEPARATOR,
    EnginePacket,
    PacketType,
    decode_packet,
    decode_payload,
    encode_payload,
)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ('0{"sid":"abc"}', EnginePacket(PacketType.OPEN, '{"sid":"abc"}')),
        ("1", EnginePacket(PacketType.CLOSE, "")),
        ("2", EnginePacket(PacketType.PING, "")),
        ("2probe", EnginePacket(PacketType.PING, "probe")),
        ("3", EnginePacket(PacketType.PONG, "")),
        ("3probe", EnginePacket(PacketType.PONG, "probe")),
        ("4hello", EnginePacket(PacketType.MESSAGE, "hello")),
        ("4", EnginePacket(PacketType.MESSAGE, "")),
        ("5", EnginePacket(PacketType.UPGRADE, "")),
        ("6", EnginePacket(PacketType.NOOP, "")),
    ],
)
def test_decode_each_text_packet_type(wire: str, expected: EnginePacket) -> None:
    """Each of the seven packet types decodes from its digit, with the rest as its data."""
    packet = decode_packet(wire)
    assert packet == expected
    assert packet.type is expected.type


def test_decode_text_packet_keeps_unicode_data() -> None:
    """The data after the type digit is returned unchanged, non-ASCII included."""
    assert decode_packet("4héllo \U0001f600") == (PacketType.MESSAGE, "héllo \U0001f600")


def test_decode_bytes_is_binary_message() -> None:
    """A binary websocket message is a MESSAGE packet carrying the raw bytes."""
    packet = decode_packet(b"\x01\x02\x03")
    assert packet.type is PacketType.MESSAGE
    assert packet.data == b"\x01\x02\x03"
    assert decode_packet(b"") == (PacketType.MESSAGE, b"")


def test_decode_empty_text_packet_is_error() -> None:
    """An empty text packet has no type and is refused."""
    with pytest.raises(ProtocolError):
        decode_packet("")


@pytest.mark.parametrize("wire", ["7", "9hello", "xyz", "b", "-1", " 4hello"])
def test_decode_unknown_type_is_error(wire: str) -> None:
    """A first character that is not a known packet type digit is refused."""
    with pytest.raises(ProtocolError):
        decode_packet(wire)


def test_protocol_error_is_value_error() -> None:
    """ProtocolError is a ValueError, so generic input validation catches it too."""
    assert issubclass(ProtocolError, ValueError)


def test_encode_payload_single_packet() -> None:
    """One packet is the body as is, without separator."""
    assert encode_payload(["4hello"]) == "4hello"


def test_encode_payload_joins_with_record_separator() -> None:
    """Several packets are joined with \\x1e (the README's `4hello\\x1e2\\x1e4world`)."""
    assert RECORD_SEPARATOR == "\x1e"
    assert encode_payload(["4hello", "2", "4world"]) == "4hello\x1e2\x1e4world"


def test_encode_payload_binary_as_b_base64() -> None:
    """Binary packets become `b` + base64 (the README's `4hello\\x1ebAQIDBA==`)."""
    assert encode_payload(["4hello", b"\x01\x02\x03\x04"]) == "4hello\x1ebAQIDBA=="
    assert encode_payload([b""]) == "b"


def test_encode_payload_empty_list() -> None:
    """No packets make an empty body."""
    assert encode_payload([]) == ""


def test_decode_payload_splits_on_record_separator() -> None:
    """A body with several packets splits into them, in order."""
    assert decode_payload("4hello\x1e2\x1e4world") == [
        (PacketType.MESSAGE, "hello"),
        (PacketType.PING, ""),
        (PacketType.MESSAGE, "world"),
    ]


def test_decode_payload_binary_from_base64() -> None:
    """`b` + base64 decodes to a binary MESSAGE with the original bytes."""
    packets = decode_payload("4hello\x1ebAQIDBA==")
    assert packets == [(PacketType.MESSAGE, "hello"), (PacketType.MESSAGE, b"\x01\x02\x03\x04")]
    assert isinstance(packets[1].data, bytes)


def test_payload_round_trip() -> None:
    """encode_payload then decode_payload gives back every packet, text and binary."""
    wire: list[str | bytes] = ["0{}", "4a\x1fb", b"\x00\xff" * 40, "3probe", "6", b"x"]
    decoded = decode_payload(encode_payload(wire))
    assert [p.data for p in decoded] == ["{}", "a\x1fb", b"\x00\xff" * 40, "probe", "", b"x"]
    assert [p.type for p in decoded] == [
        PacketType.OPEN,
        PacketType.MESSAGE,
        PacketType.MESSAGE,
        PacketType.PONG,
        PacketType.NOOP,
        PacketType.MESSAGE,
    ]


def test_decode_payload_empty_body_is_error() -> None:
    """An empty body holds one empty packet, which is refused."""
    with pytest.raises(ProtocolError):
        decode_payload("")


@pytest.mark.parametrize("body", ["4a\x1e", "\x1e4a", "4a\x1e\x1e4b"])
def test_decode_payload_empty_part_is_error(body: str) -> None:
    """An empty packet between separators (or at either end) is refused."""
    with pytest.raises(ProtocolError):
        decode_payload(body)


@pytest.mark.parametrize("body", ["4ok\x1e8nope", "x"])
def test_decode_payload_unknown_type_is_error(body: str) -> None:
    """An unknown packet type anywhere in the body is refused."""
    with pytest.raises(ProtocolError):
        decode_payload(body)


@pytest.mark.parametrize(
    "part", ["b!!!!", "bAQIDBA=", "bAQ=ID", "4a\x1ebA Q==", "b\u00e9\u00e9\u00e9\u00e9"]
)
def test_decode_payload_bad_base64_is_error(part: str) -> None:
    """Invalid base64 after `b` (bad characters, bad padding, non-ASCII) is a ProtocolError."""
    with pytest.raises(ProtocolError):
        decode_payload(part)
