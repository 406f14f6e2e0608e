"""salas.db.sqlite_writer: the stores of one file write through one writer, whose
transactions hold what they ask for at about the same time."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from salas.db.errors import StoreError
from salas.db.sqlite import SQLiteFile

SCHEMA = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT UNIQUE);"


async def _opened(path: Path, name: str = "test") -> SQLiteFile:
    file = SQLiteFile(str(path), SCHEMA, name=name, threads=name)
    await file.open()
    return file


def _insert(value: str) -> Callable[[sqlite3.Connection], int]:
    def work(conn: sqlite3.Connection) -> int:
        return int(conn.execute("INSERT INTO t (v) VALUES (?)", (value,)).lastrowid or 0)

    return work


def _blocking(release: threading.Event, value: str) -> Callable[[sqlite3.Connection], None]:
    """A write that holds its transaction until `release` is set."""

    def work(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        release.wait(5)

    return work


async def _values(file: SQLiteFile) -> list[str]:
    rows = await file.read(lambda c: c.execute("SELECT v FROM t ORDER BY id").fetchall())
    return [v for (v,) in rows]


async def test_the_stores_of_one_file_share_its_writer(tmp_path: Path) -> None:
    """Two stores of one file in one process (the messages and the recovery log) get the
    same writer; another file gets its own; after the last store closes, a store opening
    the file gets a new writer."""
    first, second = await _opened(tmp_path / "a.db"), await _opened(tmp_path / "a.db")
    other = await _opened(tmp_path / "b.db")
    try:
        assert first.writer is not None
        assert first.writer is second.writer
        assert other.writer is not first.writer
        shared = first.writer
    finally:
        await first.close()
        await second.close()
        await other.close()
    again = await _opened(tmp_path / "a.db")
    try:
        assert again.writer is not shared
        assert await _values(again) == []
    finally:
        await again.close()


async def test_writes_asked_for_during_a_transaction_share_the_next_one(
    tmp_path: Path,
) -> None:
    """While one transaction runs, the writes of both stores asked for meanwhile wait and
    then go in ONE transaction together, each getting its own result."""
    first, second = await _opened(tmp_path / "a.db"), await _opened(tmp_path / "a.db")
    writer = first.writer
    assert writer is not None
    release = threading.Event()
    try:
        before = writer.transactions
        running = asyncio.create_task(first.write(_blocking(release, "first")))
        await asyncio.sleep(0.05)  # its transaction holds the thread
        waiting = [
            asyncio.create_task(first.write(_insert("a"))),
            asyncio.create_task(second.write(_insert("b"))),
            asyncio.create_task(second.write(_insert("c"))),
        ]
        await asyncio.sleep(0.02)
        release.set()
        await running
        ids = await asyncio.gather(*waiting)
        assert ids == [2, 3, 4]
        assert writer.transactions - before == 2  # the blocking one, then the three
        assert await _values(second) == ["first", "a", "b", "c"]
    finally:
        release.set()
        await first.close()
        await second.close()


async def test_a_write_that_fails_in_a_shared_transaction_is_rolled_back_alone(
    tmp_path: Path,
) -> None:
    """Hostile or broken work in a shared transaction (a constraint it breaks, an exception
    of its own): its caller gets the error and none of its rows are kept; the honest writes
    beside it commit."""
    file = await _opened(tmp_path / "a.db")
    release = threading.Event()

    def half_then_raise(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (v) VALUES ('half')")
        raise ValueError("broken work")

    try:
        running = asyncio.create_task(file.write(_blocking(release, "first")))
        await asyncio.sleep(0.05)
        honest_before = asyncio.create_task(file.write(_insert("honest-1")))
        duplicate = asyncio.create_task(file.write(_insert("first")))  # UNIQUE broken
        broken = asyncio.create_task(file.write(half_then_raise))
        honest_after = asyncio.create_task(file.write(_insert("honest-2")))
        await asyncio.sleep(0.02)
        release.set()
        await running
        assert await honest_before == 2
        with pytest.raises(StoreError, match="UNIQUE"):
            await duplicate
        with pytest.raises(ValueError, match="broken work"):
            await broken
        assert await honest_after == 3
        assert await _values(file) == ["first", "honest-1", "honest-2"]
    finally:
        release.set()
        await file.close()


async def test_a_caller_cancelled_before_its_transaction_is_not_written(
    tmp_path: Path,
) -> None:
    file = await _opened(tmp_path / "a.db")
    release = threading.Event()
    try:
        running = asyncio.create_task(file.write(_blocking(release, "first")))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(file.write(_insert("gone")))
        kept = asyncio.create_task(file.write(_insert("kept")))
        await asyncio.sleep(0.01)
        gone.cancel()
        release.set()
        await running
        await kept
        assert gone.cancelled()
        assert await _values(file) == ["first", "kept"]
    finally:
        release.set()
        await file.close()


async def test_a_write_given_within_joins_the_next_transaction(tmp_path: Path) -> None:
    """A write that may wait (the recovery log's rows) starts no transaction of its own
    while another is due: it goes with the next write asked for within its time."""
    file = await _opened(tmp_path / "a.db")
    writer = file.writer
    assert writer is not None
    try:
        before = writer.transactions
        rider = asyncio.create_task(file.write(_insert("rider"), within=1.0))
        await asyncio.sleep(0.05)
        assert not rider.done()  # waiting for a transaction to join
        await file.write(_insert("starter"))
        await rider
        assert writer.transactions - before == 1
        assert sorted(await _values(file)) == ["rider", "starter"]
    finally:
        await file.close()


async def test_a_write_given_within_starts_its_own_once_that_time_is_up(
    tmp_path: Path,
) -> None:
    """With nothing else written, such a write is committed about `within` after it was
    asked for, not sooner and not much later."""
    file = await _opened(tmp_path / "a.db")
    try:
        began = time.monotonic()
        await file.write(_insert("alone"), within=0.2)
        waited = time.monotonic() - began
        assert 0.19 <= waited < 1.0, waited
        assert await _values(file) == ["alone"]
    finally:
        await file.close()


async def test_closing_the_last_store_writes_what_waits_for_a_transaction(
    tmp_path: Path,
) -> None:
    """Rows handed to the writer with time to wait are written when the file closes, not
    lost and not waited out."""
    path = tmp_path / "a.db"
    file = await _opened(path)
    rider = asyncio.create_task(file.write(_insert("late"), within=30.0))
    await asyncio.sleep(0.02)
    began = time.monotonic()
    await file.close()
    await rider
    assert time.monotonic() - began < 5.0
    again = await _opened(path)
    try:
        assert await _values(again) == ["late"]
    finally:
        await again.close()


async def test_a_closed_store_refuses_writes_while_the_files_other_store_goes_on(
    tmp_path: Path,
) -> None:
    first, second = await _opened(tmp_path / "a.db", "first"), await _opened(tmp_path / "a.db")
    try:
        await first.close()
        with pytest.raises(StoreError, match="first store is not open"):
            await first.write(_insert("refused"))
        await second.write(_insert("kept"))
        assert await _values(second) == ["kept"]
    finally:
        await second.close()
