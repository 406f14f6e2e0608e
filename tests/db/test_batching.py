"""GroupCommitter (salas.db.batching) on a fake commit function: batching, failure,
close and cancellation, without any database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from salas.db.batching import GroupCommitter
from salas.db.errors import StoreError


class FakeDatabase:
    """Records each batch; fails a batch holding ``poison``; can hold a commit open."""

    def __init__(self, poison: str = "poison") -> None:
        self.batches: list[list[str]] = []
        self.poison = poison
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def commit(self, items: Sequence[str]) -> list[str]:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.poison in items:
            raise RuntimeError(f"refused {self.poison}")
        self.batches.append(list(items))
        return [item.upper() for item in items]


async def started(db: FakeDatabase, **options: float) -> GroupCommitter[str, str]:
    committer: GroupCommitter[str, str] = GroupCommitter(db.commit, name="fake", **options)  # type: ignore[arg-type]
    committer.start()
    return committer


async def test_concurrent_submits_share_one_batch() -> None:
    """Items submitted while the flusher is idle go in one batch; each gets its own result."""
    db = FakeDatabase()
    committer = await started(db)
    results = await asyncio.gather(*(committer.submit(f"m{i}") for i in range(100)))
    assert results == [f"M{i}" for i in range(100)]
    assert db.batches == [[f"m{i}" for i in range(100)]]
    assert (committer.batches_committed, committer.items_committed) == (1, 100)
    await committer.close()


async def test_items_arriving_during_a_commit_form_the_next_batch() -> None:
    """While one batch is being written, newcomers accumulate into the next one."""
    db = FakeDatabase()
    db.gate = asyncio.Event()
    committer = await started(db)
    first = asyncio.ensure_future(committer.submit("first"))
    await db.started.wait()
    rest = [asyncio.ensure_future(committer.submit(f"m{i}")) for i in range(50)]
    await asyncio.sleep(0)
    assert committer.pending == 50
    db.gate.set()
    await asyncio.gather(first, *rest)
    assert db.batches == [["first"], [f"m{i}" for i in range(50)]]
    await committer.close()


async def test_max_batch_bounds_each_transaction() -> None:
    """No batch is larger than max_batch."""
    db = FakeDatabase()
    committer = await started(db, max_batch=4)
    await asyncio.gather(*(committer.submit(f"m{i}") for i in range(10)))
    assert [len(b) for b in db.batches] == [4, 4, 2]
    assert committer.batches_committed == 3
    await committer.close()


async def test_a_failed_batch_fails_all_its_waiters_only() -> None:
    """A commit error fails every item of that batch with StoreError; other batches commit."""
    db = FakeDatabase()
    committer = await started(db, max_batch=3)
    results = await asyncio.gather(
        *(committer.submit(s) for s in ["a", "b", "c", "d", "poison", "f", "g"]),
        return_exceptions=True,
    )
    assert results[:3] == ["A", "B", "C"]
    failed = results[3:6]
    assert all(isinstance(r, StoreError) for r in failed)
    assert all(isinstance(r.__cause__, RuntimeError) for r in failed)  # type: ignore[union-attr]
    assert all("refused poison" in str(r) for r in failed)
    assert len({id(r) for r in failed}) == 3  # one exception object per waiter
    assert results[6] == "G"
    assert db.batches == [["a", "b", "c"], ["g"]]
    assert (committer.batches_committed, committer.batches_failed) == (2, 1)
    assert await committer.submit("later") == "LATER"
    await committer.close()


async def test_a_store_error_from_commit_keeps_its_message() -> None:
    """A StoreError raised by the backend reaches each waiter with the same message."""

    async def commit(items: Sequence[str]) -> list[str]:
        raise StoreError("disk full")

    committer: GroupCommitter[str, str] = GroupCommitter(commit)
    committer.start()
    results = await asyncio.gather(
        committer.submit("a"), committer.submit("b"), return_exceptions=True
    )
    assert [str(r) for r in results] == ["disk full", "disk full"]
    await committer.close()


async def test_a_wrong_number_of_results_is_a_failure() -> None:
    """A commit returning fewer results than items fails the batch instead of mismatching."""

    async def commit(items: Sequence[str]) -> list[str]:
        return list(items)[:-1]

    committer: GroupCommitter[str, str] = GroupCommitter(commit)
    committer.start()
    results = await asyncio.gather(
        committer.submit("a"), committer.submit("b"), return_exceptions=True
    )
    assert all(isinstance(r, StoreError) for r in results)
    assert committer.batches_committed == 0
    await committer.close()


async def test_close_writes_everything_queued_then_refuses() -> None:
    """close() drains the queue before stopping; a submit afterwards raises StoreError."""
    db = FakeDatabase()
    committer = await started(db, max_batch=10)
    tasks = [asyncio.ensure_future(committer.submit(f"m{i}")) for i in range(25)]
    await asyncio.sleep(0)
    await committer.close()
    assert [t.result() for t in tasks] == [f"M{i}" for i in range(25)]
    assert sum(len(b) for b in db.batches) == 25
    with pytest.raises(StoreError, match="not open"):
        await committer.submit("late")
    await committer.close()  # a second close is harmless


async def test_submit_before_start_raises() -> None:
    """A committer that was never started refuses items instead of queueing them forever."""
    committer: GroupCommitter[str, str] = GroupCommitter(FakeDatabase().commit)
    with pytest.raises(StoreError, match="not open"):
        await committer.submit("x")


async def test_an_item_cancelled_before_its_batch_is_not_written() -> None:
    """Cancelling a waiter before its batch starts drops its item; the others are written."""
    db = FakeDatabase()
    db.gate = asyncio.Event()
    committer = await started(db)
    first = asyncio.ensure_future(committer.submit("first"))
    await db.started.wait()
    keep = asyncio.ensure_future(committer.submit("keep"))
    drop = asyncio.ensure_future(committer.submit("drop"))
    await asyncio.sleep(0)
    drop.cancel()
    db.gate.set()
    assert await keep == "KEEP"
    assert await first == "FIRST"
    assert drop.cancelled()
    assert db.batches == [["first"], ["keep"]]
    await committer.close()


async def test_a_cancelled_flusher_fails_its_waiters_instead_of_hanging() -> None:
    """If the flusher task is cancelled (loop shutdown), queued and in-flight items fail."""
    db = FakeDatabase()
    db.gate = asyncio.Event()  # never set: the first batch hangs in commit
    committer = await started(db)
    in_flight = asyncio.ensure_future(committer.submit("in flight"))
    await db.started.wait()
    queued = asyncio.ensure_future(committer.submit("queued"))
    await asyncio.sleep(0)
    assert committer._task is not None
    committer._task.cancel()
    results = await asyncio.wait_for(
        asyncio.gather(in_flight, queued, return_exceptions=True), timeout=5
    )
    assert all(isinstance(r, StoreError) for r in results), results


def test_max_batch_must_be_positive() -> None:
    """max_batch below 1 is a programming error, reported at construction."""
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommitter(FakeDatabase().commit, max_batch=0)


async def _paced_batches(interval: float) -> list[list[str]]:
    """a alone; then b, and c 50 ms later: the batches written with `interval`."""
    db = FakeDatabase()
    committer = await started(db, interval=interval)
    assert await committer.submit("a") == "A"
    b = asyncio.ensure_future(committer.submit("b"))
    await asyncio.sleep(0.05)
    c = asyncio.ensure_future(committer.submit("c"))
    assert list(await asyncio.gather(b, c)) == ["B", "C"]
    await committer.close()
    return db.batches


async def test_batches_are_paced_while_items_keep_coming() -> None:
    """With an interval, an item arriving soon after a batch waits for the interval and
    shares its transaction with what comes meanwhile; without one, each goes alone."""
    assert await _paced_batches(0.5) == [["a"], ["b", "c"]]
    assert await _paced_batches(0.0) == [["a"], ["b"], ["c"]]


async def test_the_first_item_after_a_quiet_spell_is_written_at_once() -> None:
    """Pacing never delays an item that arrives after the interval has passed."""
    db = FakeDatabase()
    committer = await started(db, interval=0.05)
    await committer.submit("a")
    await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await committer.submit("b")
    assert loop.time() - began < 0.04
    assert db.batches == [["a"], ["b"]]
    await committer.close()


async def test_close_does_not_wait_out_the_interval() -> None:
    """Closing writes what is queued at once, however long the interval."""
    db = FakeDatabase()
    committer = await started(db, interval=30.0)
    await committer.submit("a")
    late = asyncio.ensure_future(committer.submit("b"))
    await asyncio.sleep(0)
    await asyncio.wait_for(committer.close(), 5.0)
    assert await late == "B"
    assert db.batches == [["a"], ["b"]]


def test_interval_must_not_be_negative() -> None:
    """A negative interval is a programming error."""
    with pytest.raises(ValueError):
        GroupCommitter(FakeDatabase().commit, interval=-1.0)
