"""Calling user handlers that may be sync or async, and logging what they raise."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Handler", "call_handler"]

logger = logging.getLogger("salas.server")

Handler = Callable[..., Any]

# Tasks of running async handlers, kept so they are not garbage-collected mid-flight.
_running: set[asyncio.Task[None]] = set()


def call_handler(
    handler: Handler,
    args: tuple[Any, ...] | list[Any],
    where: str,
    on_result: Callable[[Any], None] | None = None,
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
    if inspect.isawaitable(result):
        task = asyncio.get_running_loop().create_task(_finish(result, where, on_result))
        _running.add(task)
        task.add_done_callback(_running.discard)
    elif on_result is not None:
        on_result(result)


async def _finish(
    result: Awaitable[Any], where: str, on_result: Callable[[Any], None] | None
) -> None:
    try:
        value = await result
    except Exception:
        logger.exception("error in handler (%s)", where)
        return
    if on_result is not None:
        on_result(value)
