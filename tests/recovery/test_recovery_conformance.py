"""One conformance suite for every RecoveryStore backend (memory, SQLite, PostgreSQL).

Each test runs once per backend (the ``backend`` fixture of ``conftest.py`` gives the
test's database URL); ``@pytest.mark.backends(*DURABLE)`` marks what only a store whose
data outlives it can show: close and reopen (a server restart), batched writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import asyncpg
import pytest

from salas.db.batching import DEFAULT_MAX_BATCH
from salas.recovery import (
    LoggedPacket,
    MemoryRecoveryStore,
    PostgresRecoveryStore,
    RecoveryStore,
    SessionRecord,
    SQLiteRecoveryStore,
    open_recovery_store,
)
from salas.store import open_store

if TYPE_CHECKING:
    from conftest import BackendUnderTest

DURABLE = ("sqlite", "postgresql")
NOW = int(time.time() * 1000)


class Stores:
    """Opens recovery stores on the test's database; closes them at teardown."""

    def __init__(self, backend: BackendUnderTest) -> None:
        self.backend = backend
        self.opened: list[RecoveryStore] = []

    async def open(self, url: str | None = None) -> Any:
        store = open_recovery_store(url or self.backend.url)
        await store.open()
        self.opened.append(store)
        return store

    async def reopen(self, store: RecoveryStore) -> Any:
        """Close `store` (as a server shutting down does) and open a new one on its data."""
        await store.close()
        return await self.open()

    async def sql(self, query: str, *, setting: str = "") -> list[tuple[Any, ...]]:
        """Rows of `query` run straight on the database (table names without schema), after
        PostgreSQL's `SET <setting>`."""
        if self.backend.name == "sqlite":
            conn = sqlite3.connect(self.backend.url.removeprefix("sqlite://"))
            try:
                return conn.execute(query).fetchall()
            finally:
                conn.close()
        parts = urlsplit(self.backend.url)
        schema = dict(parse_qsl(parts.query))["schema"]
        pg = await asyncpg.connect(urlunsplit(parts._replace(query="")))
        try:
            await pg.execute(f'SET search_path TO "{schema}"')
            if setting:
                await pg.execute(f"SET {setting}")
            return [tuple(row) for row in await pg.fetch(query)]
        finally:
            await pg.close()

    @contextlib.asynccontextmanager
    async def locked_log(self) -> AsyncIterator[None]:
        """Another connection holds a lock that keeps every write off the log table."""
        if self.backend.name == "sqlite":
            conn = sqlite3.connect(self.backend.url.removeprefix("sqlite://"))
            conn.execute("BEGIN IMMEDIATE")  # SQLite's write lock on the whole file
            try:
                yield
            finally:
                conn.rollback()
                conn.close()
            return
        parts = urlsplit(self.backend.url)
        schema = dict(parse_qsl(parts.query))["schema"]
        pg = await asyncpg.connect(urlunsplit(parts._replace(query="")))
        try:
            async with pg.transaction():
                await pg.execute(
                    f'LOCK TABLE "{schema}".messages_recovery_log IN ACCESS EXCLUSIVE MODE'
                )
                yield
        finally:
            await pg.close()


@pytest.fixture
async def stores(backend: BackendUnderTest) -> AsyncIterator[Stores]:
    """Recovery stores on the backend under test, closed before its database is dropped."""
    opened = Stores(backend)
    try:
        yield opened
    finally:
        for store in opened.opened:
            await store.close()


def packet(
    offset: int,
    nsp: str = "/",
    rooms: tuple[str, ...] = ("lobby",),
    *,
    except_rooms: tuple[str, ...] = (),
    packets: tuple[str | bytes, ...] | None = None,
    ts: int | None = None,
) -> LoggedPacket:
    return LoggedPacket(
        offset,
        nsp,
        rooms,
        except_rooms,
        packets if packets is not None else (f'42["said","m{offset}","{offset}"]',),
        NOW if ts is None else ts,
    )


def session(pid: str = "pid-1", **changes: Any) -> SessionRecord:
    fields: dict[str, Any] = {
        "pid": pid,
        "sid": f"sid-of-{pid}",
        "nsp": "/",
        "rooms": (f"sid-of-{pid}", "room:lobby"),
        "data": {"room": "lobby"},
        "base_offset": 7,
        "disconnected_at": NOW,
    }
    fields.update(changes)
    return SessionRecord(**fields)


