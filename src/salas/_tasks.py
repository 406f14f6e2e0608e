"""Stopping background tasks for good: below every layer, so each can use it.

A task cancelled inside a library call does not always end: redis-py, for one, can swallow
the `asyncio.CancelledError` raised in a command it is running (it cleans up its connection
and returns), and a loop around that call then goes on waiting — for ever, if it waits on a
queue. `stop_tasks` cancels again until the tasks are done, within a bound, so that a
shutdown never hangs on one of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["report_stuck", "stop_tasks"]

logger = logging.getLogger("salas")

# Between two cancellations of a task that is still running (seconds).
_RECANCEL = 0.05


async def stop_tasks(
    tasks: Iterable[asyncio.Task[Any]], grace: float = 1.0
) -> set[asyncio.Task[Any]]:
    """Cancel `tasks` and wait for them to end, cancelling again every 50 ms any that go on
    running (a swallowed cancellation), for at most `grace` seconds.

    What the tasks raise is not raised here. The task calling this is never waited for.
    Returns the tasks still running after `grace` (left to the caller to report).
    """
    current = asyncio.current_task()
    pending = {task for task in tasks if not task.done() and task is not current}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(grace, 0.0)
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(_RECANCEL, remaining))
    return pending


def report_stuck(tasks: set[asyncio.Task[Any]], where: str) -> None:
    """Log the tasks `stop_tasks` could not stop, by name."""
    if tasks:
        names = ", ".join(sorted(task.get_name() for task in tasks))
        logger.warning("%d tasks ignored cancellation %s: %s", len(tasks), where, names)
