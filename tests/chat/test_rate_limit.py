"""The chat's one event budget per socket (salas.chat.rate_limit): costs, refusals and the
cut-off of a socket that keeps sending into it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from salas.chat.rate_limit import EVENT_COSTS, EventBudget
from tests.chat.chat_support import FAST, clients, running_chat


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_every_chat_event_has_a_cost() -> None:
    """Each event the chat handles spends from the budget; typing costs a fraction."""
    assert set(EVENT_COSTS) == {
        "message",
        "channel_join",
        "channel_leave",
        "history",
        "delete_message",
        "kick",
        "ban",
        "unban",
        "nick",
        "typing",
    }
    assert 0 < EVENT_COSTS["typing"] < 1


def test_events_share_one_budget() -> None:
    """Joins, history and messages drain the same bucket; typing takes a fifth of a token."""
    budget = EventBudget(3, 1.0, 50, Clock())
    assert budget.spend("channel_join") and budget.spend("history")
    assert budget.spend("typing")
    assert not budget.spend("message")  # 0.8 tokens left
    assert [budget.spend("typing") for _ in range(5)] == [True] * 4 + [False]


def test_refusals_in_a_row_reset_when_one_passes() -> None:
    """`refused_in_a_row` counts consecutive refusals only; cut_off once it reaches the cutoff."""
    clock = Clock()
    budget = EventBudget(1, 1.0, 3, clock)
    assert budget.spend("message")
    assert not budget.spend("message") and not budget.spend("message")
    assert budget.refused_in_a_row == 2 and not budget.cut_off
    clock.now += 1.0
    assert budget.spend("message")
    assert budget.refused_in_a_row == 0
    for _ in range(3):
        budget.spend("message")
    assert budget.cut_off


def test_cutoff_zero_never_cuts() -> None:
    """With a cutoff of 0, refusals never disconnect."""
    budget = EventBudget(1, 1.0, 0, Clock())
    for _ in range(1000):
        budget.spend("message")
    assert not budget.cut_off


async def test_flooder_cut_off_after_refusals_bystander_unaffected(caplog) -> None:
    """A socket sending on after `event_cutoff` refusals in a row is disconnected (logged
    once); the other member of its room keeps talking and gets only what was allowed."""
    config = dataclasses.replace(FAST, message_burst=3, message_rate=0.5, event_cutoff=5)
    caplog.set_level(logging.WARNING, "salas.chat")
    async with running_chat(config) as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "r")
        await bob.call("channel_join", "r")
        assert (await ana.call("message", "m0"))["ok"] and (await ana.call("message", "m1"))["ok"]
        for i in range(30):
            await ana.send("message", f"flood{i}")
        for _ in range(200):
            if not ana.sio.connected:
                break
            await asyncio.sleep(0.01)
        assert not ana.sio.connected
        reply = await bob.call("message", "still here")
        assert reply["ok"] is True
        await bob.next("message", lambda m: m["message"] == "still here")
        texts = [m["message"] for m in bob.of("message")]
        assert texts == ["m0", "m1", "still here"]
        assert len(await chat.store.history("r")) == 3
    cut = [r for r in caplog.records if "disconnecting socket" in r.getMessage()]
    assert len(cut) == 1


async def test_honest_page_pace_never_refused() -> None:
    """A page-like client: joins 10 rooms with history each, types every 2 s and sends a few
    messages: never refused under the default budget."""
    config = dataclasses.replace(FAST, message_burst=50, message_rate=10.0)
    async with running_chat(config) as chat, clients(chat.url, "ana") as (ana,):
        for i in range(10):
            assert (await ana.call("channel_join", f"r{i}"))["ok"]
            assert (await ana.call("history", {"channel": f"r{i}"}))["ok"]
        for i in range(5):
            assert (await ana.call("typing", {"channel": "r0", "typing": True}))["ok"]
            assert (await ana.call("message", {"channel": "r0", "message": f"m{i}"}))["ok"]
        assert ana.of("error") == []


@pytest.mark.parametrize("event", ["typing", "channel_join", "history", "nick"])
async def test_every_event_spends_from_the_budget(event: str) -> None:
    """Past the burst, any chat event is refused rate_limited, not only messages."""
    config = dataclasses.replace(FAST, message_burst=2, message_rate=0.1)
    args = {
        "typing": {"channel": "r", "typing": True},
        "channel_join": "r",
        "history": {"channel": "r"},
        "nick": "ana2",
    }[event]
    async with running_chat(config) as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "r")
        await ana.call("message", "m0")
        reply = await ana.call(event, args)
        assert reply["ok"] is False and reply["error"]["code"] == "rate_limited"


async def test_budget_made_by_the_first_event_and_full_then() -> None:
    """An idle connection keeps no event budget (memory per connection); its first event
    makes one, as full as a budget made at connect would be: the burst passes, the event
    after it is refused."""
    config = dataclasses.replace(FAST, message_burst=3, message_rate=0.001)
    async with running_chat(config) as chat, clients(chat.url, "ana") as (ana,):
        (conn,) = chat.app.events._conns.values()
        assert conn.budget is None
        assert (await ana.call("channel_join", "r"))["ok"]
        assert conn.budget is not None
        assert (await ana.call("message", "m0"))["ok"] and (await ana.call("message", "m1"))["ok"]
        reply = await ana.call("message", "m2")
        assert reply["ok"] is False and reply["error"]["code"] == "rate_limited"
