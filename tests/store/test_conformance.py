"""One conformance suite for every MessageStore backend (memory, SQLite, PostgreSQL).

Each test runs once per backend (see ``conftest.py``); a test marked with
``@pytest.mark.backends(...)`` needs something only those backends have (a file or a
server that outlives the store, a group committer).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from salas.db.batching import DEFAULT_MAX_BATCH
from salas.db.urls import split_postgres_url, split_sqlite_url
from salas.store import (
    STORE_PAGE_MAX,
    BanStore,
    InvalidInputError,
    MessageStore,
    StoredMessage,
    StoreError,
    open_ban_store,
)

if TYPE_CHECKING:
    from conftest import BackendUnderTest

# The backends whose data outlives a store object, and which write through group commit.
PERSISTENT = ("sqlite", "postgresql")


def texts(messages: list[StoredMessage]) -> list[str]:
    return [m.message for m in messages]


async def fill(store: Any, channel: str, count: int, prefix: str = "m") -> list[StoredMessage]:
    """``count`` messages in ``channel``, appended one after another (ids in this order)."""
    return [await store.append(channel, f"{prefix}{i}", "ana") for i in range(count)]


# -- append ------------------------------------------------------------------------------


async def test_append_returns_the_stored_message(backend: BackendUnderTest) -> None:
    """append returns the message with a positive id and a store-set millisecond ts."""
    store = await backend.open()
    t0 = time.time_ns() // 1_000_000
    m = await store.append("lobby", "hello", "ana")
    t1 = time.time_ns() // 1_000_000
    assert isinstance(store, MessageStore)
    assert (m.channel, m.message, m.user, m.client_id) == ("lobby", "hello", "ana", None)
    assert m.id > 0
    assert t0 <= m.ts <= t1
    assert await store.history("lobby") == [m]


async def test_ids_strictly_increase_across_channels(backend: BackendUnderTest) -> None:
    """Ids are store-wide and strictly increasing, whatever the channel."""
    store = await backend.open()
    ids = [(await store.append(f"room{i % 3}", f"m{i}", "ana")).id for i in range(12)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


async def test_concurrent_appends_all_stored_with_distinct_ids(backend: BackendUnderTest) -> None:
    """Appends awaited together are each stored once, with distinct ids."""
    store = await backend.open()
    stored = await asyncio.gather(*(store.append("lobby", f"m{i}", "ana") for i in range(200)))
    assert len({m.id for m in stored}) == 200
    history = await store.history("lobby", limit=500)
    assert sorted(texts(history)) == sorted(f"m{i}" for i in range(200))
    assert [m.id for m in history] == sorted(m.id for m in stored)


async def test_unicode_text_round_trips(backend: BackendUnderTest) -> None:
    """Emoji, CJK, RTL, combining marks, astral characters and newlines come back intact."""
    store = await backend.open()
    text = (
        "héllo 👋🏽 世界 שלום e\u0301 \U0001d518\U0001d52b \"quotes\" 'single' \\ back\nslash\ttab"
    )
    channel, user = "sala-ñ-📚", "Zoë 🦊"
    m = await store.append(channel, text, user, client_id="ключ-🔑")
    assert (m.channel, m.message, m.user, m.client_id) == (channel, text, user, "ключ-🔑")
    [again] = await store.history(channel)
    assert again == m


async def test_long_text_round_trips(backend: BackendUnderTest) -> None:
    """A 100 kB message is stored and read back whole."""
    store = await backend.open()
    text = "x" * 50_000 + "ü" * 25_000
    m = await store.append("lobby", text, "ana")
    assert (await store.history("lobby"))[0].message == text == m.message


async def test_unstorable_text_is_refused_without_harming_others(
    backend: BackendUnderTest,
) -> None:
    """NUL, lone surrogates and non-str are refused alone; concurrent appends still succeed."""
    store = await backend.open()
    results = await asyncio.gather(
        store.append("lobby", "before", "ana"),
        store.append("lobby", "nul\x00here", "ana"),
        store.append("lobby", "lone \ud800 surrogate", "ana"),
        store.append("lobby", 42, "ana"),
        store.append("lob\x00by", "x", "ana"),
        store.append("lobby", "x", "ana", client_id="\udfff"),
        store.append("lobby", "after", "ana"),
        return_exceptions=True,
    )
    assert all(isinstance(r, InvalidInputError) for r in results[1:6]), results
    assert isinstance(results[0], StoredMessage)
    assert isinstance(results[6], StoredMessage)
    assert texts(await store.history("lobby")) == ["before", "after"]


# -- idempotency by (channel, client_id) -------------------------------------------------


async def test_repeated_client_id_returns_the_first_message(backend: BackendUnderTest) -> None:
    """A second append with the same (channel, client_id) stores nothing, returns the first."""
    store = await backend.open()
    first = await store.append("lobby", "original", "ana", client_id="c-1")
    await store.append("lobby", "in between", "bob")
    again = await store.append("lobby", "edited retry", "eve", client_id="c-1")
    assert again == first
    assert texts(await store.history("lobby")) == ["original", "in between"]


async def test_one_batch_mixing_client_ids_returns_each_its_own_row(
    backend: BackendUnderTest,
) -> None:
    """Appends in flight together, some with a client_id (one repeated) and some without,
    in several rooms: each result is exactly the row history holds under its id, ids
    increase in the order of the calls, and the repeat returns the first row."""
    store = await backend.open()
    calls = []
    for i in range(60):
        client_id = None if i % 3 else f"c{i}"
        calls.append(store.append(f"room{i % 4}", f"m{i}", "ana", client_id=client_id))
    calls.append(store.append("room0", "again", "ana", client_id="c0"))
    results = await asyncio.gather(*calls)
    first, repeat = results[:60], results[60]
    assert [m.message for m in first] == [f"m{i}" for i in range(60)]
    assert [m.id for m in first] == sorted({m.id for m in first})  # distinct, increasing
    assert repeat == first[0]
    stored = {m.id: m for room in range(4) for m in await store.history(f"room{room}")}
    assert {m.id: m for m in first} == stored


async def test_concurrent_appends_with_one_client_id_store_one_row(
    backend: BackendUnderTest,
) -> None:
    """Two appends in flight at once with the same client_id give one row and equal results."""
    store = await backend.open()
    a, b = await asyncio.gather(
        store.append("lobby", "one", "ana", client_id="dup"),
        store.append("lobby", "two", "ana", client_id="dup"),
    )
    assert a == b
    assert a.message == "one"
    assert await store.history("lobby") == [a]


async def test_client_id_is_scoped_to_its_channel(backend: BackendUnderTest) -> None:
    """The same client_id in two channels is two messages; no client_id never deduplicates."""
    store = await backend.open()
    a = await store.append("a", "hi", "ana", client_id="same")
    b = await store.append("b", "hi", "ana", client_id="same")
    assert a.id != b.id
    x = await store.append("a", "hi", "ana")
    y = await store.append("a", "hi", "ana")
    assert x.id != y.id
    assert texts(await store.history("a")) == ["hi", "hi", "hi"]
    assert [m.client_id for m in await store.history("a")] == ["same", None, None]


# -- history -----------------------------------------------------------------------------


async def test_history_without_bounds_is_the_latest_oldest_first(
    backend: BackendUnderTest,
) -> None:
    """history(limit=n) is the latest n messages, oldest first."""
    store = await backend.open()
    await fill(store, "lobby", 10)
    assert texts(await store.history("lobby", limit=3)) == ["m7", "m8", "m9"]
    assert texts(await store.history("lobby")) == [f"m{i}" for i in range(10)]


async def test_history_default_limit_is_50(backend: BackendUnderTest) -> None:
    """Without limit, history returns the latest 50."""
    store = await backend.open()
    await asyncio.gather(*(store.append("lobby", f"m{i}", "ana") for i in range(60)))
    history = await store.history("lobby")
    assert len(history) == 50
    assert history == (await store.history("lobby", limit=60))[10:]


async def test_history_before_pages_back(backend: BackendUnderTest) -> None:
    """before=id returns the latest `limit` messages with a smaller id, oldest first."""
    store = await backend.open()
    m = await fill(store, "lobby", 10)
    assert texts(await store.history("lobby", before=m[6].id, limit=3)) == ["m3", "m4", "m5"]
    assert texts(await store.history("lobby", before=m[2].id, limit=5)) == ["m0", "m1"]
    assert await store.history("lobby", before=m[0].id) == []
    # Paging back until empty visits every message once.
    seen: list[StoredMessage] = []
    page = await store.history("lobby", limit=4)
    while page:
        seen[:0] = page
        page = await store.history("lobby", before=page[0].id, limit=4)
    assert seen == m


async def test_history_after_pages_forward(backend: BackendUnderTest) -> None:
    """after=id returns the first `limit` messages with a larger id, oldest first."""
    store = await backend.open()
    m = await fill(store, "lobby", 10)
    assert texts(await store.history("lobby", after=m[2].id, limit=3)) == ["m3", "m4", "m5"]
    assert texts(await store.history("lobby", after=m[7].id, limit=5)) == ["m8", "m9"]
    assert await store.history("lobby", after=m[9].id) == []
    assert texts(await store.history("lobby", after=0, limit=2)) == ["m0", "m1"]


async def test_history_between_before_and_after(backend: BackendUnderTest) -> None:
    """before and after together give the first `limit` messages strictly between them."""
    store = await backend.open()
    m = await fill(store, "lobby", 10)
    between = await store.history("lobby", after=m[2].id, before=m[8].id, limit=3)
    assert texts(between) == ["m3", "m4", "m5"]
    between = await store.history("lobby", after=m[2].id, before=m[5].id, limit=10)
    assert texts(between) == ["m3", "m4"]
    assert await store.history("lobby", after=m[5].id, before=m[3].id) == []


async def test_history_limit_is_clamped(backend: BackendUnderTest) -> None:
    """limit below 1 returns one message, above 500 returns 500."""
    store = await backend.open()
    await asyncio.gather(*(store.append("lobby", f"m{i}", "ana") for i in range(510)))
    everything = await store.history("lobby", limit=STORE_PAGE_MAX)
    assert len(everything) == 500
    assert len(await store.history("lobby", limit=10_000)) == 500
    assert await store.history("lobby", limit=0) == everything[-1:]
    assert await store.history("lobby", limit=-7) == everything[-1:]
    assert await store.history("lobby", after=0, limit=0) == [
        (await store.history("lobby", after=0, limit=1))[0]
    ]


async def test_history_accepts_out_of_range_ids(backend: BackendUnderTest) -> None:
    """Ids beyond 64 bits from a client mean "no bound" rather than a driver overflow."""
    store = await backend.open()
    m = await fill(store, "lobby", 3)
    assert await store.history("lobby", before=10**30) == m
    assert await store.history("lobby", after=-(10**30)) == m
    assert await store.history("lobby", after=10**30) == []
    assert await store.history("lobby", before=-5) == []


async def test_history_refuses_arguments_of_the_wrong_type(backend: BackendUnderTest) -> None:
    """A float, str or bool where an int is expected raises InvalidInputError."""
    store = await backend.open()
    for kwargs in ({"before": 1.5}, {"after": "3"}, {"limit": "10"}, {"before": True}):
        with pytest.raises(InvalidInputError):
            await store.history("lobby", **kwargs)


async def test_history_of_an_unknown_channel_is_empty(backend: BackendUnderTest) -> None:
    """A channel nobody wrote to has an empty history."""
    store = await backend.open()
    await store.append("lobby", "hi", "ana")
    assert await store.history("nowhere") == []
    assert await store.history("nowhere", before=100, after=0) == []


async def test_channels_are_isolated(backend: BackendUnderTest) -> None:
    """Each channel's history, pages included, holds only that channel's messages."""
    store = await backend.open()
    stored = [await store.append("ab"[i % 2], f"{'ab'[i % 2]}{i}", "ana") for i in range(20)]
    a = [m for m in stored if m.channel == "a"]
    b = [m for m in stored if m.channel == "b"]
    assert await store.history("a") == a
    assert await store.history("b") == b
    assert await store.history("a", before=b[5].id, limit=100) == [m for m in a if m.id < b[5].id]
    assert await store.history("b", after=a[3].id, limit=3) == [m for m in b if m.id > a[3].id][:3]


# -- life cycle and health ---------------------------------------------------------------


async def test_health_reports_ok_when_open(backend: BackendUnderTest) -> None:
    """health names the backend and says ok while the store is open."""
    store = await backend.open()
    health = await store.health()
    assert health["backend"] == backend.name
    assert health["ok"] is True
    assert "error" not in health


async def test_closed_store_refuses_work_and_reports_unhealthy(
    backend: BackendUnderTest,
) -> None:
    """After close, append and history raise StoreError and health says ok False with error."""
    store = await backend.open()
    await store.append("lobby", "hi", "ana")
    await store.close()
    with pytest.raises(StoreError):
        await store.append("lobby", "late", "ana")
    with pytest.raises(StoreError):
        await store.history("lobby")
    health = await store.health()
    assert health["ok"] is False
    assert health["error"]


async def test_open_twice_is_harmless(backend: BackendUnderTest) -> None:
    """A second open on an open store keeps it working with its data."""
    store = await backend.open()
    m = await store.append("lobby", "hi", "ana")
    await store.open()
    assert await store.history("lobby") == [m]


@pytest.mark.backends(*PERSISTENT)
async def test_close_then_reopen_keeps_messages(backend: BackendUnderTest) -> None:
    """Messages, and their client_ids, survive close and reopen; new ids stay larger."""
    store = await backend.open()
    old = [await store.append("lobby", f"m{i}", "ana", client_id=f"c{i}") for i in range(5)]
    await store.close()
    reopened = await backend.open()
    assert await reopened.history("lobby") == old
    assert await reopened.append("lobby", "retry", "ana", client_id="c2") == old[2]
    new = await reopened.append("lobby", "new", "ana")
    assert new.id > old[-1].id


@pytest.mark.backends(*PERSISTENT)
async def test_close_writes_what_is_queued(backend: BackendUnderTest) -> None:
    """close() finishes the appends already queued before closing the database."""
    store = await backend.open()
    tasks = [asyncio.create_task(store.append("lobby", f"m{i}", "ana")) for i in range(300)]
    await asyncio.sleep(0)  # the tasks run up to their queued write
    await store.close()
    stored = [task.result() for task in tasks]  # every one completed, none failed
    reopened = await backend.open()
    assert await reopened.history("lobby", limit=500) == sorted(stored, key=lambda m: m.id)


@pytest.mark.backends(*PERSISTENT)
async def test_two_stores_on_one_database_agree(backend: BackendUnderTest) -> None:
    """Two stores (as two processes would) share ids and client_id deduplication."""
    one, two = await backend.open(), await backend.open()
    a, b = await asyncio.gather(
        one.append("lobby", "from one", "ana", client_id="shared"),
        two.append("lobby", "from two", "bob", client_id="shared"),
    )
    assert a == b
    flood = await asyncio.gather(
        *(s.append("lobby", f"m{i}", "ana") for i in range(200) for s in (one, two))
    )
    assert len({m.id for m in flood} | {a.id}) == 401
    for store in (one, two):
        history = await store.history("lobby", limit=500)
        assert len(history) == 401
        assert [m.id for m in history] == sorted(m.id for m in history)


# -- group commit ------------------------------------------------------------------------


@pytest.mark.backends(*PERSISTENT)
async def test_flood_of_appends_takes_few_transactions(backend: BackendUnderTest) -> None:
    """10,000 concurrent appends are written in a handful of transactions, not 10,000."""
    store = await backend.open()
    count = 10_000
    stored = await asyncio.gather(
        *(store.append(f"room{i % 10}", f"m{i}", f"u{i % 7}") for i in range(count))
    )
    assert len({m.id for m in stored}) == count
    batches = store.batches_committed
    # Everything is queued before the first batch starts, so max_batch alone sets the count.
    assert batches == -(-count // DEFAULT_MAX_BATCH)
    assert store.messages_committed == count
    if backend.name == "postgresql":
        # The database's own view: rows written by one transaction share their xmin.
        assert await backend.transactions_that_wrote_rows() == batches
    for room in range(10):
        history = await store.history(f"room{room}", limit=500)
        assert texts(history) == [f"m{i}" for i in range(room, count, 10)][-500:]


@pytest.mark.backends(*PERSISTENT)
async def test_failed_batch_fails_its_waiters_and_keeps_earlier_commits(
    backend: BackendUnderTest,
) -> None:
    """When the database refuses a batch, each of its appends raises StoreError and nothing
    of it is stored; earlier messages stay and later appends work."""
    store = await backend.open()
    kept = await store.append("lobby", "kept", "ana")
    await backend.fail_inserts_of("boom")
    results = await asyncio.gather(
        store.append("lobby", "same batch before", "ana"),
        store.append("lobby", "boom", "bob"),
        store.append("lobby", "same batch after", "cy", client_id="retry-me"),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreError) for r in results), results
    assert all("refused by the test trigger" in str(r) for r in results)
    assert (await store.health())["batches_failed"] == 1
    assert await store.history("lobby") == [kept]
    retried = await store.append("lobby", "same batch after", "cy", client_id="retry-me")
    assert retried.id > kept.id
    assert await store.history("lobby") == [kept, retried]


# -- deletion: tombstones ----------------------------------------------------------------


async def test_delete_leaves_a_tombstone_that_history_skips(backend: BackendUnderTest) -> None:
    """delete blanks the text, keeps id, author and user id, and history no longer shows it."""
    store = await backend.open()
    a = await store.append("lobby", "first", "ana", user_id="u-ana")
    b = await store.append("lobby", "regret", "bob", client_id="c-b", user_id="u-bob")
    c = await store.append("lobby", "third", "ana", user_id="u-ana")
    t0 = time.time_ns() // 1_000_000
    tombstone = await store.delete("lobby", b.id, by="u-mod")
    assert tombstone is not None
    assert tombstone.deleted
    assert (tombstone.id, tombstone.channel, tombstone.message) == (b.id, "lobby", "")
    assert (tombstone.user, tombstone.user_id, tombstone.ts) == ("bob", "u-bob", b.ts)
    assert tombstone.client_id == "c-b"
    assert tombstone.deleted_by == "u-mod"
    assert tombstone.deleted_at is not None and tombstone.deleted_at >= t0
    assert await store.get("lobby", b.id) == tombstone
    assert await store.history("lobby") == [a, c]
    assert await store.get("lobby", a.id) == a


async def test_delete_is_idempotent(backend: BackendUnderTest) -> None:
    """Deleting again changes nothing and returns the first deletion's tombstone."""
    store = await backend.open()
    m = await store.append("lobby", "oops", "ana")
    first = await store.delete("lobby", m.id, by="u-1")
    again = await store.delete("lobby", m.id, by="u-2")
    assert first is not None and first == again
    assert again.deleted_by == "u-1"
    assert await store.history("lobby") == []


