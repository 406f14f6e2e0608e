"""What the PostgreSQL stores (messages and recovery) share: what they accept,
:class:`PostgresPool`, the schema creation every process may run at once, and
advisory-lock keys.

asyncpg is the ``postgres`` extra: it is imported when a :class:`PostgresPool` is made (a
``postgresql://`` URL opened), not when this module is, and its absence is a
:class:`~salas.db.errors.StoreError` that names the extra.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from salas._extras import extra_needed
from salas.db.common import check_identifier
from salas.db.errors import StoreError, not_open
from salas.db.urls import redact

__all__ = [
    "PostgresPool",
    "advisory_lock_key",
    "create_schema",
    "db_errors",
    "load_asyncpg",
    "param",
    "postgres_location",
    "schema_lock_key",
]


def load_asyncpg() -> Any:
    """The asyncpg module; StoreError naming the ``postgres`` extra when it is not installed."""
    try:
        import asyncpg
    except ImportError as exc:
        raise StoreError(extra_needed("PostgreSQL support", "postgres")) from exc
    return asyncpg


@functools.cache
def db_errors() -> tuple[type[BaseException], ...]:
    """What asyncpg raises when the server is unreachable, refuses us, or a statement fails."""
    driver = load_asyncpg()
    return (OSError, TimeoutError, driver.PostgresError, driver.InterfaceError)


def postgres_location(dsn: str, schema: str, table: str, url: str | None) -> tuple[str, str, str]:
    """``(schema, table, url)`` of a PostgreSQL store, checked, so that the message and
    recovery stores accept the same: StoreError for a name unfit for SQL. ``url`` is the
    URL the store came from, or ``dsn``."""
    schema = check_identifier("schema", schema)
    table = check_identifier("table", table)
    return schema, table, url if url is not None else dsn


def param(n: int) -> str:
    """PostgreSQL's placeholder for the n-th parameter of a statement: ``$n``."""
    return f"${n}"


def advisory_lock_key(purpose: str, schema: str, table: str) -> int:
    """The advisory lock key of ``purpose`` on ``schema.table``: the same in every process."""
    digest = hashlib.blake2b(f"{purpose}:{schema}.{table}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def schema_lock_key(schema: str) -> int:
    """The advisory lock key every store takes to create its tables in ``schema``.

    One key per schema, whatever the store (messages, recovery, bans): two processes
    starting at once, each opening every store, would otherwise race on ``CREATE SCHEMA``
    and ``CREATE ... IF NOT EXISTS``, which are not safe to run concurrently.
    """
    return advisory_lock_key("salas.schema", schema, "")


async def create_schema(conn: Any, *, schema: str, ddl: str) -> None:
    """Run ``ddl`` (``CREATE ... IF NOT EXISTS``) in ``schema``, creating the schema if missing;
    inside the caller's transaction, holding :func:`schema_lock_key` until it ends."""
    # Several processes starting at once would race on CREATE ... IF NOT EXISTS.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", schema_lock_key(schema))
    # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
    # exists; asking first lets a role without that privilege use an existing one.
    exists = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
    )
    if not exists:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.execute(ddl)


@contextmanager
def _failing(message: str) -> Iterator[None]:
    try:
        yield
    except db_errors() as exc:
        raise StoreError(f"{message}: {exc}") from exc


class PostgresPool:
    """An asyncpg pool for one store; database errors come out as :class:`StoreError`.

    ``setup(conn)`` creates the schema on ``open``, in one transaction. ``table`` is what
    error messages name ("PostgreSQL read from <table> failed"); ``name`` says whose pool
    this is in "<name> store is not open". StoreError, naming the ``postgres`` extra, when
    asyncpg is not installed.
    """

    def __init__(
        self,
        dsn: str,
        *,
        setup: Callable[[Any], Awaitable[None]],
        table: str,
        name: str,
        min_size: int,
        max_size: int,
        connect_timeout: float,
        command_timeout: float,
    ) -> None:
        self._driver = load_asyncpg()
        self.dsn = dsn
        self._setup = setup
        self._table = table
        self._name = name
        self._size = (min_size, max_size)
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: Any = None

    @property
    def pool(self) -> Any:
        """The asyncpg pool; StoreError when it is not open."""
        if self._pool is None:
            raise not_open(self._name)
        return self._pool

    async def open(self) -> None:
        """Connect, then create the schema; StoreError, without the password, if it cannot."""
        where = redact(self.dsn)
        refused: tuple[type[BaseException], ...] = (*db_errors(), ValueError)  # ValueError: bad DSN
        try:
            self._pool = await self._driver.create_pool(
                self.dsn,
                min_size=self._size[0],
                max_size=self._size[1],
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
            )
        except refused as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {where}: {exc}") from exc
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._setup(conn)
        except db_errors() as exc:
            await self.close()
            raise StoreError(f"cannot create {self._table} at {where}: {exc}") from exc

    async def close(self) -> None:
        """Close the pool (idempotent)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def fetch(self, sql: str, *args: object) -> list[Any]:
        """The rows of a query."""
        with _failing(f"PostgreSQL read from {self._table} failed"):
            rows: list[Any] = await self.pool.fetch(sql, *args)
        return rows

    async def fetchval(self, sql: str, *args: object) -> Any:
        """The first value of a query's first row."""
        with _failing(f"PostgreSQL read from {self._table} failed"):
            return await self.pool.fetchval(sql, *args)

    async def execute(self, sql: str, *args: object) -> None:
        """One writing statement, on its own (it is its own transaction)."""
        with _failing(f"PostgreSQL write to {self._table} failed"):
            await self.pool.execute(sql, *args)

    @asynccontextmanager
    async def transaction(self, failing: str | None = None) -> AsyncIterator[Any]:
        """A connection in a transaction, committed if the block ends normally; StoreError,
        starting with ``failing``, if the database fails."""
        with _failing(failing or f"PostgreSQL write to {self._table} failed"):
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn
