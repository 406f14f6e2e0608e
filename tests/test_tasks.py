"""salas._tasks: stopping background tasks, including those that swallow a cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from salas._tasks import report_stuck, stop_tasks


async def test_a_task_that_swallows_one_cancellation_is_stopped() -> None:
    """As redis-py can inside a command: the cancellation is swallowed once and the task
    goes back to waiting on a queue; it is cancelled again there and ends."""
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def writer() -> None:
        while True:
            await queue.get()
            with contextlib.suppress(asyncio.CancelledError):  # the library's cleanup
                await asyncio.sleep(3600)

    task = asyncio.get_running_loop().create_task(writer())
    queue.put_nowait(1)
    await asyncio.sleep(0.01)  # inside the "command"
    stuck = await asyncio.wait_for(stop_tasks([task], grace=1.0), 2)
    assert stuck == set() and task.cancelled()


async def test_a_task_that_ignores_every_cancellation_is_returned_after_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()

    async def stubborn() -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    stuck = await stop_tasks([task], grace=0.2)
    assert stuck == {task} and 0.15 < loop.time() - began < 1.0
    with caplog.at_level(logging.WARNING, "salas"):
        report_stuck(stuck, "in the test")
    assert "stubborn" in caplog.text and "in the test" in caplog.text
    stop.set()
    task.cancel()
    await asyncio.wait_for(task, 1)


async def test_finished_tasks_and_the_caller_are_not_waited_for() -> None:
    done = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    await done
    current = asyncio.current_task()
    assert current is not None
    assert await stop_tasks([done, current], grace=0.2) == set()
    assert not current.cancelled()