async def test_delete_without_by_records_none(backend: BackendUnderTest) -> None:
    """A deletion not told who did it is still a tombstone, with deleted_by None."""
    store = await backend.open()
    m = await store.append("lobby", "oops", "ana")
    tombstone = await store.delete("lobby", m.id)
    assert tombstone is not None and tombstone.deleted and tombstone.deleted_by is None


async def test_delete_of_an_unknown_or_foreign_id_is_none(backend: BackendUnderTest) -> None:
    """An id unknown, or another channel's, deletes nothing and get finds nothing."""
    store = await backend.open()
    mine = await store.append("lobby", "stay", "ana")
    theirs = await store.append("other", "stay too", "bob")
    assert await store.delete("lobby", theirs.id + 100) is None
    assert await store.delete("lobby", theirs.id, by="u-ana") is None
    assert await store.delete("lobby", 10**30) is None
    assert await store.get("lobby", theirs.id) is None
    assert await store.get("nowhere", mine.id) is None
    assert await store.history("other") == [theirs]
    assert await store.get("other", theirs.id) == theirs
    assert await store.history("lobby") == [mine]


async def test_delete_and_get_refuse_arguments_of_the_wrong_type(
    backend: BackendUnderTest,
) -> None:
    """A non-int id, a NUL in channel or by raise InvalidInputError."""
    store = await backend.open()
    m = await store.append("lobby", "hi", "ana")
    for args, kwargs in (
        (("lobby", str(m.id)), {}),
        (("lobby", None), {}),
        (("lobby", True), {}),
        (("lob\x00by", m.id), {}),
        (("lobby", m.id), {"by": "u\x00"}),
    ):
        with pytest.raises(InvalidInputError):
            await store.delete(*args, **kwargs)
    with pytest.raises(InvalidInputError):
        await store.get("lobby", 1.0)
    assert await store.history("lobby") == [m]


