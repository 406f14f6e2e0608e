"""Per-iteration write coalescing (salas.engine.scheduler)."""

from __future__ import annotations

import asyncio

from salas.engine.scheduler import FlushScheduler


class Target:
    def __init__(self, log: list[str], name: str) -> None:
        self.log = log
        self.name = name

    def flush(self) -> None:
        self.log.append(self.name)


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