def offsets(packets: list[LoggedPacket]) -> list[int]:
    return [p.offset for p in packets]


# -- the log -------------------------------------------------------------------------------


async def test_last_offset_is_zero_when_empty(stores: Stores) -> None:
    """A store that never logged anything reports offset 0."""
    store = await stores.open()
    assert await store.last_offset() == 0


async def test_last_offset_is_the_highest_appended(stores: Stores) -> None:
    """last_offset is the highest offset appended, before and after a flush."""
    store = await stores.open()
    for offset in (1, 2, 5, 9):
        store.append(packet(offset))
    assert await store.last_offset() == 9
    await store.flush()
    assert await store.last_offset() == 9


@pytest.mark.backends(*DURABLE)
async def test_last_offset_survives_close_and_reopen(stores: Stores) -> None:
    """After close and reopen (a restart) new offsets continue after the old ones."""
    store = await stores.open()
    for offset in range(1, 43):
        store.append(packet(offset))
    reopened = await stores.reopen(store)  # no flush: close writes what is queued
    assert await reopened.last_offset() == 42


async def test_packets_after_are_ordered_and_filtered_by_namespace(stores: Stores) -> None:
    """packets_after gives the namespace's packets above the offset, oldest first."""
    store = await stores.open()
    for offset in range(1, 21):
        store.append(packet(offset, "/chat" if offset % 3 == 0 else "/"))
    await store.flush()
    assert offsets(await store.packets_after("/", 0, 100)) == [
        o for o in range(1, 21) if o % 3 != 0
    ]
    assert offsets(await store.packets_after("/chat", 0, 100)) == [3, 6, 9, 12, 15, 18]
    assert offsets(await store.packets_after("/", 10, 100)) == [11, 13, 14, 16, 17, 19, 20]
    assert offsets(await store.packets_after("/", 20, 100)) == []
    assert offsets(await store.packets_after("/nope", 0, 100)) == []


async def test_packets_after_honours_limit(stores: Stores) -> None:
    """At most `limit` packets come back: the oldest ones above the offset."""
    store = await stores.open()
    for offset in range(1, 51):
        store.append(packet(offset))
    assert offsets(await store.packets_after("/", 5, 10)) == list(range(6, 16))
    assert offsets(await store.packets_after("/", 45, 10)) == [46, 47, 48, 49, 50]


async def test_packets_after_accepts_offsets_beyond_64_bits(stores: Stores) -> None:
    """Offsets a client may send (up to 19 digits) or negative ones never raise."""
    store = await stores.open()
    store.append(packet(1))
    assert await store.packets_after("/", 9_999_999_999_999_999_999, 10) == []
    assert offsets(await store.packets_after("/", -(10**30), 10)) == [1]


async def test_packets_after_sees_appends_not_yet_flushed(stores: Stores) -> None:
    """A packet appended just before packets_after (no flush) is in its answer."""
    store = await stores.open()
    store.append(packet(1))
    await store.flush()
    for offset in range(2, 2002):
        store.append(packet(offset))
    assert offsets(await store.packets_after("/", 1, 5000)) == list(range(2, 2002))


async def test_text_and_binary_packets_and_rooms_round_trip_exactly(stores: Stores) -> None:
    """str and bytes packets (NUL, invalid UTF-8, lone surrogates, empty) and rooms come back
    exactly as they were appended, types included."""
    packets: tuple[str | bytes, ...] = (
        '451-["file",{"_placeholder":true,"num":0},"3"]',
        b"\x00\xff\xfe binary \x80",
        b"",
        "",
        "4héllo 👋🏽 世界 \ud800 \x00 end",
        bytes(range(256)) * 40,
    )
    original = LoggedPacket(
        3,
        "/ñsp",
        ("room:sala-ñ-📚", "lone \udfff", 'quo"te'),
        ("sid-1", "x\\y"),
        packets,
        1_700_000_000_123,
    )
    store = await stores.open()
    store.append(packet(1))
    store.append(original)
    [back] = await store.packets_after("/ñsp", 0, 10)
    assert back == original
    assert [type(p) for p in back.packets] == [str, bytes, bytes, str, str, bytes]
    assert back.reaches(frozenset({"room:sala-ñ-📚"}))
    assert not back.reaches(frozenset({"room:sala-ñ-📚", "x\\y"}))