async def test_history_pages_around_tombstones_stay_full(backend: BackendUnderTest) -> None:
    """Tombstones do not count against limit: pages hold `limit` live messages when there are."""
    store = await backend.open()
    m = await fill(store, "lobby", 10)
    for i in (3, 4, 6, 9):
        await store.delete("lobby", m[i].id)
    live = [m[i] for i in (0, 1, 2, 5, 7, 8)]
    assert await store.history("lobby", limit=3) == [m[5], m[7], m[8]]
    assert await store.history("lobby", before=m[7].id, limit=3) == [m[1], m[2], m[5]]
    assert await store.history("lobby", after=m[2].id, limit=2) == [m[5], m[7]]
    assert await store.history("lobby", after=m[0].id, before=m[8].id, limit=3) == [
        m[1],
        m[2],
        m[5],
    ]
    assert await store.history("lobby", after=m[8].id) == []
    # Paging back, and forward, until empty visits every live message once.
    seen: list[StoredMessage] = []
    page = await store.history("lobby", limit=2)
    while page:
        seen[:0] = page
        page = await store.history("lobby", before=page[0].id, limit=2)
    assert seen == live
    forward: list[StoredMessage] = []
    page = await store.history("lobby", after=0, limit=2)
    while page:
        forward += page
        page = await store.history("lobby", after=page[-1].id, limit=2)
    assert forward == live


