"""The durable recovery backends' codecs and row mappers (salas.recovery.codec)."""

from __future__ import annotations

import logging

import pytest

from salas.db.errors import StoreError
from salas.recovery.codec import (
    dump_data,
    dump_rooms,
    load_data,
    load_rooms,
    log_row,
    pack_packets,
    packet_of,
    storable_key,
    unpack_packets,
)
from salas.recovery.types import LoggedPacket


@pytest.mark.parametrize(
    "packets",
    [
        (),
        ("",),
        (b"",),
        ('42["m","x","1"]',),
        ('451-["f",{"_placeholder":true,"num":0}]', b"\x00\x01\xff"),
        ("lone \ud800 and \udfff", "nul \x00", "👋🏽"),
        (b"b" * 70_000, "t" * 70_000),
    ],
)
def test_packets_round_trip_with_their_types(packets: tuple[str | bytes, ...]) -> None:
    """pack_packets/unpack_packets give back the same items, str as str and bytes as bytes."""
    back = unpack_packets(pack_packets(packets))
    assert back == packets
    assert [type(p) for p in back] == [type(p) for p in packets]


def test_text_and_bytes_of_the_same_content_stay_distinct() -> None:
    """A text packet and a binary one with the same bytes do not decode alike."""
    assert unpack_packets(pack_packets(["4abc", b"4abc"])) == ("4abc", b"4abc")


@pytest.mark.parametrize(
    "blob", [b"", b"\x02", b"\x01t", b"\x01t\x00\x00\x00\x05abc", b"\x01z\x00\x00\x00\x00"]
)
def test_corrupt_packets_raise_store_error(blob: bytes) -> None:
    """A value that pack_packets did not make is refused with StoreError."""
    with pytest.raises(StoreError):
        unpack_packets(blob)


def test_packing_refuses_what_is_not_a_packet() -> None:
    """Only str and bytes are packets."""
    with pytest.raises(TypeError):
        pack_packets([42])  # type: ignore[list-item]


@pytest.mark.parametrize("rooms", [(), ("a",), ("room:ñ", 'q"uote', "lone \ud800", "nul\x00")])
def test_rooms_round_trip_as_json(rooms: tuple[str, ...]) -> None:
    """Room names go to JSON text and come back the same, even lone surrogates."""
    text = dump_rooms(rooms)
    text.encode("utf-8")  # storable as text anywhere
    assert "\x00" not in text
    assert load_rooms(text) == rooms


def test_rooms_that_are_not_a_list_of_strings_are_refused() -> None:
    """load_rooms checks what it reads."""
    with pytest.raises(StoreError):
        load_rooms('{"a": 1}')
    with pytest.raises(StoreError):
        load_rooms("[1]")


def test_unserialisable_data_becomes_empty_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """dump_data saves {} and names the socket when JSON cannot hold its data."""
    with caplog.at_level(logging.WARNING, logger="salas.recovery"):
        assert dump_data({"f": print}, "sid-9") == "{}"
    assert "sid-9" in caplog.text
    assert load_data(dump_data({"a": [1, None, "ü"]}, "s")) == {"a": [1, None, "ü"]}


def test_log_rows_round_trip() -> None:
    """A packet turned into a row and back is equal to itself."""
    packet = LoggedPacket(7, "/", ("r",), ("x",), ("4a", b"b"), 123)
    row = log_row(packet)
    assert row is not None
    assert packet_of(row) == packet


@pytest.mark.parametrize(
    ("key", "ok"), [("abc", True), ("", True), ("a\x00", False), ("\ud800", False)]
)
def test_storable_key(key: str, ok: bool) -> None:
    """Keys with NUL or lone surrogates are not storable in every backend."""
    assert storable_key(key) is ok
