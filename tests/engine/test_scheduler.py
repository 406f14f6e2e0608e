"""Per-iteration write coalescing and write pacing (salas.engine.scheduler)."""

from __future__ import annotations

import asyncio

import pytest

from salas import Server
from salas.engine.scheduler import FlushScheduler


class Target:
    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name
        self.flushed_at = float("-inf")

    def flush(self) -> None:
        self.log.append(self.name)


class Connection:
    """A paced target that records the loop time of each write and what it carried."""

    def __init__(self, scheduler: FlushScheduler) -> None:
        self.scheduler = scheduler
        self.flushed_at = float("-inf")
        self.pending: list[str] = []
        self.writes: list[tuple[float, list[str]]] = []
        self.scheduled = False

    def send(self, frame: str) -> None:
        if not self.scheduled:
            self.scheduled = True
            self.scheduler.add(self)
        self.pending.append(frame)

    def flush(self) -> None:
        self.scheduled = False
        self.writes.append((asyncio.get_running_loop().time(), self.pending))
        self.pending = []


async def test_flush_runs_at_end_of_iteration_in_order() -> None:
    """Targets added in one iteration are flushed once each, in order, after the caller yields."""
    log: list[str] = []
    scheduler = FlushScheduler(asyncio.get_running_loop())
    a, b, c = Target(log, "a"), Target(log, "b"), Target(log, "c")
    scheduler.add(a)
    scheduler.add(b)
    scheduler.add(c)
    assert log == []
    await asyncio.sleep(0)
    assert log == ["a", "b", "c"]
    await asyncio.sleep(0)
    assert log == ["a", "b", "c"]


async def test_one_loop_callback_per_iteration(monkeypatch) -> None:
    """However many targets are added, one callback is scheduled per iteration."""
    loop = asyncio.get_running_loop()
    scheduled = []
    real_call_soon = loop.call_soon

    def call_soon(callback, *args, **kwargs):
        scheduled.append(callback)
        return real_call_soon(callback, *args, **kwargs)

    scheduler = FlushScheduler(loop)
    monkeypatch.setattr(loop, "call_soon", call_soon)
    log: list[str] = []
    for i in range(100):
        scheduler.add(Target(log, str(i)))
    assert len(scheduled) == 1
    monkeypatch.undo()
    await asyncio.sleep(0)
    assert len(log) == 100


async def test_next_iteration_schedules_again() -> None:
    """After a flush, adding a target schedules a new flush."""
    log: list[str] = []
    scheduler = FlushScheduler(asyncio.get_running_loop())
    scheduler.add(Target(log, "first"))
    await asyncio.sleep(0)
    scheduler.add(Target(log, "second"))
    assert log == ["first"]
    await asyncio.sleep(0)
    assert log == ["first", "second"]


async def test_add_during_flush_goes_to_next_batch() -> None:
    """A target added while flushing is flushed in the following batch, not lost."""
    log: list[str] = []
    loop = asyncio.get_running_loop()
    scheduler = FlushScheduler(loop)
    late = Target(log, "late")

    class Chaining(Target):
        def flush(self) -> None:
            super().flush()
            scheduler.add(late)

    scheduler.add(Chaining(log, "chaining"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert log == ["chaining", "late"]


async def test_without_pacing_every_iteration_writes() -> None:
    """Interval 0: a connection sent a frame in each of three iterations gets three writes."""
    conn = Connection(FlushScheduler(asyncio.get_running_loop()))
    for frame in ("a", "b", "c"):
        conn.send(frame)
        await asyncio.sleep(0)
    assert [frames for _, frames in conn.writes] == [["a"], ["b"], ["c"]]


async def test_a_quiet_connection_is_written_at_once() -> None:
    """With pacing, the first frame after a quiet spell goes at the end of the iteration."""
    conn = Connection(FlushScheduler(asyncio.get_running_loop(), interval=0.05))
    conn.send("a")
    await asyncio.sleep(0)
    await asyncio.sleep(0.08)  # longer than the interval: quiet again
    conn.send("b")
    await asyncio.sleep(0)
    assert [frames for _, frames in conn.writes] == [["a"], ["b"]]


async def test_a_busy_connection_gets_one_write_per_interval() -> None:
    """Frames sent within the interval after a write wait for it to pass, then share one
    write; none waits longer than the interval (and a little scheduling slack)."""
    loop = asyncio.get_running_loop()
    scheduler = FlushScheduler(loop, interval=0.1)
    conn = Connection(scheduler)
    conn.send("a")
    await asyncio.sleep(0)
    first_write = conn.writes[0][0]
    sent_at = {}
    for frame in ("b", "c", "d"):
        sent_at[frame] = loop.time()
        conn.send(frame)
        await asyncio.sleep(0.01)
    assert len(conn.writes) == 1  # held back
    await asyncio.sleep(0.15)
    assert [frames for _, frames in conn.writes] == [["a"], ["b", "c", "d"]]
    second_write = conn.writes[1][0]
    assert second_write - first_write >= 0.1 - 0.002
    assert max(second_write - at for at in sent_at.values()) <= 0.1 + 0.05


async def test_pacing_holds_back_only_the_busy_connection() -> None:
    """A connection written to just now waits; another one in the same iteration does not."""
    scheduler = FlushScheduler(asyncio.get_running_loop(), interval=0.2)
    busy, quiet = Connection(scheduler), Connection(scheduler)
    busy.send("a")
    await asyncio.sleep(0)
    busy.send("b")
    quiet.send("x")
    await asyncio.sleep(0)
    assert [frames for _, frames in quiet.writes] == [["x"]]
    assert [frames for _, frames in busy.writes] == [["a"]]
    scheduler.close()
    assert [frames for _, frames in busy.writes] == [["a"], ["b"]]


async def test_close_writes_what_pacing_holds_and_stops_the_timer() -> None:
    """On close, held frames are written at once and no timer fires afterwards."""
    scheduler = FlushScheduler(asyncio.get_running_loop(), interval=0.05)
    conn = Connection(scheduler)
    conn.send("a")
    await asyncio.sleep(0)
    conn.send("b")
    await asyncio.sleep(0)
    scheduler.close()
    assert [frames for _, frames in conn.writes] == [["a"], ["b"]]
    await asyncio.sleep(0.1)
    assert len(conn.writes) == 2


async def test_interval_must_not_be_negative() -> None:
    """A negative interval is refused."""
    with pytest.raises(ValueError):
        FlushScheduler(asyncio.get_running_loop(), interval=-0.1)


async def test_the_server_setting_reaches_the_scheduler() -> None:
    """Server(write_interval=...) paces its engine's writes; the default is no pacing."""
    assert Server(write_interval=0.02).engine.scheduler.interval == 0.02
    assert Server().engine.scheduler.interval == 0.0
    with pytest.raises(ValueError):
        Server(write_interval=2.0)
