"""The PostgreSQL plumbing (salas.db.postgres): without its driver (asyncpg is an extra), and
several processes creating one schema at once."""

from __future__ import annotations

import sys

import pytest

from salas.db.errors import StoreError
from salas.recovery import open_recovery_store
from salas.store import open_store

URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def without_asyncpg(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncpg as if it were not installed (``import asyncpg`` raises ImportError)."""
    monkeypatch.setitem(sys.modules, "asyncpg", None)


@pytest.mark.usefixtures("without_asyncpg")
def test_a_postgres_message_store_names_the_extra() -> None:
    """open_store on a PostgreSQL URL without asyncpg raises StoreError naming the extra."""
    with pytest.raises(
        StoreError, match=r"needs the 'postgres' extra: pip install 'salas\[postgres\]'"
    ):
        open_store(URL)


@pytest.mark.usefixtures("without_asyncpg")
def test_a_postgres_recovery_store_names_the_extra() -> None:
    """open_recovery_store on a PostgreSQL URL without asyncpg raises the same StoreError."""
    with pytest.raises(StoreError, match=r"pip install 'salas\[postgres\]'"):
        open_recovery_store(URL)


@pytest.mark.usefixtures("without_asyncpg")
async def test_sqlite_and_memory_stores_need_no_asyncpg(tmp_path: object) -> None:
    """Without asyncpg the memory and SQLite backends still open."""
    for url in ("memory://", f"sqlite:///{tmp_path}/h.db"):
        store = open_store(url)
        await store.open()
        await store.close()


# One process of the race below: open every PostgreSQL store of one URL at `start` (a
# time.time() value), so that every process's CREATE statements run at once.
_OPEN_ALL = """
import asyncio, sys, time
from salas.recovery import open_recovery_store
from salas.store import open_ban_store, open_store

async def main(url, start):
    stores = [open_store(url), open_recovery_store(url), open_ban_store(url)]
    await asyncio.sleep(max(0.0, start - time.time()))
    await asyncio.gather(*(store.open() for store in stores))
    for store in stores:
        await store.close()

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


@pytest.mark.slow
async def test_processes_starting_at_once_create_the_schema_once(postgres_url: str) -> None:
    """Four processes opening the message, recovery and ban stores at once on a fresh schema
    all succeed: one advisory lock serialises every store's schema creation."""
    import asyncio
    import time
    import uuid

    import asyncpg

    for _ in range(3):  # a race: several fresh schemas make a lucky pass unlikely
        schema = f"salas_test_{uuid.uuid4().hex[:12]}"
        url = f"{postgres_url}?schema={schema}"
        start = time.time() + 1.5  # past every interpreter's start-up
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _OPEN_ALL,
                url,
                str(start),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(4)
        ]
        try:
            results = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
            for proc, (_, err) in zip(procs, results, strict=True):
                assert proc.returncode == 0, err.decode()
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
            conn = await asyncpg.connect(postgres_url)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
