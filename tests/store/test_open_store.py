"""open_store: which backend a URL selects, its options, and the errors of bad URLs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from salas.db.batching import DEFAULT_COMMIT_INTERVAL
from salas.store import (
    MemoryBanStore,
    MemoryStore,
    PostgresBanStore,
    PostgresStore,
    SQLiteBanStore,
    SQLiteStore,
    StoreError,
    open_ban_store,
    open_store,
)


def test_memory_url_gives_a_memory_store() -> None:
    """memory:// selects the in-memory backend."""
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    assert store.url == "memory://"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/lib/salas/history.db", "/var/lib/salas/history.db"),
        ("sqlite:////var/lib/salas/history.db", "/var/lib/salas/history.db"),
        ("sqlite://relative.db", "relative.db"),
        ("sqlite://data/chat.db", "data/chat.db"),
        ("SQLITE://upper.db", "upper.db"),
        ("sqlite:///with%20space.db", "/with space.db"),
        ("salas.db", "salas.db"),
        ("./data/salas.db", "./data/salas.db"),
        ("/abs/salas.db", "/abs/salas.db"),
        ("C:\\salas\\chat.db", "C:\\salas\\chat.db"),
        ("  salas.db  ", "salas.db"),
    ],
)
def test_sqlite_urls_and_bare_paths_give_a_sqlite_store(url: str, path: str) -> None:
    """sqlite:///abs, sqlite://relative and bare file paths select SQLite at that path."""
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == path
    assert store.table == "messages"


def test_sqlite_table_option() -> None:
    """?table= chooses the SQLite table."""
    store = open_store("sqlite:///tmp/x.db?table=chat_log")
    assert isinstance(store, SQLiteStore)
    assert (store.path, store.table) == ("/tmp/x.db", "chat_log")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("sqlite:///tmp/x.db?colour=blue", "unknown SQLite store option 'colour'"),
        ("sqlite:///tmp/x.db?table=bad-name", "invalid table name"),
        ("sqlite:///tmp/x.db?table=x;drop", "invalid table name"),
        ("sqlite:///:memory:", "memory://"),
        ("sqlite://", "needs a file path"),
    ],
)
def test_bad_sqlite_urls_raise_store_error(url: str, needle: str) -> None:
    """Unknown options, unsafe table names, :memory: and empty paths are refused clearly."""
    with pytest.raises(StoreError, match=needle):
        open_store(url)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "PostgreSQL"])
def test_postgres_urls_give_a_postgres_store(scheme: str) -> None:
    """postgresql:// and postgres:// select PostgreSQL; defaults are public.messages."""
    url = f"{scheme}://ana:secret@db.example:5433/chat"
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert store.url == url
    assert store.dsn.partition("://")[2] == url.partition("://")[2]
    assert (store.schema, store.table) == ("public", "messages")


def test_postgres_schema_and_table_options_are_not_passed_to_asyncpg() -> None:
    """?schema= and ?table= are salas' options; other query parameters stay in the DSN."""
    store = open_store("postgresql://ana@db/chat?schema=salas&sslmode=disable&table=history")
    assert isinstance(store, PostgresStore)
    assert (store.schema, store.table) == ("salas", "history")
    assert store.dsn == "postgresql://ana@db/chat?sslmode=disable"


@pytest.mark.parametrize("query", ["schema=a.b", "table=1abc", "schema=", "table=" + "x" * 41])
def test_postgres_bad_identifiers_raise_store_error(query: str) -> None:
    """Schema and table names that are not plain identifiers are refused."""
    with pytest.raises(StoreError, match=r"invalid (schema|table) name"):
        open_store(f"postgresql://ana@db/chat?{query}")


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/chat", "redis://localhost", "postgresql+asyncpg://x/y"]
)
def test_unknown_scheme_names_it_and_the_supported_ones(url: str) -> None:
    """An unknown scheme raises StoreError naming the scheme and every supported one."""
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert repr(url.partition("://")[0]) in message
    for supported in ("memory://", "sqlite://", "postgresql://", "postgres://", "salas.db"):
        assert supported in message


