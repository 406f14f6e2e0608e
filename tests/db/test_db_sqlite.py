"""salas.db.sqlite: one SQLite file shared by several processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from salas.db import sqlite as db_sqlite
from salas.db.errors import StoreError
from salas.db.sqlite import SQLiteFile

OPENER = """
import asyncio, sys, time
from salas.store import open_store
from salas.recovery import open_recovery_store

async def main():
    url = "sqlite:///" + sys.argv[1]
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all at the same moment
    stores = [open_store(url), open_recovery_store(url)]
    for store in stores:
        await store.open()
    for store in stores:
        await store.close()

asyncio.run(main())
"""


def test_processes_opening_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Six processes opening the message and recovery stores of one new SQLite file at
    the same moment (the workers of `salas serve --workers`) all succeed: none is told the
    database is locked while another switches it to WAL."""
    for attempt in range(3):
        path = tmp_path / f"chat-{attempt}.db"
        start = time.time() + 1.5
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(path), str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(6)
        ]
        outputs = []
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            outputs.append((proc.returncode, out.decode(errors="replace")))
        failed = [out for code, out in outputs if code != 0]
        assert not failed, failed[0]


# -- waiting for the write lock ---------------------------------------------------------------
SCHEMA = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT);"


class LockHolder:
    """Another connection to the file holding its write lock for a while, in a thread."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.released_at = 0.0

    def hold(self, seconds: float) -> threading.Thread:
        self.conn.execute("BEGIN IMMEDIATE")

        def release() -> None:
            time.sleep(seconds)
            self.conn.execute("COMMIT")
            self.released_at = time.monotonic()

        thread = threading.Thread(target=release)
        thread.start()
        return thread


async def _opened(path: Path) -> SQLiteFile:
    file = SQLiteFile(str(path), SCHEMA, name="test", threads="test")
    await file.open()
    return file


def _insert(conn: sqlite3.Connection) -> float:
    conn.execute("INSERT INTO t (v) VALUES ('x')")
    return time.monotonic()


async def test_a_write_gets_the_lock_soon_after_another_connection_lets_it_go(
    tmp_path: Path,
) -> None:
    """A write behind another connection's 60 ms transaction starts within a few ms of its
    commit — SQLite's own busy handler, sleeping 1, 2, 5, 10, 15, 20, 25 ms..., would
    start it about 18 ms late (best of three, for a loaded machine)."""
    path = tmp_path / "chat.db"
    file = await _opened(path)
    holder = LockHolder(path)
    lateness = []
    try:
        for _ in range(3):
            thread = holder.hold(0.06)
            wrote_at = await file.write(_insert)
            thread.join()
            lateness.append(wrote_at - holder.released_at)
        assert min(lateness) < 0.008, lateness
        assert await file.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()) == (3,)
    finally:
        holder.conn.close()
        await file.close()


async def test_a_write_gives_up_once_the_lock_is_held_past_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock held past the busy timeout (made 0.2 s): that write fails with a StoreError
    that says so, and the next write, after the lock is let go, succeeds."""
    monkeypatch.setattr(db_sqlite, "_BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "chat.db"
    file = await _opened(path)
    holder = LockHolder(path)
    try:
        thread = holder.hold(0.6)
        began = time.monotonic()
        with pytest.raises(StoreError, match="locked"):
            await file.write(_insert)
        assert time.monotonic() - began < 0.5
        thread.join()
        await file.write(_insert)
        assert await file.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()) == (1,)
    finally:
        holder.conn.close()
        await file.close()


async def test_a_checkpoint_still_waits_for_a_writer_of_another_connection(
    tmp_path: Path,
) -> None:
    """The writer answers busy at once when asking for the lock itself, but a checkpoint
    keeps SQLite's wait: behind another connection's short transaction, it completes."""
    path = tmp_path / "chat.db"
    file = await _opened(path)
    holder = LockHolder(path)
    try:
        await file.write(_insert)
        thread = holder.hold(0.05)
        assert await file.checkpoint() is True
        thread.join()
    finally:
        holder.conn.close()
        await file.close()