async def test_appends_without_await_then_flush_then_visible(stores: Stores) -> None:
    """append returns at once; after flush every packet is stored (durable ones: for a new
    store on the same database too)."""
    store = await stores.open()
    started = time.perf_counter()
    for offset in range(1, 1001):
        assert store.append(packet(offset)) is None
    assert time.perf_counter() - started < 0.5  # 1000 appends: no I/O, no waiting
    await store.flush()
    readers = [store]
    if stores.backend.persistent:
        readers.append(await stores.open())  # another process would see the same
    for reader in readers:
        assert offsets(await reader.packets_after("/", 0, 5000)) == list(range(1, 1001))


@pytest.mark.backends(*DURABLE)
async def test_append_never_waits_for_the_database(stores: Stores) -> None:
    """With the log table locked by another connection, appends still return at once;
    flush returns once the lock is gone and the rows are written."""
    store = await stores.open()
    store.append(packet(1))
    await store.flush()
    async with stores.locked_log():
        started = time.perf_counter()
        for offset in range(2, 1002):
            store.append(packet(offset))
        assert time.perf_counter() - started < 0.5
        flushed = asyncio.create_task(store.flush())
        await asyncio.sleep(0.3)
        assert not flushed.done()  # the writer waits for the lock, not the appends
    await asyncio.wait_for(flushed, 10)
    assert await stores.sql("SELECT count(*) FROM messages_recovery_log") == [(1001,)]


