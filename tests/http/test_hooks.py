"""`RequestHooks` (salas.http.hooks): sync and async request hooks, in order, first refusal
wins, exceptions refuse; the outcome goes to the engine's verdict callback once."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from salas.http import RequestHooks, RequestRefused

REQUEST: Any = SimpleNamespace(method="GET", path="/socket.io/")  # only handed on, and logged


class Outcome:
    """The verdicts given, and a spawn that runs coroutines as tasks."""

    def __init__(self) -> None:
        self.verdicts: list[tuple[bool, str | None]] = []
        self.tasks: list[asyncio.Task[None]] = []

    def verdict(self, allowed: bool, message: str | None) -> None:
        self.verdicts.append((allowed, message))

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.append(task)
        return task

    async def settled(self) -> list[tuple[bool, str | None]]:
        await asyncio.gather(*self.tasks)
        return self.verdicts


async def test_no_hooks_allow_at_once() -> None:
    """Without hooks the verdict is 'allowed', given inside the call (no task)."""
    out = Outcome()
    RequestHooks(out.spawn)(REQUEST, out.verdict)
    assert out.verdicts == [(True, None)] and out.tasks == []


@pytest.mark.parametrize(("answer", "expected"), [(True, True), (False, False), (None, False)])
async def test_sync_hook(answer: Any, expected: bool) -> None:
    """A sync hook decides inside the call; anything falsy (a forgotten return) refuses."""
    out = Outcome()
    hooks = RequestHooks(out.spawn)
    seen: list[Any] = []
    hooks.add(lambda request: seen.append(request) or answer)
    hooks(REQUEST, out.verdict)
    assert out.verdicts == [(expected, None)] and seen == [REQUEST]


@pytest.mark.parametrize("allowed", [True, False])
async def test_async_hook(allowed: bool) -> None:
    """An async hook decides in a task started with spawn."""
    out = Outcome()
    hooks = RequestHooks(out.spawn)

    async def check(request: Any) -> bool:
        await asyncio.sleep(0)
        return allowed

    hooks.add(check)
    hooks(REQUEST, out.verdict)
    assert out.verdicts == [] and len(out.tasks) == 1
    assert await out.settled() == [(allowed, None)]


async def test_first_refusal_wins_and_later_hooks_do_not_run() -> None:
    """Hooks run in order (sync, then async, then sync); after a refusal none runs."""
    out = Outcome()
    hooks = RequestHooks(out.spawn)
    ran: list[str] = []

    async def second(request: Any) -> bool:
        ran.append("second")
        return False

    hooks.add(lambda r: ran.append("first") or True)
    hooks.add(second)
    hooks.add(lambda r: ran.append("third") or True)
    hooks(REQUEST, out.verdict)
    assert await out.settled() == [(False, None)]
    assert ran == ["first", "second"]


async def test_refused_with_a_message() -> None:
    """RequestRefused (sync or async) refuses with its message, and is not logged as an error."""
    out = Outcome()
    sync_hooks = RequestHooks(out.spawn)

    def refuse(request: Any) -> bool:
        raise RequestRefused("no token")

    async def refuse_later(request: Any) -> bool:
        raise RequestRefused("token expired")

    sync_hooks.add(refuse)
    sync_hooks(REQUEST, out.verdict)
    async_hooks = RequestHooks(out.spawn)
    async_hooks.add(refuse_later)
    async_hooks(REQUEST, out.verdict)
    assert await out.settled() == [(False, "no token"), (False, "token expired")]


async def test_errors_refuse_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A hook raising anything else refuses with the standard message and logs the error."""
    out = Outcome()
    hooks = RequestHooks(out.spawn)

    def broken(request: Any) -> bool:
        raise KeyError("oops")

    hooks.add(broken)
    with caplog.at_level(logging.ERROR, "salas.http"):
        hooks(REQUEST, out.verdict)
    assert out.verdicts == [(False, None)]
    assert "error in request hook" in caplog.text and "oops" in caplog.text
