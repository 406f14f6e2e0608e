"""Calling user handlers that may be sync or async, and logging what they raise.

Async handlers start eagerly, as Node runs its listeners: the coroutine runs inside the
call until it first suspends, and only then becomes a task. A handler that never really
suspends (the tutorial's relay with the memory adapter) costs no task and no extra turn of
the loop, so its broadcast goes out in the same iteration the message came in.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

__all__ = ["Handler", "call_handler"]

logger = logging.getLogger("salas.server")

Handler = Callable[..., Any]
ResultCallback = Callable[[Any], None]

# Tasks of suspended handlers, kept so they are not garbage-collected mid-flight.
_running: set[asyncio.Task[None]] = set()


def call_handler(
    handler: Handler,
    args: tuple[Any, ...] | list[Any],
    where: str,
    on_result: ResultCallback | None = None,
) -> None:
    """Run `handler(*args)`; pass its (awaited) result to `on_result`.

    An exception is logged with `where` (socket id and event) and goes no further: the
    connection and the server keep working.
    """
    try:
        result = handler(*args)
    except Exception:
        logger.exception("error in handler (%s)", where)
        return
    if type(result) is types.CoroutineType:
        _start_eagerly(result, where, on_result)
    elif inspect.isawaitable(result):
        _keep(asyncio.get_running_loop().create_task(_finish(result, where, on_result)))
    elif on_result is not None:
        on_result(result)


def _keep(task: asyncio.Task[None]) -> None:
    _running.add(task)
    task.add_done_callback(_running.discard)


def _start_eagerly(
    coro: Coroutine[Any, Any, Any], where: str, on_result: ResultCallback | None
) -> None:
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        if on_result is not None:
            on_result(stop.value)
        return
    except Exception:
        logger.exception("error in handler (%s)", where)
        return
    loop = asyncio.get_running_loop()
    _keep(loop.create_task(_finish(_Resumed(coro, yielded), where, on_result)))


class _Resumed:
    """Awaitable that continues a coroutine which has already run up to `first` yield."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        yielded = self._first
        while True:
            try:
                # Hand what the coroutine yielded (a future) to the task running us; the
                # task resumes us once it is done, or throws its cancellation in.
                sent = yield yielded
            except BaseException as exc:
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _finish(result: Awaitable[Any], where: str, on_result: ResultCallback | None) -> None:
    try:
        value = await result
    except Exception:
        logger.exception("error in handler (%s)", where)
        return
    if on_result is not None:
        on_result(value)
