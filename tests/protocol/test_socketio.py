"""Socket.IO v5 packets with binary attachments (salas.protocol.socketio).

The decoder cases include every encoded example of the socket.io-protocol README
("Packet encoding" section and the sample session).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from salas.protocol import (
    PacketDecoder,
    ProtocolError,
    SocketPacket,
    SocketPacketType,
    encode_packet,
    has_binary,
)
from salas.protocol.socketio import MAX_ATTACHMENTS, MAX_DEPTH

T = SocketPacketType


def decode_all(*messages: str | bytes) -> SocketPacket:
    """Feed `messages` to a fresh decoder; only the last may complete the packet."""
    decoder = PacketDecoder()
    for message in messages[:-1]:
        assert decoder.feed(message) is None
    packet = decoder.feed(messages[-1])
    assert packet is not None
    return packet


# -- encoding -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (SocketPacket(T.CONNECT), "0"),
        (SocketPacket(T.CONNECT, "/", {"token": "123"}), '0{"token":"123"}'),
        (SocketPacket(T.CONNECT, "/admin"), "0/admin,"),
        (
            SocketPacket(T.CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}),
            '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}',
        ),
        (SocketPacket(T.DISCONNECT), "1"),
        (SocketPacket(T.DISCONNECT, "/admin"), "1/admin,"),
        (SocketPacket(T.EVENT, "/", ["foo"]), '2["foo"]'),
        (SocketPacket(T.EVENT, "/admin", ["bar"]), '2/admin,["bar"]'),
        (SocketPacket(T.EVENT, "/", ["foo"], 12), '212["foo"]'),
        (SocketPacket(T.EVENT, "/admin", ["foo", 1, None], 0), '2/admin,0["foo",1,null]'),
        (SocketPacket(T.ACK, "/", [], 12), "312[]"),
        (SocketPacket(T.ACK, "/admin", ["bar"], 13), '3/admin,13["bar"]'),
        (
            SocketPacket(T.CONNECT_ERROR, "/", {"message": "Not authorized"}),
            '4{"message":"Not authorized"}',
        ),
        (SocketPacket(T.CONNECT_ERROR, "/admin", "oops"), '4/admin,"oops"'),
    ],
)
def test_encode_text_packets(packet: SocketPacket, expected: str) -> None:
    """Each packet type encodes as `<type>[<nsp>,][<id>][<json>]` with no attachments."""
    assert encode_packet(packet) == [expected]


def test_encode_unicode_data_as_utf8_json() -> None:
    """Non-ASCII data is written as JSON text (not escaped bytes) and decodes back."""
    (text,) = encode_packet(SocketPacket(T.EVENT, "/", ["msg", "héllo ☃"]))
    assert text == '2["msg","héllo ☃"]'
    assert decode_all(text).data == ["msg", "héllo ☃"]


def test_encode_event_with_bytes_becomes_binary_event() -> None:
    """An EVENT holding bytes is sent as BINARY_EVENT with a placeholder (README example)."""
    out = encode_packet(SocketPacket(T.EVENT, "/", ["baz", b"\x01\x02\x03\x04"]))
    assert out == ['51-["baz",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04"]


def test_encode_multiple_attachments_with_namespace() -> None:
    """Several bytes values are numbered in order and follow the text (README example)."""
    out = encode_packet(SocketPacket(T.EVENT, "/admin", ["baz", b"\x01\x02", b"\x03\x04"]))
    assert out == [
        '52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        b"\x01\x02",
        b"\x03\x04",
    ]


def test_encode_ack_with_bytes_becomes_binary_ack() -> None:
    """An ACK holding bytes is sent as BINARY_ACK, its id after the count (README example)."""
    out = encode_packet(SocketPacket(T.ACK, "/", ["bar", b"\x01\x02\x03\x04"], 15))
    assert out == ['61-15["bar",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04"]


def test_encode_nested_bytes_deconstructed_depth_first() -> None:
    """Bytes nested in dicts, lists and tuples become placeholders; attachments keep order."""
    data = ["ev", {"a": [b"A", {"b": bytearray(b"B")}], "t": (1, memoryview(b"C"))}, "x"]
    text, *attachments = encode_packet(SocketPacket(T.EVENT, "/chat", data, 7))
    assert isinstance(text, str)
    assert text.startswith("53-/chat,7[")
    payload = orjson.loads(text[len("53-/chat,7") :])
    ph = [{"_placeholder": True, "num": n} for n in range(3)]
    assert payload == ["ev", {"a": [ph[0], {"b": ph[1]}], "t": [1, ph[2]]}, "x"]
    assert attachments == [b"A", b"B", b"C"]
    assert all(type(a) is bytes for a in attachments)


def test_encode_does_not_mutate_packet_data() -> None:
    """Deconstruction works on a copy: the caller's data still holds the bytes."""
    data = ["ev", {"blob": b"xyz"}]
    packet = SocketPacket(T.EVENT, "/", data)
    encode_packet(packet)
    assert data == ["ev", {"blob": b"xyz"}]
    assert packet.type is T.EVENT


