"""The PostgreSQL plumbing (salas.db.postgres) without its driver: asyncpg is an extra."""

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