async def test_ids_are_not_reused_after_a_delete(backend: BackendUnderTest) -> None:
    """A message appended after deleting the latest one gets a larger id."""
    store = await backend.open()
    m = await store.append("lobby", "last", "ana")
    await store.delete("lobby", m.id)
    after = await store.append("lobby", "next", "ana")
    assert after.id > m.id


async def test_repeated_client_id_after_delete_returns_the_tombstone(
    backend: BackendUnderTest,
) -> None:
    """A retry of a deleted message's append stores nothing and brings no text back."""
    store = await backend.open()
    m = await store.append("lobby", "gone", "ana", client_id="c-1")
    tombstone = await store.delete("lobby", m.id)
    again = await store.append("lobby", "gone", "ana", client_id="c-1")
    assert again == tombstone
    assert again.message == ""
    assert await store.history("lobby") == []


async def test_user_id_round_trips(backend: BackendUnderTest) -> None:
    """append's user_id comes back from append, history and get; without one it is None."""
    store = await backend.open()
    with_id = await store.append("lobby", "hi", "Ana", user_id="sub-ä-🔑")
    without = await store.append("lobby", "hi", "guest")
    assert with_id.user_id == "sub-ä-🔑"
    assert without.user_id is None
    assert await store.history("lobby") == [with_id, without]
    assert await store.get("lobby", with_id.id) == with_id
    assert with_id.to_wire()["user_id"] == "sub-ä-🔑"
    assert "user_id" not in without.to_wire()
    with pytest.raises(InvalidInputError):
        await store.append("lobby", "hi", "ana", user_id="u\x00")


