"""open_recovery_store: the recovery backend a store URL selects, with the same options."""

from __future__ import annotations

import pytest

from salas.recovery import (
    MemoryRecoveryStore,
    PostgresRecoveryStore,
    SQLiteRecoveryStore,
    open_recovery_store,
)
from salas.store import StoreError


def test_memory_url_gives_a_memory_recovery_store() -> None:
    """memory:// selects recovery within the process."""
    assert isinstance(open_recovery_store("memory://"), MemoryRecoveryStore)


@pytest.mark.parametrize(
    ("url", "path", "table"),
    [
        ("sqlite:///var/lib/salas/history.db", "/var/lib/salas/history.db", "messages"),
        ("sqlite:////abs.db", "/abs.db", "messages"),
        ("sqlite://relative.db?table=chat", "relative.db", "chat"),
        ("salas.db", "salas.db", "messages"),
        ("  /abs/salas.db ", "/abs/salas.db", "messages"),
    ],
)
def test_sqlite_urls_give_a_sqlite_recovery_store(url: str, path: str, table: str) -> None:
    """SQLite URLs and bare paths select SQLite on the same file and table option."""
    store = open_recovery_store(url)
    assert isinstance(store, SQLiteRecoveryStore)
    assert (store.path, store.table) == (path, table)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "POSTGRESQL"])
def test_postgres_urls_give_a_postgres_recovery_store(scheme: str) -> None:
    """PostgreSQL URLs keep schema/table for salas and the rest for asyncpg."""
    store = open_recovery_store(f"{scheme}://u:pw@db:5432/chat?schema=s1&table=t1&sslmode=disable")
    assert isinstance(store, PostgresRecoveryStore)
    assert (store.schema, store.table) == ("s1", "t1")
    assert store.dsn == f"{scheme.lower()}://u:pw@db:5432/chat?sslmode=disable"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "memory:",
        "sqlite:x.db",
        "redis://localhost",
        "sqlite://x.db?table=bad-name",
        "sqlite://x.db?colour=red",
        "sqlite://:memory:",
        "postgresql://h/db?schema=1bad",
    ],
)
def test_bad_urls_raise_store_error(url: str) -> None:
    """Typos, unknown schemes and bad options are refused before anything opens."""
    with pytest.raises(StoreError):
        open_recovery_store(url)


def test_errors_do_not_show_the_password() -> None:
    """An unknown scheme's error hides the URL's password."""
    with pytest.raises(StoreError) as info:
        open_recovery_store("mysql://ana:secret@db/chat")
    assert "secret" not in str(info.value)
