"""LogWriter (salas.recovery.durable): the recovery log written in batches, on a fake write."""

from __future__ import annotations

import asyncio
import logging

import pytest

from salas.db.errors import StoreError
from salas.recovery.durable import LogWriter


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
    with caplog.at_level(logging.ERROR, logger="salas.recovery"):
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