async def test_closed_store_refuses_get_and_delete(backend: BackendUnderTest) -> None:
    """After close, get and delete raise StoreError."""
    store = await backend.open()
    m = await store.append("lobby", "hi", "ana")
    await store.close()
    with pytest.raises(StoreError):
        await store.get("lobby", m.id)
    with pytest.raises(StoreError):
        await store.delete("lobby", m.id)


@pytest.mark.backends(*PERSISTENT)
async def test_tombstones_survive_reopen(backend: BackendUnderTest) -> None:
    """A deletion is durable: after close and reopen the message is still a tombstone."""
    store = await backend.open()
    kept = await store.append("lobby", "kept", "ana", user_id="u-1")
    gone = await store.append("lobby", "gone", "ana", user_id="u-1")
    tombstone = await store.delete("lobby", gone.id, by="u-mod")
    await store.close()
    reopened = await backend.open()
    assert await reopened.history("lobby") == [kept]
    assert await reopened.get("lobby", gone.id) == tombstone


@pytest.mark.backends("sqlite")
async def test_deleted_text_is_gone_from_the_sqlite_files(backend: BackendUnderTest) -> None:
    """After delete, neither the database file nor its WAL holds the deleted text's bytes."""
    path, _ = split_sqlite_url(backend.url)
    store = await backend.open()
    secret = f"secret-{uuid.uuid4().hex}"
    long_secret = f"long-{uuid.uuid4().hex}-" + "z" * 20_000  # overflows its page
    kept = f"kept-{uuid.uuid4().hex}"
    short = await store.append("lobby", secret, "ana")
    long = await store.append("lobby", long_secret, "ana")
    await store.append("lobby", kept, "ana")

    def on_disk() -> bytes:
        wal = Path(f"{path}-wal")
        return Path(path).read_bytes() + (wal.read_bytes() if wal.exists() else b"")

    assert secret.encode() in on_disk()
    assert long_secret[:40].encode() in on_disk()
    await store.delete("lobby", short.id)
    await store.delete("lobby", long.id)
    # Also after the store is closed (SQLite checkpoints on its last close).
    for _ in range(2):
        data = on_disk()
        assert secret.encode() not in data
        assert long_secret[:40].encode() not in data
        assert b"z" * 1000 not in data
        assert kept.encode() in data
        await store.close()


