"""Calling user handlers that may be sync or async, and logging what they raise.

Async handlers start eagerly, as Node runs its listeners: each gets its task at once, but
the handler's first step runs inside the call (with that task as the current task) instead
of on a later turn of the loop. A handler that does not really suspend (the tutorial's
relay with the memory adapter) therefore broadcasts in the same iteration the message came
in, and `asyncio.current_task()`, `asyncio.timeout()` and cancellation behave as in any task.
A handler that suspends is held by the server's `TaskRegistry` until it finishes, so shutdown
can wait for it or cancel it.
"""

from __future__ import annotations

import asyncio
import collections.abc
import inspect
import logging
import sys
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from salas.server.tasks import TaskRegistry

__all__ = ["Handler", "call_handler"]

logger = logging.getLogger("salas.server")

Handler = Callable[..., Any]
ResultCallback = Callable[[Any], None]
# Told once the handler has finished, however it finished (metrics time handlers with it).
DoneCallback = Callable[[], None]


def call_handler(
    tasks: TaskRegistry,
    handler: Handler,
    args: tuple[Any, ...] | list[Any],
    where: str,
    on_result: ResultCallback | None = None,
    on_done: DoneCallback | None = None,
) -> None:
    """Run `handler(*args)`; pass its (awaited) result to `on_result`; `tasks` holds the
    handler's task while it is suspended; `on_done` is told when it has finished (returned,
    raised or been cancelled).

    An exception is logged with `where` (socket id and event) and goes no further: the
    connection and the server keep working.
    """
    try:
        result = handler(*args)
    except Exception:
        logger.exception("error in handler (%s)", where)
        if on_done is not None:
            on_done()
        return
    if type(result) is types.CoroutineType:
        guarded = _Guarded(result, where, on_result, on_done)
        task = _start_eagerly(guarded)
        if not guarded.finished:
            # Held while the handler is suspended. One that has already finished (most
            # do) needs no holding: its task's last step is due on this loop iteration.
            tasks.track(task)
    elif inspect.isawaitable(result):
        tasks.spawn(_Guarded(_awaiting(result), where, on_result, on_done))
    else:
        if on_done is not None:
            on_done()
        if on_result is not None:
            on_result(result)


async def _awaiting(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


if sys.version_info >= (3, 12):

    def _start_eagerly(coro: _Guarded) -> asyncio.Task[Any]:
        loop = asyncio.get_running_loop()
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]

else:
    from asyncio.tasks import _enter_task, _leave_task

    def _start_eagerly(coro: _Guarded) -> asyncio.Task[Any]:
        # Python 3.11 has no eager tasks: create the task (its first step is scheduled for
        # later), run the coroutine's first step now as that task, and let the scheduled
        # step pick up where it stopped.
        loop = asyncio.get_running_loop()
        task = loop.create_task(coro)
        outer = asyncio.current_task(loop)
        if outer is not None:
            _leave_task(loop, outer)
        _enter_task(loop, task)
        try:
            coro.step_now()
        finally:
            _leave_task(loop, task)
            if outer is not None:
                _enter_task(loop, outer)
        return task


class _Guarded(collections.abc.Coroutine[Any, Any, None]):
    """The handler's coroutine as its task runs it: logs what it raises, reports its result.

    `step_now` may run the first step before the task does; the task's first `send` then
    hands over what that step yielded (or finishes, if the handler already has). A task
    cancelled before its first step throws into the handler, so its cleanup runs.
    """

    __slots__ = ("_coro", "_done", "_early", "_on_done", "_on_result", "_stepped", "_where")

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        where: str,
        on_result: ResultCallback | None,
        on_done: DoneCallback | None = None,
    ) -> None:
        self._coro = coro
        self._where = where
        self._on_result = on_result
        self._on_done = on_done
        self._stepped = False  # step_now ran and the task has not yet taken its result
        self._early: Any = None
        self._done = False

    @property
    def finished(self) -> bool:
        """The handler has returned or raised (its task may still have a step to take)."""
        return self._done

    def step_now(self) -> None:
        self._stepped = True
        try:
            self._early = self._advance(self._coro.send, None)
        except (StopIteration, asyncio.CancelledError):
            self._done = True

    def send(self, value: Any) -> Any:
        if self._stepped:
            self._stepped = False
            if self._done:
                raise StopIteration
            return self._early
        return self._advance(self._coro.send, value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._stepped = False
        if self._done:
            raise StopIteration
        exc = typ if val is None else val
        return self._advance(self._coro.throw, exc)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        raise TypeError("_Guarded is run by its task only")

    def _advance(self, step: Callable[[Any], Any], arg: Any) -> Any:
        try:
            return step(arg)
        except StopIteration as stop:
            self._finish()
            if self._on_result is not None:
                try:
                    self._on_result(stop.value)
                except Exception:
                    logger.exception("error answering handler (%s)", self._where)
            raise StopIteration from None
        except asyncio.CancelledError:
            self._finish()
            raise
        except Exception:
            self._finish()
            logger.exception("error in handler (%s)", self._where)
            raise StopIteration from None

    def _finish(self) -> None:
        self._done = True
        on_done = self._on_done
        if on_done is not None:
            self._on_done = None
            try:
                on_done()
            except Exception:
                logger.exception("error timing handler (%s)", self._where)