@pytest.mark.backends(*DURABLE)
async def test_many_appends_take_few_transactions(stores: Stores) -> None:
    """10,000 appends in a row are written in ceil(10,000 / max_batch) transactions."""
    store = await stores.open()
    count = 10_000
    for offset in range(1, count + 1):
        store.append(packet(offset, rooms=(f"room:{offset % 10}",)))
    await store.flush()
    expected = -(-count // DEFAULT_MAX_BATCH)
    assert store.batches_committed == expected
    if stores.backend.name == "postgresql":
        # The database's own count: rows written by one transaction share their xmin.
        [(xmins,)] = await stores.sql(
            "SELECT count(DISTINCT xmin::text) FROM messages_recovery_log"
        )
        assert xmins == expected
    assert await stores.sql("SELECT count(*) FROM messages_recovery_log") == [(count,)]


@pytest.mark.backends(*DURABLE)
async def test_close_writes_what_is_queued(stores: Stores) -> None:
    """close() writes every appended packet before closing the database."""
    store = await stores.open()
    for offset in range(1, 301):
        store.append(packet(offset))
    reopened = await stores.reopen(store)
    assert offsets(await reopened.packets_after("/", 0, 1000)) == list(range(1, 301))


@pytest.mark.backends(*DURABLE)
async def test_append_after_close_is_dropped_quietly(stores: Stores) -> None:
    """A broadcast after the store closed (shutdown) neither raises nor is written."""
    store = await stores.open()
    store.append(packet(1))
    await store.close()
    store.append(packet(2))
    await store.flush()
    reopened = await stores.open()
    assert await reopened.last_offset() == 1


@pytest.mark.backends(*DURABLE)
async def test_packets_after_uses_the_namespace_offset_index(stores: Stores) -> None:
    """The replay query is answered from the (nsp, offset) index, not a table scan."""
    store = await stores.open()
    for offset in range(1, 101):
        store.append(packet(offset))
    await store.flush()
    query = (
        "SELECT log_offset, packets FROM messages_recovery_log"
        " WHERE nsp = '/' AND log_offset > 50 ORDER BY log_offset LIMIT 10"
    )
    if stores.backend.name == "sqlite":
        plan = " ".join(str(row) for row in await stores.sql(f"EXPLAIN QUERY PLAN {query}"))
        assert "messages_rlog_nsp_offset" in plan
        assert "TEMP B-TREE" not in plan  # no sort: the index gives the order
    else:
        plan = " ".join(
            str(row) for row in await stores.sql(f"EXPLAIN {query}", setting="enable_seqscan = off")
        )
        assert "messages_rlog_nsp_offset" in plan


# -- sessions ------------------------------------------------------------------------------


async def test_saved_session_is_taken_back_whole(stores: Stores) -> None:
    """take_session returns the record as saved: ids, rooms, data, offsets, time."""
    store = await stores.open()
    record = session(
        data={"room": "lobby", "n": 3, "nested": [1, 2.5, {"a": None, "ok": True}], "ü": "✓"}
    )
    await store.save_session(record)
    assert await store.take_session(record.pid) == record


async def test_take_removes_the_session(stores: Stores) -> None:
    """A session is recovered at most once: a second take finds nothing."""
    store = await stores.open()
    await store.save_session(session("p1"))
    await store.save_session(session("p2"))
    assert await store.take_session("p1") == session("p1")
    assert await store.take_session("p1") is None
    assert await store.take_session("p2") == session("p2")


@pytest.mark.parametrize("pid", ["unknown", "", "nul\x00pid", "lone \ud800", "ü" * 500])
async def test_take_of_an_unknown_pid_is_none(stores: Stores, pid: str) -> None:
    """Any pid a client may present that was never saved gives None, never an error."""
    store = await stores.open()
    await store.save_session(session("pid-1"))
    assert await store.take_session(pid) is None
    assert await store.take_session("pid-1") == session("pid-1")


async def test_saving_a_pid_again_replaces_its_session(stores: Stores) -> None:
    """A second save under one pid (a later disconnect) wins."""
    store = await stores.open()
    await store.save_session(session("p", base_offset=1))
    await store.save_session(session("p", base_offset=2, rooms=("room:b",)))
    assert await store.take_session("p") == session("p", base_offset=2, rooms=("room:b",))


async def test_concurrent_saves_and_takes_apply_in_order(stores: Stores) -> None:
    """Saves and takes asked together apply in the order they were asked."""
    store = await stores.open()
    results = await asyncio.gather(
        store.save_session(session("a", base_offset=1)),
        store.take_session("a"),
        store.take_session("a"),
        store.save_session(session("a", base_offset=2)),
        store.save_session(session("b")),
        store.save_session(session("b", base_offset=3)),
        store.take_session("b"),
    )
    assert results == [
        None,
        session("a", base_offset=1),
        None,
        None,
        None,
        None,
        session("b", base_offset=3),
    ]
    assert await store.take_session("a") == session("a", base_offset=2)


@pytest.mark.backends(*DURABLE)
async def test_many_concurrent_saves_take_few_transactions(stores: Stores) -> None:
    """Sessions saved together (a server shutting down) share their transactions."""
    store = await stores.open()
    await asyncio.gather(*(store.save_session(session(f"p{i}")) for i in range(2000)))
    assert store.session_batches_committed == 1
    taken = await asyncio.gather(*(store.take_session(f"p{i}") for i in range(2000)))
    assert taken == [session(f"p{i}") for i in range(2000)]
    assert store.session_batches_committed == 2


async def test_session_data_round_trips(stores: Stores) -> None:
    """socket.data of JSON types (unicode, nesting, big ints, floats, empty) comes back equal."""
    store = await stores.open()
    for i, data in enumerate(
        [
            {},
            {"name": "Zoë 🦊", "rooms": ["a", "b"], "n": 2**53, "f": -1.5, "none": None},
            {"deep": {"er": {"est": [[], {}, ""]}}},
            {"lone": "\ud83d"},
            None,
            [1, "two"],
        ]
    ):
        await store.save_session(session(f"p{i}", data=data))
        back = await store.take_session(f"p{i}")
        assert back is not None
        assert back.data == data


@pytest.mark.backends(*DURABLE)
async def test_unserialisable_data_is_saved_as_empty_with_a_warning(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    """socket.data that JSON cannot hold is saved as {} (with a warning), never a failure."""
    store = await stores.open()
    with caplog.at_level(logging.WARNING, logger="salas.recovery"):
        await store.save_session(session("p", data={"when": object(), "ok": 1}))
    back = await store.take_session("p")
    assert back == session("p", data={})
    assert "sid-of-p" in caplog.text and "not JSON-serialisable" in caplog.text


# -- a restart -----------------------------------------------------------------------------


@pytest.mark.backends(*DURABLE)
async def test_log_and_sessions_survive_close_and_reopen(stores: Stores) -> None:
    """What a server saved while shutting down is there for the next one: its sessions, the
    packets after a client's offset, and offsets that go on from where they were."""
    store = await stores.open()
    for offset in range(1, 11):
        store.append(packet(offset, rooms=("room:a",) if offset % 2 else ("room:b",)))
    await store.save_session(session("p", rooms=("sid-of-p", "room:a"), base_offset=4))
    reopened = await stores.reopen(store)
    record = await reopened.take_session("p")
    assert record == session("p", rooms=("sid-of-p", "room:a"), base_offset=4)
    missed = await reopened.packets_after("/", record.base_offset, 100)
    assert [p.offset for p in missed if p.reaches(frozenset(record.rooms))] == [5, 7, 9]
    assert await reopened.last_offset() == 10
    assert await reopened.take_session("p") is None  # taken, and that too is durable
    again = await stores.reopen(reopened)
    assert await again.take_session("p") is None


# -- pruning -------------------------------------------------------------------------------


async def test_prune_removes_only_old_packets_and_sessions(stores: Stores) -> None:
    """prune(before) forgets packets and sessions older than `before`, keeps the rest."""
    store = await stores.open()
    for offset in range(1, 11):
        store.append(packet(offset, ts=NOW - 10_000 if offset <= 6 else NOW))
    await store.save_session(session("old", disconnected_at=NOW - 10_000))
    await store.save_session(session("new", disconnected_at=NOW))
    await store.save_session(session("edge", disconnected_at=NOW - 5_000))
    await store.prune(NOW - 5_000)
    assert offsets(await store.packets_after("/", 0, 100)) == [7, 8, 9, 10]
    assert await store.take_session("old") is None
    assert await store.take_session("new") == session("new", disconnected_at=NOW)
    assert await store.take_session("edge") == session("edge", disconnected_at=NOW - 5_000)
    assert await store.last_offset() == 10


async def test_prune_keeps_the_newest_packet_so_offsets_never_go_back(stores: Stores) -> None:
    """Even when every packet is old, the newest stays: last_offset does not fall to 0 (a
    restarted server would otherwise hand out offsets its clients already hold)."""
    store = await stores.open()
    for offset in range(1, 6):
        store.append(packet(offset, ts=NOW - 60_000))
    await store.prune(NOW)
    assert offsets(await store.packets_after("/", 0, 100)) == [5]
    assert await store.last_offset() == 5
    if stores.backend.persistent:
        assert await (await stores.reopen(store)).last_offset() == 5


# -- the database beside the messages --------------------------------------------------------


@pytest.mark.backends(*DURABLE)
async def test_tables_sit_beside_the_messages_and_honour_table_option(stores: Stores) -> None:
    """?table=chat puts the recovery tables at chat_recovery_*, in the message store's
    database; both stores work on it at once."""
    sep = "&" if "?" in stores.backend.url else "?"
    url = f"{stores.backend.url}{sep}table=chat"
    messages = open_store(url)
    await messages.open()
    try:
        store = await stores.open(url)
        store.append(packet(1))
        stored, _ = await asyncio.gather(messages.append("lobby", "hi", "ana"), store.flush())
        assert await messages.history("lobby") == [stored]
    finally:
        await messages.close()
    assert await stores.sql("SELECT count(*) FROM chat_recovery_log") == [(1,)]
    assert await stores.sql("SELECT count(*) FROM chat_recovery_sessions") == [(0,)]
    assert await stores.sql("SELECT count(*) FROM chat") == [(1,)]


async def test_backend_class_matches_the_url(stores: Stores) -> None:
    """open_recovery_store picks the backend of the URL's scheme."""
    store = await stores.open()
    expected = {
        "memory": MemoryRecoveryStore,
        "sqlite": SQLiteRecoveryStore,
        "postgresql": PostgresRecoveryStore,
    }[stores.backend.name]
    assert type(store) is expected