# -- a table of the first schema ---------------------------------------------------------

OLD_DDL = (
    'CREATE TABLE "{t}" (id {id}, channel TEXT NOT NULL, message TEXT NOT NULL,'
    " author TEXT NOT NULL, ts BIGINT NOT NULL, client_id TEXT)"
)


@pytest.mark.backends(*PERSISTENT)
async def test_a_table_of_the_old_schema_gains_the_new_columns(
    backend: BackendUnderTest,
) -> None:
    """A messages table made before user_id and deletion existed is migrated on open."""
    if backend.name == "sqlite":
        path, _ = split_sqlite_url(backend.url)
        conn = sqlite3.connect(path)
        with conn:
            conn.execute(OLD_DDL.format(t="messages", id="INTEGER PRIMARY KEY AUTOINCREMENT"))
            conn.execute(
                "INSERT INTO messages (channel, message, author, ts, client_id)"
                " VALUES ('lobby', 'old', 'ana', 5, 'c-old')"
            )
        conn.close()
    else:
        dsn, schema, _ = split_postgres_url(backend.url)
        pg = await asyncpg.connect(dsn)
        try:
            await pg.execute(f'CREATE SCHEMA "{schema}"')
            t = f'{schema}"."messages'
            await pg.execute(OLD_DDL.format(t=t, id="BIGSERIAL PRIMARY KEY"))
            await pg.execute(
                f'INSERT INTO "{t}" (channel, message, author, ts, client_id)'
                " VALUES ('lobby', 'old', 'ana', 5, 'c-old')"
            )
        finally:
            await pg.close()
    store = await backend.open()
    [old] = await store.history("lobby")
    assert (old.message, old.user, old.ts, old.client_id) == ("old", "ana", 5, "c-old")
    assert (old.user_id, old.deleted_at, old.deleted_by) == (None, None, None)
    new = await store.append("lobby", "new", "bob", user_id="u-bob")
    assert new.id > old.id
    assert await store.delete("lobby", old.id, by="u-mod") is not None
    assert await store.history("lobby") == [new]
    await store.close()
    again = await backend.open()  # a second open finds nothing to add
    assert await again.history("lobby") == [new]


