"""Property test of `EncodedMessage` (salas.protocol.outgoing): what a broadcast queues for
its recipients decodes, through Engine.IO and then Socket.IO, to the packet it was built from."""

from __future__ import annotations

from hypothesis import given, settings

from salas.protocol import (
    PacketDecoder,
    SocketPacket,
    decode_packet,
    decode_payload,
    encode_payload,
)
from salas.protocol.engineio import PacketType
from salas.protocol.outgoing import EncodedMessage
from tests.protocol.test_socketio_fuzz import as_decoded, packets


@settings(max_examples=200, deadline=None)
@given(packets())
def test_encoded_message_decodes_to_its_packet(packet: SocketPacket) -> None:
    """The packets of an EncodedMessage, sent as they are or joined into a polling payload,
    decode to the original packet."""
    message = EncodedMessage.of_socket_packet(packet)
    for decoded in (
        [decode_packet(p) for p in message.packets],
        decode_payload(encode_payload(message.packets)),
    ):
        decoder = PacketDecoder()
        results = []
        for engine_packet in decoded:
            assert engine_packet.type is PacketType.MESSAGE
            results.append(decoder.feed(engine_packet.data))
        assert results[:-1] == [None] * (len(results) - 1)
        assert results[-1] == as_decoded(packet)
