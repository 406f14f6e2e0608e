"""salas.db.sqlite: one SQLite file shared by several processes."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

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


# -- writers taking turns ---------------------------------------------------------------------
SCHEMA = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT);"


async def _opened(path: Path) -> SQLiteFile:
    file = SQLiteFile(str(path), SCHEMA, name="test", threads="test")
    await file.open()
    return file


# Another process's salas writer of the same file (a worker of `salas serve --workers`):
# on each line read, one 48 ms transaction; prints when it began and ended.
SLOW_WRITER = """
import asyncio, sys, time
from salas.db.sqlite import SQLiteFile

def slow(conn):
    began = time.monotonic()
    conn.execute("INSERT INTO t (v) VALUES ('slow')")
    time.sleep(0.048)
    return began, time.monotonic()

async def main():
    file = SQLiteFile(sys.argv[1], sys.argv[2], name="other", threads="other")
    await file.open()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        began, ended = await file.write(slow)
        print(began, ended, flush=True)
    await file.close()

asyncio.run(main())
"""


async def test_a_writer_gets_its_turn_as_soon_as_the_writer_before_it_is_done(
    tmp_path: Path,
) -> None:
    """Two processes writing one file (the workers of `salas serve --workers`): the
    second's transaction starts within a few ms of the first's commit, never overlapping
    it. SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms... between attempts: asking
    10 ms into a 48 ms transaction, its attempts fall 33 and 53 ms later, so it started
    about 15 ms late (best of three, for a loaded machine)."""
    path = tmp_path / "chat.db"
    mine = await _opened(path)
    other = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(path), SCHEMA],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdin is not None and other.stdout is not None
    loop = asyncio.get_running_loop()

    def quick(conn: sqlite3.Connection) -> float:
        conn.execute("INSERT INTO t (v) VALUES ('quick')")
        return time.monotonic()

    lateness = []
    try:
        assert (await loop.run_in_executor(None, other.stdout.readline)).strip() == "ready"
        for _ in range(3):
            other.stdin.write("write\n")
            other.stdin.flush()
            await asyncio.sleep(0.01 + 0.048 / 2)  # its transaction has begun
            wrote_at = await mine.write(quick)
            line = await loop.run_in_executor(None, other.stdout.readline)
            began, ended = (float(part) for part in line.split())
            assert ended - began >= 0.048
            assert wrote_at > ended  # (not inside the other's transaction)
            lateness.append(wrote_at - ended)
        assert min(lateness) < 0.008, lateness
        count = await mine.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone())
        assert count == (6,)
        assert (tmp_path / "chat.db-writers").exists()  # the turns' lock file, beside it
    finally:
        other.stdin.close()
        try:
            other.wait(timeout=30)
        finally:
            if other.poll() is None:
                other.kill()
                other.wait()
        await mine.close()


async def test_another_program_writing_the_file_still_meets_sqlites_lock(
    tmp_path: Path,
) -> None:
    """A connection that is not salas' (the sqlite3 shell, a script) takes no turn: salas'
    writer waits for SQLite's own lock behind it, then writes."""
    path = tmp_path / "chat.db"
    file = await _opened(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t (v) VALUES ('other')")
        threading.Timer(0.2, other.execute, args=("COMMIT",)).start()
        began = time.monotonic()
        await file.write(lambda c: c.execute("INSERT INTO t (v) VALUES ('salas')"))
        assert time.monotonic() - began >= 0.15
        rows = await file.read(lambda c: c.execute("SELECT v FROM t ORDER BY id").fetchall())
        assert rows == [("other",), ("salas",)]
    finally:
        other.close()
        await file.close()


async def test_a_database_whose_folder_cannot_take_the_lock_file_is_refused(
    tmp_path: Path,
) -> None:
    """The lock file cannot be made (here: a folder of that name is in the way): opening
    fails with a StoreError that names the database, as for any file SQLite cannot open."""
    path = tmp_path / "chat.db"
    (tmp_path / "chat.db-writers").mkdir()
    file = SQLiteFile(str(path), SCHEMA, name="test", threads="test")
    with pytest.raises(StoreError, match=r"chat\.db"):
        await file.open()
    assert not file.is_open
