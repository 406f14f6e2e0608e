"""`TaskRegistry`: every background task a `Server` starts, in one place.

Handlers that suspend, namespace middlewares, recoveries, async routes and request hooks,
and whatever the application starts with `io.spawn`, are held here until they finish, so
that nothing is garbage-collected mid-flight and shutdown can end them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from salas._tasks import report_stuck, stop_tasks

__all__ = ["TaskRegistry"]

logger = logging.getLogger("salas.server")

T = TypeVar("T")

# After cancelling, how long to wait for tasks to finish their cleanup.
_CANCEL_GRACE = 1.0


class TaskRegistry:
    """Background tasks kept until they are done; `close` drains, then cancels them."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run `coro` as a task of the running loop, held here until it is done.

        What it raises is left to the task (read it from the returned task, or catch it
        inside `coro`): the registry neither logs nor swallows it.
        """
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.track(task)
        return task

    def track(self, task: asyncio.Task[T]) -> asyncio.Task[T]:
        """Hold `task` (already started elsewhere) until it is done; returns it."""
        if not task.done():
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        """How many tasks are held (not yet done)."""
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        """The tasks held now (a snapshot: spawning meanwhile is safe)."""
        return iter(list(self._tasks))

    async def close(self, timeout: float = 5.0) -> None:
        """Wait up to `timeout` seconds for the tasks to finish, then cancel the rest.

        Tasks started meanwhile (by the tasks themselves, or their cleanup) are waited for
        and cancelled the same way. The task calling `close` is never waited for. A task
        that ignores cancellation for more than a second is logged and left behind.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while pending := self._pending():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.wait(pending, timeout=remaining)
        # Cancelled (again, if one swallows it) for a second, with those their cleanup starts.
        grace_end = loop.time() + _CANCEL_GRACE
        while (pending := self._pending()) and loop.time() < grace_end:
            await stop_tasks(pending, grace_end - loop.time())
        report_stuck(pending, "at shutdown")

    def _pending(self) -> set[asyncio.Task[Any]]:
        current = asyncio.current_task()
        return {task for task in self._tasks if not task.done() and task is not current}
