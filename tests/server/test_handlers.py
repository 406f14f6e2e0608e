"""Calling user handlers, sync or async, and logging what they raise
(salas.server.handlers)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from salas.server.handlers import call_handler
from salas.server.tasks import TaskRegistry


async def test_sync_handler_result() -> None:
    """A sync handler runs at once and its return value goes to on_result."""
    results = []
    call_handler(TaskRegistry(), lambda a, b: a + b, (1, 2), "here", results.append)
    assert results == [3]


async def test_async_handler_without_suspension_completes_at_once() -> None:
    """An async handler that never suspends completes within the call (eager start)."""
    results = []

    async def quick(x):
        return x * 2

    tasks = TaskRegistry()
    call_handler(tasks, quick, [21], "here", results.append)
    assert results == [42]


async def test_finished_handler_is_not_held() -> None:
    """A handler that returns without suspending leaves nothing in the task registry."""
    results = []

    async def quick():
        return "done"

    tasks = TaskRegistry()
    call_handler(tasks, quick, [], "here", results.append)
    assert results == ["done"]
    assert len(tasks) == 0
    for _ in range(3):
        await asyncio.sleep(0)  # its task's last step runs without complaint
    assert results == ["done"]


async def test_async_handler_with_suspension_completes_later() -> None:
    """An async handler that suspends finishes in the background; on_result gets its value."""
    results = []
    gate = asyncio.Event()

    async def waits():
        results.append("started")
        await gate.wait()
        return "finished"

    tasks = TaskRegistry()
    call_handler(tasks, waits, [], "here", results.append)
    assert results == ["started"]  # ran up to its first suspension
    assert len(tasks) == 1  # held while suspended
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert results == ["started", "finished"]
    assert len(tasks) == 0  # let go once done


async def test_async_handler_many_suspensions() -> None:
    """A handler suspending several times (sleeps, futures) runs to completion."""
    results = []

    async def steps():
        total = 0
        for i in range(3):
            await asyncio.sleep(0.001)
            total += i
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, 10)
        total += await fut
        return total

    call_handler(TaskRegistry(), steps, [], "here", results.append)
    for _ in range(50):
        if results:
            break
        await asyncio.sleep(0.005)
    assert results == [13]


async def test_awaitable_result_other_than_coroutine() -> None:
    """A handler returning a Future (not a coroutine) is awaited too."""
    results = []
    future = asyncio.get_running_loop().create_future()
    call_handler(TaskRegistry(), lambda: future, [], "here", results.append)
    future.set_result("from future")
    for _ in range(5):
        await asyncio.sleep(0)
    assert results == ["from future"]


@pytest.mark.parametrize("kind", ["sync", "async-eager", "async-suspended"])
async def test_exceptions_logged_with_where(kind: str, caplog) -> None:
    """An exception, raised at once or after suspending, is logged with `where`; no result."""
    caplog.set_level(logging.ERROR, logger="salas.server")
    results = []

    def sync():
        raise ValueError("bad sync")

    async def eager():
        raise ValueError("bad eager")

    async def suspended():
        await asyncio.sleep(0)
        raise ValueError("bad suspended")

    handler = {"sync": sync, "async-eager": eager, "async-suspended": suspended}[kind]
    call_handler(TaskRegistry(), handler, [], "socket abc, event 'x'", results.append)
    for _ in range(5):
        await asyncio.sleep(0)
    assert results == []
    (record,) = [r for r in caplog.records if r.name == "salas.server"]
    assert "socket abc, event 'x'" in record.getMessage()
    assert record.exc_info is not None
    assert "bad" in str(record.exc_info[1])


async def test_wrong_arguments_logged(caplog) -> None:
    """A handler called with the wrong number of arguments is a logged error, not a crash."""
    caplog.set_level(logging.ERROR, logger="salas.server")
    call_handler(TaskRegistry(), lambda: None, [1, 2], "where it happened")
    assert "where it happened" in caplog.text


async def test_suspended_handler_cancelled_runs_cleanup() -> None:
    """Cancelling a suspended handler's task throws into the handler: its finally runs."""
    cleanup = []

    async def long_running():
        try:
            await asyncio.sleep(10)
        finally:
            cleanup.append("done")

    tasks = TaskRegistry()
    call_handler(tasks, long_running, [], "here")
    (task,) = tasks
    await asyncio.sleep(0)  # the task has started waiting for the handler
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleanup == ["done"]


async def test_handler_cancelled_before_its_task_starts_runs_cleanup() -> None:
    """A handler whose task is cancelled in the same iteration still gets the cancellation."""
    cleanup = []

    async def long_running():
        try:
            await asyncio.sleep(10)
        finally:
            cleanup.append("done")

    tasks = TaskRegistry()
    call_handler(tasks, long_running, [], "here")
    (task,) = tasks
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleanup == ["done"]
