"""Typing: first `true` at once, throttled repeats, `false` on stop and on its own."""

from __future__ import annotations

import asyncio
import dataclasses

from salas.chat.typing_status import TypingTracker
from salas.recovery.memory import MemoryRecoveryStore
from tests.chat.chat_support import FAST, clients, running_chat


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tracker(
    timeout: float = 10.0, throttle: float = 1.0
) -> tuple[TypingTracker, list[tuple[str, str, str, bool]], Clock]:
    calls: list[tuple[str, str, str, bool]] = []
    clock = Clock()

    def on_change(room: str, sid: str, user: str, typing: bool) -> None:
        calls.append((room, sid, user, typing))

    return TypingTracker(on_change, timeout=timeout, throttle=throttle, clock=clock), calls, clock


async def test_first_true_goes_out_repeats_are_throttled() -> None:
    """Many `true`s within the throttle interval make one broadcast; after it, one more."""
    t, calls, clock = tracker(throttle=1.0)
    for _ in range(10):
        t.update("r", "s", "ana", True)
        clock.now += 0.05
    assert calls == [("r", "s", "ana", True)]
    clock.now = 1.2
    t.update("r", "s", "ana", True)
    assert calls == [("r", "s", "ana", True)] * 2
    t.close()


async def test_false_when_told() -> None:
    """`false` after `true` (past the throttle interval) is broadcast once; `false` when not
    typing is not."""
    t, calls, clock = tracker()
    t.update("r", "s", "ana", False)
    assert calls == []
    t.update("r", "s", "ana", True)
    clock.now += 1.0
    t.update("r", "s", "ana", False)
    t.update("r", "s", "ana", False)
    assert calls == [("r", "s", "ana", True), ("r", "s", "ana", False)]
    assert not t.is_typing("r", "s")


async def test_expires_on_its_own() -> None:
    """Without a repeat, `false` follows after the timeout."""
    t, calls, _ = tracker(timeout=0.05)
    t.update("r", "s", "ana", True)
    await asyncio.sleep(0.15)
    assert calls == [("r", "s", "ana", True), ("r", "s", "ana", False)]
    assert t.typists("r") == []


async def test_repeats_push_the_expiry_back() -> None:
    """A repeat before the timeout keeps the typist typing past the first deadline."""
    t, calls, _ = tracker(timeout=0.12, throttle=100.0)
    t.update("r", "s", "ana", True)
    for _ in range(4):
        await asyncio.sleep(0.06)
        t.update("r", "s", "ana", True)
    assert calls == [("r", "s", "ana", True)]  # 0.24 s in, still typing
    assert t.typists("r") == ["ana"]
    await asyncio.sleep(0.25)
    assert calls[-1] == ("r", "s", "ana", False)
    assert len(calls) == 2


async def test_stop_all_for_a_socket() -> None:
    """A disconnecting socket stops typing in each of its rooms, other typists untouched."""
    t, calls, _ = tracker()
    t.update("a", "s", "ana", True)
    t.update("b", "s", "ana", True)
    t.update("a", "x", "bob", True)
    calls.clear()
    assert t.stop_all("s") == ["a", "b"]
    assert sorted(calls) == [("a", "s", "ana", False), ("b", "s", "ana", False)]
    assert t.typists("a") == ["bob"]
    t.close()


async def test_user_is_the_name_given_when_typing_started() -> None:
    """The `false` names the user the `true` named (the page clears that name)."""
    t, calls, _ = tracker()
    t.update("r", "s", "ana", True)
    assert t.stop("r", "s") is True
    assert calls[-1] == ("r", "s", "ana", False)
    assert t.stop("r", "s") is False


async def test_close_is_silent() -> None:
    """close() cancels pending expiries without broadcasting."""
    t, calls, _ = tracker(timeout=0.02)
    t.update("r", "s", "ana", True)
    t.close()
    await asyncio.sleep(0.06)
    assert calls == [("r", "s", "ana", True)]


async def test_toggling_is_throttled_and_the_last_state_arrives() -> None:
    """1,000 alternating true/false within one throttle interval make one broadcast, and
    the final state (false) follows once the interval is over."""
    t, calls, _ = tracker(throttle=0.05)
    for i in range(1000):
        t.update("r", "s", "ana", i % 2 == 0)
    assert calls == [("r", "s", "ana", True)]
    await asyncio.sleep(0.12)
    assert calls == [("r", "s", "ana", True), ("r", "s", "ana", False)]
    assert not t.is_typing("r", "s")


async def test_false_then_true_within_the_interval_keeps_typing() -> None:
    """A `false` cancelled by a `true` before the interval ends is never broadcast; the
    interval's end brings at most one reminder."""
    t, calls, _ = tracker(throttle=0.05)
    t.update("r", "s", "ana", True)
    t.update("r", "s", "ana", False)
    t.update("r", "s", "ana", True)
    await asyncio.sleep(0.12)
    assert calls == [("r", "s", "ana", True)] * 2
    assert t.is_typing("r", "s")
    t.close()


async def test_server_stop_is_immediate() -> None:
    """The server's own stop (a message sent, a leave) goes out at once, throttle or not."""
    t, calls, _ = tracker(throttle=100.0)
    t.update("r", "s", "ana", True)
    assert t.stop("r", "s") is True
    assert calls == [("r", "s", "ana", True), ("r", "s", "ana", False)]


async def test_toggle_flood_reaches_the_room_bounded_and_is_not_logged() -> None:
    """1,000 typing toggles over a live chat (no rate limit, recovery on) reach the other
    member as at most three broadcasts, add nothing to the recovery log, and end `false`."""
    config = dataclasses.replace(FAST, message_rate=0, typing_throttle=0.2)
    recovery = MemoryRecoveryStore()
    async with (
        running_chat(config, recovery=recovery) as chat,
        clients(chat.url, "ana", "bob") as (ana, bob),
    ):
        await ana.call("channel_join", "r")
        await bob.call("channel_join", "r")
        await asyncio.sleep(0.1)
        offset = await recovery.last_offset()
        for i in range(1000):
            await ana.send("typing", {"channel": "r", "typing": i % 2 == 0})
        await ana.call("history", {"channel": "r"})  # every toggle has been handled
        await asyncio.sleep(0.5)  # past the throttle: the final state went out
        typing = bob.of("typing")
        assert 1 <= len(typing) <= 3
        assert typing[-1]["typing"] is False
        assert await recovery.last_offset() == offset
