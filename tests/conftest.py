"""Fixtures every test folder may ask for: PostgreSQL and Redis, probed once per session
(tests/support/services.py: skipped when missing, failed under ``SALAS_REQUIRE_SERVICES=1``);
and, for the message store and recovery store suites (tests/store, tests/recovery), every
database backend behind one ``backend`` fixture.

A test that asks for ``backend`` runs once per backend (``memory``, ``sqlite``,
``postgresql``); ``@pytest.mark.backends("sqlite", "postgresql")`` narrows that list.

SQLite lives in ``tmp_path``. PostgreSQL is reached at ``SALAS_TEST_POSTGRES_URL`` or,
failing that, ``postgresql://postgres@127.0.0.1:5432/test`` then the same as ``root``;
each test gets its own schema (``?schema=salas_test_<random>``), dropped afterwards.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from salas.store import MessageStore, open_store
from tests.support.services import probe_postgres, probe_redis

ALL_BACKENDS = ("memory", "sqlite", "postgresql")
PERSISTENT = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        names = marker.args if marker is not None else ALL_BACKENDS
        metafunc.parametrize("backend_name", names)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL URL that accepts a connection (sync: the probe runs its own loop)."""
    return probe_postgres()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis URL whose server answers."""
    return probe_redis()


class BackendUnderTest:
    """One backend's URL for this test, and the test's handles on the database beneath."""

    def __init__(
        self, name: str, url: str, *, path: str = "", dsn: str = "", schema: str = ""
    ) -> None:
        self.name = name
        self.url = url
        self._path = path
        self.persistent = name in PERSISTENT
        self._dsn = dsn
        self._schema = schema
        self._stores: list[MessageStore] = []

    async def open(self) -> Any:
        """A fresh store on this test's database, opened; closed at teardown."""
        store = open_store(self.url)
        await store.open()
        self._stores.append(store)
        return store

    async def fail_inserts_of(self, text: str) -> None:
        """Make the database itself refuse to insert a message whose text is ``text``."""
        if self.name == "sqlite":
            conn = sqlite3.connect(self._path, isolation_level=None)
            try:
                conn.execute(
                    "CREATE TRIGGER test_refuse BEFORE INSERT ON messages"
                    f" WHEN NEW.message = '{text}'"
                    " BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
                )
            finally:
                conn.close()
        elif self.name == "postgresql":
            s = self._schema
            await self._sql(
                f'CREATE FUNCTION "{s}".test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$'
                f" BEGIN IF NEW.message = '{text}' THEN"
                " RAISE EXCEPTION 'refused by the test trigger'; END IF; RETURN NEW; END $$;"
                f'CREATE TRIGGER test_refuse BEFORE INSERT ON "{s}".messages'
                f' FOR EACH ROW EXECUTE FUNCTION "{s}".test_refuse();'
            )
        else:
            raise AssertionError(f"{self.name} has no database to make fail")

    async def transactions_that_wrote_rows(self) -> int:
        """PostgreSQL's own count of the transactions that wrote the table's rows."""
        assert self.name == "postgresql"
        conn = await asyncpg.connect(self._dsn)
        try:
            count: int = await conn.fetchval(
                f'SELECT count(DISTINCT xmin::text) FROM "{self._schema}".messages'
            )
        finally:
            await conn.close()
        return count

    async def _sql(self, sql: str) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def teardown(self) -> None:
        for store in self._stores:
            await store.close()
        if self.name == "postgresql":
            await self._sql(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')


@pytest.fixture
def backend_spec(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> BackendUnderTest:
    """Where the backend under test keeps this test's data (sync: the probe runs its own loop)."""
    if backend_name == "memory":
        return BackendUnderTest("memory", "memory://")
    if backend_name == "sqlite":
        path = str(tmp_path / "history.db")
        return BackendUnderTest("sqlite", f"sqlite://{path}", path=path)
    dsn = request.getfixturevalue("postgres_url")
    schema = f"salas_test_{uuid.uuid4().hex[:12]}"
    return BackendUnderTest("postgresql", f"{dsn}?schema={schema}", dsn=dsn, schema=schema)


@pytest.fixture
async def backend(backend_spec: BackendUnderTest) -> AsyncIterator[BackendUnderTest]:
    """The backend under test; its stores are closed and its PostgreSQL schema dropped after."""
    try:
        yield backend_spec
    finally:
        await backend_spec.teardown()