def test_encode_explicit_binary_type_without_bytes() -> None:
    """A packet typed BINARY_EVENT with no bytes still announces its (zero) attachments."""
    assert encode_packet(SocketPacket(T.BINARY_EVENT, "/", ["x"])) == ['50-["x"]']


def test_binary_round_trip_through_decoder() -> None:
    """What encode_packet emits, fed to a decoder, gives back the same data and bytes."""
    data = ["up", {"file": b"\x00" * 300, "parts": [b"a", b"b"]}, 3]
    wire = encode_packet(SocketPacket(T.EVENT, "/files", data, 99))
    packet = decode_all(*wire)
    assert packet.type is T.BINARY_EVENT
    assert packet.nsp == "/files"
    assert packet.id == 99
    assert packet.data == data
    assert packet.attachments == [b"\x00" * 300, b"a", b"b"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"", True),
        (bytearray(b"x"), True),
        (memoryview(b"x"), True),
        (["a", [1, {"k": b"x"}]], True),
        (("t", b"x"), True),
        ({"k": {"n": [b"x"]}}, True),
        (["a", 1, None, {"k": "v"}], False),
        ({b"key-only": 1}, False),
        ("bytes-looking str", False),
        (None, False),
    ],
)
def test_has_binary(value: Any, expected: bool) -> None:
    """has_binary finds bytes at any depth in lists, tuples and dict values (not keys)."""
    assert has_binary(value) is expected


# -- decoding: the README's examples ----------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("0", SocketPacket(T.CONNECT, "/")),
        ("0/admin,", SocketPacket(T.CONNECT, "/admin")),
        (
            '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}',
            SocketPacket(T.CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}),
        ),
        ('0/admin,{"token":"123"}', SocketPacket(T.CONNECT, "/admin", {"token": "123"})),
        (
            '4{"message":"Not authorized"}',
            SocketPacket(T.CONNECT_ERROR, "/", {"message": "Not authorized"}),
        ),
        ('2["foo"]', SocketPacket(T.EVENT, "/", ["foo"])),
        ('2/admin,["bar"]', SocketPacket(T.EVENT, "/admin", ["bar"])),
        ('212["foo"]', SocketPacket(T.EVENT, "/", ["foo"], 12)),
        ("312[]", SocketPacket(T.ACK, "/", [], 12)),
        ('3/admin,13["bar"]', SocketPacket(T.ACK, "/admin", ["bar"], 13)),
        ('2/admin,13["foo"]', SocketPacket(T.EVENT, "/admin", ["foo"], 13)),
        ('2["hey","Jude"]', SocketPacket(T.EVENT, "/", ["hey", "Jude"])),
        ('2["hello"]', SocketPacket(T.EVENT, "/", ["hello"])),
        ("0/admin,", SocketPacket(T.CONNECT, "/admin")),
        ('2/admin,1["tellme"]', SocketPacket(T.EVENT, "/admin", ["tellme"], 1)),
        ("1", SocketPacket(T.DISCONNECT, "/")),
        ("1/admin,", SocketPacket(T.DISCONNECT, "/admin")),
    ],
)
def test_decode_readme_text_examples(wire: str, expected: SocketPacket) -> None:
    """Every text-only example of the socket.io-protocol README decodes to its packet."""
    packet = decode_all(wire)
    assert packet == expected
    assert packet.type is expected.type


def test_decode_readme_binary_event() -> None:
    """README: `51-["baz",{placeholder 0}]` + <01 02 03 04> is BINARY_EVENT ["baz", bytes]."""
    packet = decode_all('51-["baz",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04")
    assert packet == SocketPacket(
        T.BINARY_EVENT, "/", ["baz", b"\x01\x02\x03\x04"], None, [b"\x01\x02\x03\x04"]
    )


def test_decode_readme_multiple_attachments() -> None:
    """README: two attachments in /admin are put back in placeholder order."""
    packet = decode_all(
        '52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        b"\x01\x02",
        b"\x03\x04",
    )
    assert packet.type is T.BINARY_EVENT
    assert packet.nsp == "/admin"
    assert packet.data == ["baz", b"\x01\x02", b"\x03\x04"]


def test_decode_readme_binary_event_with_ack_id() -> None:
    """README: a BINARY_EVENT with id 14 keeps its id after reassembly."""
    packet = decode_all('51-14["foo",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04")
    assert (packet.type, packet.id, packet.data) == (
        T.BINARY_EVENT,
        14,
        ["foo", b"\x01\x02\x03\x04"],
    )


def test_decode_readme_binary_ack() -> None:
    """README: `61-15["bar",{placeholder 0}]` + bytes is BINARY_ACK id 15."""
    packet = decode_all('61-15["bar",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04")
    assert (packet.type, packet.nsp, packet.id, packet.data) == (
        T.BINARY_ACK,
        "/",
        15,
        ["bar", b"\x01\x02\x03\x04"],
    )


def test_decode_readme_sample_session_binary_ack() -> None:
    """README sample session: `61-/admin,1[{placeholder 0}]` + binary in namespace /admin."""
    packet = decode_all('61-/admin,1[{"_placeholder":true,"num":0}]', b"\xde\xad")
    assert (packet.type, packet.nsp, packet.id, packet.data) == (
        T.BINARY_ACK,
        "/admin",
        1,
        [b"\xde\xad"],
    )


def test_decode_event_with_numeric_first_element() -> None:
    """An EVENT whose first element is a number is accepted (as Node's parser does)."""
    assert decode_all("2[1,2]").data == [1, 2]


def test_decode_connect_error_string() -> None:
    """CONNECT_ERROR may carry a plain string."""
    assert decode_all('4/admin,"nope"') == SocketPacket(T.CONNECT_ERROR, "/admin", "nope")


def test_decode_large_ack_id() -> None:
    """An ack id of 16 digits (fits 2**53) is accepted as an int."""
    assert decode_all('29007199254740991["a"]').id == 9007199254740991


# -- binary reassembly across messages -----------------------------------------------------


def test_decoder_reassembles_then_resets() -> None:
    """A binary packet waits for all attachments, then the decoder accepts a new packet."""
    decoder = PacketDecoder()
    assert (
        decoder.feed('52-["x",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]') is None
    )
    assert decoder.feed(b"first") is None
    packet = decoder.feed(b"second")
    assert packet is not None
    assert packet.data == ["x", b"second", b"first"]
    assert packet.attachments == [b"first", b"second"]
    assert decoder.feed('2["next"]') == SocketPacket(T.EVENT, "/", ["next"])
    again = decoder.feed('51-["y",{"_placeholder":true,"num":0}]')
    assert again is None
    packet2 = decoder.feed(b"3")
    assert packet2 is not None
    assert packet2.data == ["y", b"3"]


def test_binary_message_without_announced_packet_is_error() -> None:
    """An attachment nobody announced is a ProtocolError: on a new decoder, and after the
    announced ones of a packet have all arrived."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(b"stray")
    decoder = PacketDecoder()
    assert decoder.feed('51-["x",{"_placeholder":true,"num":0}]') is None
    assert decoder.feed(b"a") is not None
    with pytest.raises(ProtocolError):
        decoder.feed(b"one too many")


def test_decoder_same_attachment_referenced_twice() -> None:
    """Two placeholders with the same num both resolve to that attachment."""
    packet = decode_all(
        '51-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]', b"z"
    )
    assert packet.data == ["x", b"z", b"z"]


def test_decoder_binary_packet_with_zero_attachments() -> None:
    """A BINARY_EVENT announcing `0-` attachments is refused, as the reference server does."""
    with pytest.raises(ProtocolError):
        decode_all('50-["x"]')


def test_decoder_accepts_max_attachments() -> None:
    """Exactly MAX_ATTACHMENTS attachments are accepted."""
    n = MAX_ATTACHMENTS
    refs = ",".join(f'{{"_placeholder":true,"num":{i}}}' for i in range(n))
    packet = decode_all(f'5{n}-["x",{refs}]', *[bytes([i % 256]) for i in range(n)])
    assert len(packet.data) == n + 1
    assert packet.data[-1] == bytes([(n - 1) % 256])


# -- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire",
    [
        "",  # empty
        "7",  # unknown type
        "9[]",
        "x",
        "-1",
    ],
)
def test_unknown_or_empty_type_is_error(wire: str) -> None:
    """An empty packet or a type outside 0..6 is a ProtocolError."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


@pytest.mark.parametrize(
    "wire",
    ['2["foo"', "2[foo]", "2{", '0{"a":}', "3/admin,1[", "2/admin,not json", "2['a']"],
)
def test_bad_json_is_error(wire: str) -> None:
    """Data that is not valid JSON is a ProtocolError."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


@pytest.mark.parametrize(
    "wire",
    [
        '5a-["x"]',
        '5-["x"]',
        '51["x",{"_placeholder":true,"num":0}]',  # no dash
        '5 1-["x"]',
        '5\u00b2-["x"]',  # a unicode digit
        '6x-1["x"]',
        '5+1-["x"]',
    ],
)
def test_non_numeric_attachment_count_is_error(wire: str) -> None:
    """A BINARY_ packet without a plain decimal count before `-` is a ProtocolError."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


def test_too_many_attachments_is_error() -> None:
    """Announcing more than MAX_ATTACHMENTS is refused before anything is buffered."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(f'5{MAX_ATTACHMENTS + 1}-["x"]')
    with pytest.raises(ProtocolError):
        PacketDecoder().feed('599999999999999999999-["x"]')


@pytest.mark.parametrize(
    ("text", "attachments"),
    [
        ('51-["x",{"_placeholder":true,"num":1}]', [b"a"]),
        ('51-["x",{"_placeholder":true,"num":-1}]', [b"a"]),
        ('52-["x",{"_placeholder":true,"num":5}]', [b"a", b"b"]),
        ('51-["x",{"_placeholder":true,"num":"0"}]', [b"a"]),
        ('51-["x",{"_placeholder":true,"num":0.0}]', [b"a"]),
        ('51-["x",{"_placeholder":true,"num":true}]', [b"a"]),
        ('51-["x",{"_placeholder":true}]', [b"a"]),
    ],
)
def test_placeholder_out_of_range_is_error(text: str, attachments: list[bytes]) -> None:
    """A placeholder whose num is not an index into the attachments is a ProtocolError."""
    decoder = PacketDecoder()
    assert decoder.feed(text) is None
    for extra in attachments[:-1]:
        assert decoder.feed(extra) is None
    with pytest.raises(ProtocolError):
        decoder.feed(attachments[-1])


def test_placeholder_without_attachments_is_error() -> None:
    """A BINARY_EVENT announcing 0 attachments but holding a placeholder is refused."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed('50-["x",{"_placeholder":true,"num":0}]')


def test_text_while_attachments_pending_is_error() -> None:
    """A text packet arriving before the announced attachments is a ProtocolError."""
    decoder = PacketDecoder()
    assert (
        decoder.feed('52-["x",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]') is None
    )
    assert decoder.feed(b"one") is None
    with pytest.raises(ProtocolError):
        decoder.feed('2["y"]')


def test_unexpected_binary_is_error() -> None:
    """A binary message when no binary packet is pending is a ProtocolError."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(b"\x01")
    decoder = PacketDecoder()
    assert decoder.feed('2["a"]') is not None
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x01")


@pytest.mark.parametrize(
    "wire",
    [
        "2",  # no data
        "2[]",  # empty list
        '2{"a":1}',  # not a list
        '2"foo"',
        "2[null]",  # first element not a string
        '2[["a"],"b"]',
        '2[{"a":1}]',
        "2[true]",
        "212",  # an id but no data
        '2/admin,{"a":"b"}',
        "5-0",
        '50-{"a":1}',  # BINARY_EVENT with non-list data
        "50-[]",
    ],
)
def test_event_data_must_be_nonempty_list_with_name_first(wire: str) -> None:
    """EVENT / BINARY_EVENT data that isn't a non-empty list starting with a name is refused."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


@pytest.mark.parametrize(
    "name",
    ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"],
)
def test_event_with_reserved_name_is_error(name: str) -> None:
    """An EVENT named like a reserved event ("disconnect", ...) is refused, as Node does."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(f'2["{name}","spoofed"]')


@pytest.mark.parametrize("wire", ["3", "3[]", '3["a"]', '3/admin,["a"]', "61-[{}]"])
def test_ack_without_id_is_error(wire: str) -> None:
    """ACK and BINARY_ACK must carry an id."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


@pytest.mark.parametrize("wire", ['31{"a":1}', '31"a"', "31null", "31"])
def test_ack_data_must_be_list(wire: str) -> None:
    """ACK data must be a list (possibly empty)."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


@pytest.mark.parametrize("wire", ["0[]", '0"token"', "0/admin,[1]", "0true"])
def test_connect_with_non_object_data_is_error(wire: str) -> None:
    """CONNECT data, when present, must be a JSON object."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


@pytest.mark.parametrize("wire", ["1{}", '1["a"]', "1/admin,{}"])
def test_disconnect_with_data_is_error(wire: str) -> None:
    """DISCONNECT carries no data."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


@pytest.mark.parametrize("wire", ["0null", "1null", "0/admin,null"])
def test_explicit_null_data_is_error(wire: str) -> None:
    """An explicit JSON null is data, and neither CONNECT nor DISCONNECT accepts it."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


@pytest.mark.parametrize("wire", ["4", "4[]", "41", "4null"])
def test_connect_error_data_must_be_string_or_object(wire: str) -> None:
    """CONNECT_ERROR data must be a string or an object."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


@pytest.mark.parametrize(
    "wire",
    ["2" + "1" * 17 + '["a"]', "3" + "9" * 40 + "[]", "2/admin," + "1" * 100 + '["a"]'],
)
def test_over_long_ack_id_is_error(wire: str) -> None:
    """An ack id of more than 16 digits is refused (no unbounded int parsing)."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed(wire)


def test_decoder_after_error_in_attachment_is_not_stuck() -> None:
    """After a bad placeholder is reported, the decoder takes a fresh packet again."""
    decoder = PacketDecoder()
    decoder.feed('51-["x",{"_placeholder":true,"num":3}]')
    with pytest.raises(ProtocolError, match="placeholder"):
        decoder.feed(b"a")
    assert decoder.feed('2["ok"]') == SocketPacket(T.EVENT, "/", ["ok"])


# -- nesting depth ----------------------------------------------------------------------------


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    """A JSON value whose arrays (or objects, with `open_` '{"a":') nest `depth` deep."""
    return open_ * depth + "1" + close * depth


@pytest.mark.parametrize("depth", [1100, 5000])
def test_deeply_nested_event_is_protocol_error(depth: int) -> None:
    """Arrays nested past the JSON parsers' own limits raise ProtocolError, not RecursionError."""
    with pytest.raises(ProtocolError, match="nested too deeply"):
        PacketDecoder().feed('2["message",' + nested(depth) + "]")


def test_nesting_limit_is_exact() -> None:
    """Data nesting MAX_DEPTH levels (the event's array included) decodes; one more does not."""
    ok = '2["message",' + nested(MAX_DEPTH - 1) + "]"
    assert PacketDecoder().feed(ok) is not None
    with pytest.raises(ProtocolError, match="nested too deeply"):
        PacketDecoder().feed('2["message",' + nested(MAX_DEPTH) + "]")


def test_nested_objects_count_toward_the_limit() -> None:
    """Objects nest toward the same limit as arrays, in CONNECT data as in events."""
    with pytest.raises(ProtocolError, match="nested too deeply"):
        PacketDecoder().feed("0" + nested(MAX_DEPTH + 1, '{"a":', "}"))
    with pytest.raises(ProtocolError, match="nested too deeply"):
        PacketDecoder().feed('2["m",' + nested(MAX_DEPTH, '{"a":[', "]}") + "]")


def test_brackets_inside_strings_do_not_count() -> None:
    """Brackets in string values (escaped quotes included) are text, not nesting."""
    text = '[{"\\"' * 200
    wire = "2" + orjson.dumps(["message", text, {"k": "]]}}[["}]).decode()
    packet = PacketDecoder().feed(wire)
    assert packet is not None and packet.data[1] == text


def test_deep_nesting_in_the_lone_surrogate_fallback_is_protocol_error() -> None:
    """The json-module fallback (taken for lone surrogates) is guarded by the same limit."""
    with pytest.raises(ProtocolError):
        PacketDecoder().feed('2["\\ud83d",' + nested(1100) + "]")


def test_deeply_nested_binary_event_is_protocol_error() -> None:
    """A BINARY_EVENT whose placeholders sit 1,100 levels deep is refused before reassembly."""
    wire = '51-["m",' + nested(1100).replace("1", '{"_placeholder":true,"num":0}') + "]"
    with pytest.raises(ProtocolError, match="nested too deeply"):
        PacketDecoder().feed(wire)
