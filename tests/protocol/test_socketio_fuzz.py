"""Property tests of the Socket.IO codec (salas.protocol.socketio) on arbitrary input.

Any message a client sends, alone or in a sequence with binary attachments, either decodes
or raises ProtocolError — never another exception; an encoded packet decodes back to itself.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.protocol import PacketDecoder, ProtocolError, SocketPacket, SocketPacketType
from salas.protocol.engineio import PacketType, decode_packet
from salas.protocol.socketio import (
    MAX_ATTACHMENTS,
    MAX_DEPTH,
    RESERVED_EVENTS,
    encode_packet,
)

T = SocketPacketType
# Bounded so that the suite stays fast; no deadline (a loaded CI machine is not a failure).
FUZZ = settings(max_examples=300, deadline=None)

# Strings orjson can encode (no lone surrogates).
plain_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    plain_text,
)


def json_values(leaf: st.SearchStrategy[Any] = json_leaf) -> st.SearchStrategy[Any]:
    """JSON-able values: lists and objects of `leaf`; no object looks like a placeholder."""
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(plain_text.filter(lambda k: k != "_placeholder"), inner, max_size=4),
        ),
        max_leaves=12,
    )


# Data that may hold bytes anywhere (sent as attachments).
data_with_bytes = json_values(st.one_of(json_leaf, st.binary(max_size=20)))
namespace = st.one_of(
    st.just("/"), st.text("abcdefghijklmnopqrstuvwxyz0123456789-_/", max_size=10).map("/".__add__)
)
ack_id = st.one_of(st.none(), st.integers(min_value=0, max_value=2**53))
event_name = st.one_of(plain_text.filter(lambda n: n not in RESERVED_EVENTS), st.integers(0, 99))


@st.composite
def packets(draw: st.DrawFn) -> SocketPacket:
    """A valid packet of any type, as the server or a client could send it."""
    kind = draw(st.sampled_from([T.CONNECT, T.DISCONNECT, T.EVENT, T.ACK, T.CONNECT_ERROR]))
    nsp = draw(namespace)
    if kind is T.CONNECT:
        data = draw(st.one_of(st.none(), st.dictionaries(plain_text, json_values(), max_size=3)))
        return SocketPacket(kind, nsp, data)
    if kind is T.DISCONNECT:
        return SocketPacket(kind, nsp)
    if kind is T.CONNECT_ERROR:
        data = draw(st.one_of(plain_text, st.dictionaries(plain_text, json_values(), max_size=3)))
        return SocketPacket(kind, nsp, data)
    args = draw(st.lists(data_with_bytes, max_size=4))
    if kind is T.EVENT:
        return SocketPacket(kind, nsp, [draw(event_name), *args], draw(ack_id))
    return SocketPacket(kind, nsp, args, draw(st.integers(min_value=0, max_value=2**53)))


def as_decoded(packet: SocketPacket) -> SocketPacket:
    """What the decoder gives for `packet`: the BINARY_ type and attachments when it holds bytes."""
    parts = encode_packet(packet)
    attachments = [p for p in parts[1:] if isinstance(p, bytes)]
    kind = packet.type
    if attachments:
        kind = T.BINARY_EVENT if kind is T.EVENT else T.BINARY_ACK
    return SocketPacket(kind, packet.nsp, packet.data, packet.id, attachments)


def feed_all(messages: list[str | bytes]) -> None:
    """Feed `messages` to one decoder until the first ProtocolError (the session then ends)."""
    decoder = PacketDecoder()
    for message in messages:
        try:
            packet = decoder.feed(message)
        except ProtocolError:
            return
        assert packet is None or isinstance(packet, SocketPacket)


def mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    """`text` with each (position, length, replacement) edit applied in turn."""
    for position, length, replacement in edits:
        at = position % (len(text) + 1)
        text = text[:at] + replacement + text[at + length :]
    return text


edit = st.tuples(
    st.integers(0, 10_000), st.integers(0, 3), st.text(st.sampled_from('0123456-/,[]{}"\\:b'))
)


# -- any input decodes or raises ProtocolError ---------------------------------------------


@FUZZ
@given(st.text(max_size=200))
def test_any_text_decodes_or_raises_protocol_error(text: str) -> None:
    """Any text message decodes or raises ProtocolError."""
    feed_all([text])


@FUZZ
@given(
    st.builds(
        lambda kind, rest: kind + rest,
        st.sampled_from("0123456"),
        st.text(st.sampled_from('0123456789-/,[]{}"\\:ab_ \x00') | st.characters(), max_size=80),
    )
)
def test_text_with_a_packet_type_decodes_or_raises_protocol_error(text: str) -> None:
    """Text after a valid type digit (attachment counts, namespaces, ids, JSON) never crashes."""
    feed_all([text])


@FUZZ
@given(packets(), st.lists(edit, min_size=1, max_size=4))
def test_mutated_packets_decode_or_raise_protocol_error(
    packet: SocketPacket, edits: list[tuple[int, int, str]]
) -> None:
    """A valid packet's text with characters inserted, removed or replaced never crashes."""
    text, *attachments = encode_packet(packet)
    assert isinstance(text, str)
    feed_all([mutate(text, edits), *attachments])


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=20)), max_size=8))
def test_message_sequences_decode_or_raise_protocol_error(messages: list[str | bytes]) -> None:
    """Any sequence of text and binary messages decodes or raises ProtocolError."""
    feed_all(messages)


