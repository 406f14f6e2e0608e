"""Request hooks: checks that run on a request before the Engine.IO handshake.

A hook is a sync or async callable taking the `Request` and returning True to let the
handshake go on, False to refuse it; raising `RequestRefused("why")` refuses with that
message, and any other exception refuses too (and is logged). A refused handshake answers
403 with the Engine.IO error body `{"code": 4, "message": ...}`, over long-polling and
websocket alike. Hooks run in the order they were added; the first refusal wins.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from salas.engine.logsafe import printable
from salas.http.request import Request
from salas.http.router import Spawn

__all__ = ["RequestHook", "RequestHooks", "RequestRefused", "Verdict"]

logger = logging.getLogger("salas.http")

RequestHook = Callable[[Request], bool | Awaitable[bool]]
# How a check ends: (True, None) to go on, (False, message or None) to refuse.
Verdict = Callable[[bool, str | None], None]


class RequestRefused(Exception):
    """Raised by a request hook: refuse the request; the message goes to the client."""


class RequestHooks:
    """The hooks of one server, run as the engine's handshake check.

    Sync hooks run inside the call, so a server without async hooks answers a handshake
    in the same turn of the loop; the first async hook moves the rest of the check into a
    task started with `spawn`.
    """

    def __init__(self, spawn: Spawn) -> None:
        self._hooks: list[RequestHook] = []
        self._spawn = spawn

    def add(self, hook: RequestHook) -> RequestHook:
        """Run `hook` before every handshake (after those added earlier)."""
        self._hooks.append(hook)
        return hook

    def __len__(self) -> int:
        return len(self._hooks)

    def __call__(self, request: Request, verdict: Verdict) -> None:
        """Check `request`; call `verdict` once with the outcome (now or later)."""
        hooks = self._hooks
        for index, hook in enumerate(hooks):
            try:
                result = hook(request)
            except Exception as exc:
                verdict(False, _refusal(exc, request))
                return
            if inspect.isawaitable(result):
                self._spawn(_check_later(result, hooks[index + 1 :], request, verdict))
                return
            if not result:
                verdict(False, None)
                return
        verdict(True, None)


async def _check_later(
    first: Awaitable[Any], rest: Sequence[RequestHook], request: Request, verdict: Verdict
) -> None:
    try:
        allowed = await first
        for hook in rest:
            if not allowed:
                break
            result = hook(request)
            allowed = await result if inspect.isawaitable(result) else result
    except Exception as exc:
        verdict(False, _refusal(exc, request))
        return
    verdict(bool(allowed), None)


def _refusal(exc: Exception, request: Request) -> str | None:
    """The message a hook's exception gives the client (None: the default one)."""
    if isinstance(exc, RequestRefused):
        return str(exc) or None
    logger.exception(
        "error in request hook for %s %s", printable(request.method), printable(request.path)
    )
    return None
