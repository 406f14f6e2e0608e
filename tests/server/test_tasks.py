"""`TaskRegistry` (salas.server.tasks): tasks held until done; close drains, then cancels."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from salas.server.tasks import TaskRegistry


async def test_spawn_holds_until_done() -> None:
    """A spawned task is held (with its name) while it runs and let go when it is done."""
    tasks = TaskRegistry()
    gate = asyncio.Event()
    task = tasks.spawn(gate.wait(), name="waiter")
    assert list(tasks) == [task] and task.get_name() == "waiter"
    gate.set()
    await task
    await asyncio.sleep(0)  # done callbacks run on the next turn
    assert len(tasks) == 0


async def test_track_ignores_finished_tasks() -> None:
    """track holds a running task, and returns a finished one without holding it."""
    tasks = TaskRegistry()
    done = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    await done
    assert tasks.track(done) is done and len(tasks) == 0
    running = asyncio.get_running_loop().create_task(asyncio.sleep(10))
    tasks.track(running)
    assert list(tasks) == [running]
    running.cancel()


async def test_close_drains_within_timeout() -> None:
    """Tasks that finish within the timeout finish normally (not cancelled)."""
    tasks = TaskRegistry()
    finished: list[str] = []

    async def work() -> None:
        await asyncio.sleep(0.02)
        finished.append("work")

    task = tasks.spawn(work())
    await tasks.close(timeout=2)
    assert finished == ["work"] and not task.cancelled()


async def test_close_cancels_after_timeout_and_catches_late_spawns() -> None:
    """Tasks still running at the timeout are cancelled, also those their cleanup spawned."""
    tasks = TaskRegistry()
    cleanup: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleanup.append("forever")
            tasks.spawn(asyncio.sleep(3600), name="spawned by cleanup")

    first = tasks.spawn(forever())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await tasks.close(timeout=0.05)
    assert loop.time() - started < 1.0
    assert first.cancelled() and cleanup == ["forever"]
    assert len(tasks) == 0 and all(task.done() for task in tasks)


async def test_close_never_waits_for_its_caller() -> None:
    """A held task that calls close is not waited for (no deadlock)."""
    tasks = TaskRegistry()

    async def closer() -> str:
        await tasks.close(timeout=5)
        return "closed"

    task = tasks.spawn(closer())
    assert await asyncio.wait_for(task, 2) == "closed"


async def test_close_gives_up_on_tasks_ignoring_cancellation(caplog) -> None:
    """A task that swallows cancellation is logged by name and left behind after a grace."""
    tasks = TaskRegistry()
    stop = asyncio.Event()

    async def stubborn() -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = tasks.spawn(stubborn(), name="stubborn")
    await asyncio.sleep(0)  # running, so that cancelling throws into it
    with caplog.at_level(logging.WARNING, "salas.server"):
        await tasks.close(timeout=0)
    assert "stubborn" in caplog.text and not task.done()
    stop.set()
    task.cancel()
    await asyncio.wait_for(task, 1)


@pytest.mark.parametrize("timeout", [0, 0.01])
async def test_close_with_nothing_held_is_quick(timeout: float) -> None:
    """close on an empty registry returns at once."""
    await asyncio.wait_for(TaskRegistry().close(timeout), 0.5)