@st.composite
def binary_packets_with_hostile_placeholders(draw: st.DrawFn) -> list[str | bytes]:
    """A BINARY_EVENT/ACK whose placeholders and attachment count may not match."""
    count = draw(st.integers(1, 5))
    placeholder = st.fixed_dictionaries(
        {"_placeholder": st.one_of(st.just(True), json_leaf), "num": json_leaf | st.integers(-3, 8)}
    )
    data = draw(st.lists(json_values(st.one_of(json_leaf, placeholder)), max_size=4))
    kind = draw(st.sampled_from("56"))
    body = orjson.dumps(["event", *data] if kind == "5" else data).decode()
    text = f"{kind}{count}-{draw(st.sampled_from(['', '/chat,']))}{'1' if kind == '6' else ''}"
    buffers = draw(st.lists(st.binary(max_size=8), max_size=count + 1))
    return [text + body, *buffers]


@FUZZ
@given(binary_packets_with_hostile_placeholders())
def test_binary_reconstruction_decodes_or_raises_protocol_error(
    messages: list[str | bytes],
) -> None:
    """Placeholders out of range, of the wrong type or too few attachments: only ProtocolError."""
    feed_all(messages)


def test_attachment_count_over_limit_is_protocol_error() -> None:
    """The largest attachment count is accepted, one more is refused."""
    assert PacketDecoder().feed(f'5{MAX_ATTACHMENTS}-["e"]') is None
    feed_all([f'5{MAX_ATTACHMENTS + 1}-["e"]'])


@FUZZ
@given(st.text(st.sampled_from('[]{}"\\,:1a '), max_size=120))
def test_bracket_soup_decodes_or_raises_protocol_error(soup: str) -> None:
    """Brackets, quotes and escapes in any order (what the depth check scans) never crash."""
    feed_all(['2["m",' + soup + "]", "0" + soup, "3" + "1" + soup])


def depth(value: Any) -> int:
    """How deep lists and dicts nest in `value` (0 for a leaf)."""
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@FUZZ
@given(json_values(), st.integers(0, MAX_DEPTH + 3), st.sampled_from(["[", '{"k":']))
def test_depth_limit_is_exact_for_valid_json(value: Any, extra: int, opener: str) -> None:
    """Valid JSON data decodes when it nests at most MAX_DEPTH deep, else raises ProtocolError."""
    closer = "]" if opener == "[" else "}"
    data = opener * extra + json.dumps(value) + closer * extra
    wire = '2["m",' + data + "]"
    if 1 + extra + depth(value) <= MAX_DEPTH:
        packet = PacketDecoder().feed(wire)
        assert packet is not None and packet.data[0] == "m"
    else:
        try:
            PacketDecoder().feed(wire)
        except ProtocolError as exc:
            assert "nested too deeply" in str(exc)
        else:
            raise AssertionError("data nested past MAX_DEPTH was accepted")


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=60), st.binary(max_size=20)), max_size=8))
def test_incoming_websocket_messages_as_the_engine_receives_them(
    messages: list[str | bytes],
) -> None:
    """Each websocket message through Engine.IO decoding, then MESSAGE data through the
    Socket.IO decoder (the engine's and the server's path): only ProtocolError is raised."""
    decoder = PacketDecoder()
    for message in messages:
        try:
            packet = decode_packet(message)
            if packet.type is PacketType.MESSAGE:
                decoder.feed(packet.data)
        except ProtocolError:
            return


# -- round trips ---------------------------------------------------------------------------


@FUZZ
@given(packets())
def test_encode_then_decode_is_identity(packet: SocketPacket) -> None:
    """A packet encoded (text and attachments) and fed back decodes to the same packet."""
    messages = encode_packet(packet)
    decoder = PacketDecoder()
    for message in messages[:-1]:
        assert decoder.feed(message) is None
    assert decoder.feed(messages[-1]) == as_decoded(packet)