# -- bans --------------------------------------------------------------------------------


@pytest.fixture
async def ban_stores(backend: BackendUnderTest) -> AsyncIterator[Callable[[], Awaitable[Any]]]:
    """A factory of ban stores on the backend under test's URL, opened; all closed after."""
    opened: list[BanStore] = []

    async def open_one() -> Any:
        bans = open_ban_store(backend.url)
        await bans.open()
        opened.append(bans)
        return bans

    try:
        yield open_one
    finally:
        for bans in opened:
            await bans.close()


async def test_ban_unban_and_is_banned(ban_stores: Callable[[], Awaitable[Any]]) -> None:
    """A ban holds in its channel only, for its user only, until unban lifts it."""
    bans = await ban_stores()
    assert isinstance(bans, BanStore)
    assert await bans.is_banned("lobby", "u-1") is None
    t0 = time.time_ns() // 1_000_000
    ban = await bans.ban("lobby", "u-1", None, "u-mod")
    assert (ban.channel, ban.user_id, ban.until_ms, ban.by) == ("lobby", "u-1", None, "u-mod")
    assert ban.at_ms >= t0
    assert await bans.is_banned("lobby", "u-1") == ban
    assert await bans.is_banned("other", "u-1") is None
    assert await bans.is_banned("lobby", "u-2") is None
    assert await bans.unban("lobby", "u-1") is True
    assert await bans.unban("lobby", "u-1") is False
    assert await bans.is_banned("lobby", "u-1") is None


