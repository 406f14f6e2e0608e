"""The recovery store's shared parts: the encodings of the durable backends, LogWriter."""

from __future__ import annotations

import asyncio
import logging

import pytest

from salas.store import StoreError
from salas.store.recovery import (
    LoggedPacket,
    LogWriter,
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
    with caplog.at_level(logging.WARNING, logger="salas.store"):
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


# -- LogWriter -------------------------------------------------------------------------------


class Sink:
    """A write function that records batches and can be made to fail."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[int]] = []
        self.failures = failures
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, rows: list[int]) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise StoreError("database says no")
        self.batches.append(list(rows))


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LogWriter, "RETRY_DELAYS", (0.001, 0.001))


async def test_rows_appended_in_a_row_are_one_batch() -> None:
    """Rows appended without yielding are written together, in order; flush waits for them."""
    sink = Sink()
    writer: LogWriter[int] = LogWriter(sink, name="t")
    writer.start()
    for i in range(100):
        assert writer.append(i)
    assert writer.pending == 100
    await writer.flush()
    assert sink.batches == [list(range(100))]
    assert (writer.batches_committed, writer.rows_committed, writer.pending) == (1, 100, 0)
    await writer.close()


async def test_batches_are_capped_at_max_batch() -> None:
    """More rows than max_batch take several batches."""
    sink = Sink()
    writer: LogWriter[int] = LogWriter(sink, name="t", max_batch=30)
    writer.start()
    for i in range(100):
        writer.append(i)
    await writer.flush()
    assert [len(b) for b in sink.batches] == [30, 30, 30, 10]
    await writer.close()


async def test_rows_appended_while_writing_wait_for_the_next_batch() -> None:
    """flush waits for the rows appended before it, including those queued behind a batch."""
    sink = Sink()
    sink.gate = asyncio.Event()
    writer: LogWriter[int] = LogWriter(sink, name="t")
    writer.start()
    writer.append(1)
    await asyncio.sleep(0)  # the first batch is being written
    writer.append(2)
    flushed = asyncio.create_task(writer.flush())
    await asyncio.sleep(0.01)
    assert not flushed.done()
    sink.gate.set()
    await flushed
    assert sink.batches == [[1], [2]]
    await writer.close()


async def test_a_failing_batch_is_retried() -> None:
    """A write that fails is tried again and the rows are written."""
    sink = Sink(failures=2)
    writer: LogWriter[int] = LogWriter(sink, name="t")
    writer.start()
    writer.append(1)
    await writer.flush()
    assert sink.batches == [[1]] and sink.calls == 3
    assert writer.rows_dropped == 0
    await writer.close()


async def test_a_batch_that_keeps_failing_is_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After three failed attempts the batch is dropped, flush returns, later rows go on."""
    sink = Sink(failures=3)
    writer: LogWriter[int] = LogWriter(sink, name="t")
    writer.start()
    writer.append(1)
    with caplog.at_level(logging.ERROR, logger="salas.store"):
        await writer.flush()
    assert sink.batches == [] and writer.rows_dropped == 1
    assert "dropped 1 rows after 3 failed writes" in caplog.text
    writer.append(2)
    await writer.flush()
    assert sink.batches == [[2]]
    await writer.close()


async def test_overflow_drops_the_oldest_rows() -> None:
    """Beyond max_pending queued rows the oldest go, so memory stays bounded."""
    sink = Sink()
    writer: LogWriter[int] = LogWriter(sink, name="t", max_pending=10)
    writer.start()
    for i in range(25):
        writer.append(i)
    await writer.flush()
    assert sink.batches == [list(range(15, 25))]
    assert writer.rows_dropped == 15
    await writer.close()


async def test_close_writes_what_is_queued_and_refuses_more() -> None:
    """close() drains the queue; append afterwards returns False and writes nothing."""
    sink = Sink()
    writer: LogWriter[int] = LogWriter(sink, name="t")
    writer.start()
    writer.append(1)
    await writer.close()
    assert sink.batches == [[1]]
    assert writer.append(2) is False
    await writer.flush()  # closed: returns at once
    assert sink.batches == [[1]]
