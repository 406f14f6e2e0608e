"""salas.db.sqlite: one SQLite file shared by several processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

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