async def test_bans_expire(ban_stores: Callable[[], Awaitable[Any]]) -> None:
    """A ban holds while now < until_ms; an expired one is neither reported nor listed."""
    bans = await ban_stores()
    ban = await bans.ban("lobby", "u-1", 10**13, "u-mod")
    assert await bans.is_banned("lobby", "u-1", now=10**13 - 1) == ban
    assert await bans.is_banned("lobby", "u-1", now=10**13) is None
    assert await bans.bans("lobby", now=10**13) == []
    assert await bans.bans("lobby") == [ban]
    await bans.ban("lobby", "u-2", 1_000, "u-mod")  # already over
    assert await bans.is_banned("lobby", "u-2") is None
    assert await bans.unban("lobby", "u-2") is False
    assert await bans.bans("lobby") == [ban]


async def test_banning_again_replaces_the_ban(ban_stores: Callable[[], Awaitable[Any]]) -> None:
    """A second ban of one user in one room replaces the first (until_ms and by)."""
    bans = await ban_stores()
    await bans.ban("lobby", "u-1", 10**13, "u-mod")
    forever = await bans.ban("lobby", "u-1", None, "u-admin")
    assert await bans.is_banned("lobby", "u-1", now=10**14) == forever
    assert await bans.bans("lobby") == [forever]


async def test_bans_lists_a_rooms_bans_by_user_id(ban_stores: Callable[[], Awaitable[Any]]) -> None:
    """bans(channel) lists that room's active bans, ordered by user_id."""
    bans = await ban_stores()
    c = await bans.ban("lobby", "u-c", None, "m")
    a = await bans.ban("lobby", "u-a", 10**13, "m")
    await bans.ban("other", "u-b", None, "m")
    assert await bans.bans("lobby") == [a, c]
    assert await bans.bans("nowhere") == []


async def test_bans_refuse_bad_arguments(ban_stores: Callable[[], Awaitable[Any]]) -> None:
    """Non-text names, NUL characters and non-int times raise InvalidInputError."""
    bans = await ban_stores()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: bans.ban("lobby", "u-1", 1.5, "m"),
        lambda: bans.ban("lobby", "u-1", True, "m"),
        lambda: bans.ban("lob\x00by", "u-1", None, "m"),
        lambda: bans.ban("lobby", 7, None, "m"),
        lambda: bans.ban("lobby", "u-1", None, None),
        lambda: bans.unban("lobby", "u\x00"),
        lambda: bans.is_banned("lobby", "u-1", now="later"),
        lambda: bans.bans(None),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            await call()
    assert await bans.bans("lobby") == []


async def test_closed_ban_store_refuses_work(ban_stores: Callable[[], Awaitable[Any]]) -> None:
    """After close, every ban store call raises StoreError."""
    bans = await ban_stores()
    await bans.close()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: bans.ban("lobby", "u-1", None, "m"),
        lambda: bans.unban("lobby", "u-1"),
        lambda: bans.is_banned("lobby", "u-1"),
        lambda: bans.bans("lobby"),
    ]
    for call in calls:
        with pytest.raises(StoreError):
            await call()


@pytest.mark.backends(*PERSISTENT)
async def test_bans_survive_a_restart(ban_stores: Callable[[], Awaitable[Any]]) -> None:
    """A ban made, then the store closed and reopened (a restart), still holds."""
    bans = await ban_stores()
    forever = await bans.ban("lobby", "u-1", None, "u-mod")
    timed = await bans.ban("lobby", "u-2", 10**13, "u-mod")
    await bans.ban("lobby", "u-3", None, "u-mod")
    await bans.unban("lobby", "u-3")
    await bans.open()  # a second open is harmless
    await bans.close()
    reopened = await ban_stores()
    assert await reopened.is_banned("lobby", "u-1") == forever
    assert await reopened.is_banned("lobby", "u-2") == timed
    assert await reopened.is_banned("lobby", "u-3") is None
    assert await reopened.bans("lobby") == [forever, timed]


@pytest.mark.backends(*PERSISTENT)
async def test_bans_and_messages_share_one_database(
    backend: BackendUnderTest, ban_stores: Callable[[], Awaitable[Any]]
) -> None:
    """The message store and the ban store on one URL work side by side."""
    store = await backend.open()
    bans = await ban_stores()
    m = await store.append("lobby", "hi", "ana", user_id="u-1")
    ban = await bans.ban("lobby", "u-1", None, "u-mod")
    assert await store.history("lobby") == [m]
    assert await bans.bans("lobby") == [ban]