def test_unknown_scheme_error_hides_the_password() -> None:
    """The error for a bad URL does not echo its password."""
    with pytest.raises(StoreError) as info:
        open_store("mysql://root:hunter2@localhost/chat")
    assert "hunter2" not in str(info.value)
    assert "root:***@localhost" in str(info.value)


@pytest.mark.parametrize("url", ["", "   ", "memory:", "sqlite:chat.db", "postgres:db"])
def test_empty_or_slashless_urls_raise_store_error(url: str) -> None:
    """An empty URL, or a scheme without '//', is an error rather than a file name."""
    with pytest.raises(StoreError, match="supported"):
        open_store(url)


async def test_unreachable_postgres_raises_store_error_on_open() -> None:
    """Opening PostgreSQL where nothing listens raises StoreError, promptly, without the
    password."""
    store = open_store("postgresql://ana:hunter2@127.0.0.1:1/chat")
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as info:
        await store.open()
    assert time.monotonic() - started < 10
    assert "hunter2" not in str(info.value)
    assert (await store.health())["ok"] is False


async def test_sqlite_in_a_missing_directory_raises_store_error_on_open(tmp_path: Path) -> None:
    """Opening SQLite where its directory does not exist raises StoreError naming the path."""
    path = tmp_path / "missing" / "chat.db"
    store = open_store(str(path))
    with pytest.raises(StoreError, match="cannot open SQLite database") as info:
        await store.open()
    assert str(path) in str(info.value)
    assert (await store.health())["ok"] is False


async def test_sqlite_file_is_created_with_its_schema_in_wal_mode(tmp_path: Path) -> None:
    """The first open creates the SQLite file, its table and indexes, in WAL mode."""
    import sqlite3

    path = tmp_path / "fresh.db"
    store = open_store(f"sqlite://{path}?table=log")
    await store.open()
    try:
        assert path.exists()
        health = await store.health()
        assert health["journal_mode"] == "wal"
        assert health["path"] == os.path.abspath(path)
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    finally:
        conn.close()
    assert {"log", "log_channel_id", "log_channel_client_id"} <= names
    assert mode == "wal"


def test_open_ban_store_follows_the_message_store_url() -> None:
    """open_ban_store picks the same backend, file, schema and table as open_store."""
    assert isinstance(open_ban_store("memory://"), MemoryBanStore)
    sqlite_bans = open_ban_store("sqlite:///tmp/x.db?table=chat_log")
    assert isinstance(sqlite_bans, SQLiteBanStore)
    assert (sqlite_bans.path, sqlite_bans.table) == ("/tmp/x.db", "chat_log")
    pg_bans = open_ban_store("postgresql://ana@db/chat?schema=salas&sslmode=disable&table=h")
    assert isinstance(pg_bans, PostgresBanStore)
    assert (pg_bans.schema, pg_bans.table) == ("salas", "h")
    assert pg_bans.dsn == "postgresql://ana@db/chat?sslmode=disable"
    with pytest.raises(StoreError, match="unknown store URL scheme"):
        open_ban_store("mysql://root@localhost/chat")


def test_commit_interval_reaches_the_sql_stores(tmp_path: Path) -> None:
    """open_store's commit_interval sets the group commit's pacing of SQLite and PostgreSQL
    stores (the default otherwise); memory has none to set."""
    paced = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    unpaced = open_store(f"sqlite:///{tmp_path / 'b.db'}", commit_interval=0.0)
    pg = open_store("postgresql://u@127.0.0.1/test", commit_interval=0.0)
    assert paced.commit_interval == DEFAULT_COMMIT_INTERVAL > 0
    assert unpaced.commit_interval == 0.0
    assert pg.commit_interval == 0.0
    assert not hasattr(open_store("memory://", commit_interval=0.0), "commit_interval")
