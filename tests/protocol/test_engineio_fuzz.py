"""Property tests of the Engine.IO codecs (salas.protocol.engineio) on arbitrary input.

Whatever a client sends, decoding either succeeds or raises ProtocolError (the one error the
engine turns into closing that session); what the encoder writes decodes back unchanged.
"""

from __future__ import annotations

import base64
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from salas.protocol import ProtocolError
from salas.protocol.engineio import (
    RECORD_SEPARATOR,
    EnginePacket,
    PacketType,
    decode_packet,
    decode_payload,
    encode_payload,
)

# Bounded so that the suite stays fast; no deadline (a loaded CI machine is not a failure).
FUZZ = settings(max_examples=300, deadline=None)

# Text biased toward what the codecs look at: type digits, the separator, "b" and base64.
wire_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("0123456789b\x1e=+/-,[]{}\"'\\"),
        st.characters(),
    ),
    max_size=200,
)
# A text packet as the engine queues it: a type digit and data without the separator.
text_packet = st.builds(
    lambda kind, data: str(int(kind)) + data,
    st.sampled_from(PacketType),
    st.text(st.characters(blacklist_characters=RECORD_SEPARATOR), max_size=50),
)
wire_packet = st.one_of(text_packet, st.binary(max_size=50))


def expected(packet: str | bytes) -> EnginePacket:
    """What decoding `packet` must give."""
    if isinstance(packet, bytes):
        return EnginePacket(PacketType.MESSAGE, packet)
    return EnginePacket(PacketType(int(packet[0])), packet[1:])


@FUZZ
@given(st.one_of(wire_text, st.binary(max_size=200)))
def test_decode_packet_decodes_or_raises_protocol_error(wire: str | bytes) -> None:
    """Any websocket message either decodes to a packet or raises ProtocolError."""
    try:
        packet = decode_packet(wire)
    except ProtocolError:
        return
    assert isinstance(packet.type, PacketType)


@FUZZ
@given(wire_text)
def test_decode_payload_decodes_or_raises_protocol_error(body: str) -> None:
    """Any long-polling body either splits into packets or raises ProtocolError."""
    try:
        packets = decode_payload(body)
    except ProtocolError:
        return
    assert len(packets) == body.count(RECORD_SEPARATOR) + 1


@FUZZ
@given(st.lists(st.one_of(wire_text, st.binary(max_size=40).map(base64.b64encode)), max_size=8))
def test_decode_payload_of_mixed_base64_parts(parts: list[str | bytes]) -> None:
    """Bodies mixing "b"+base64 parts (valid or not) with text decode or raise ProtocolError."""
    body = RECORD_SEPARATOR.join(
        "b" + part.decode() if isinstance(part, bytes) else part for part in parts
    )
    with contextlib.suppress(ProtocolError):
        decode_payload(body)


@FUZZ
@given(st.binary(max_size=300))
def test_polling_body_bytes_decode_or_fail_cleanly(body: bytes) -> None:
    """A POST body as bytes: UTF-8 decoding or payload decoding fails, nothing else raises."""
    with contextlib.suppress(UnicodeDecodeError, ProtocolError):
        decode_payload(body.decode())


@FUZZ
@given(wire_packet)
def test_packet_round_trip(packet: str | bytes) -> None:
    """A packet in websocket form decodes to its type and data."""
    assert decode_packet(packet) == expected(packet)


@FUZZ
@given(st.lists(wire_packet, min_size=1, max_size=10))
def test_payload_round_trip(packets: list[str | bytes]) -> None:
    """encode_payload then decode_payload gives back every packet, binary ones included."""
    assert decode_payload(encode_payload(packets)) == [expected(p) for p in packets]
