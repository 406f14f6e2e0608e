"""Every event of docs/chat-protocol.md with the official python-socketio AsyncClient, good
input and bad: exact acks, exact error codes, and what the other clients see (or don't)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import pytest
import socketio

from salas.recovery import MemoryRecoveryStore
from tests.chat.chat_support import (
    FAST,
    ChatClient,
    clients,
    only_sentinels,
    running_chat,
    sentinel,
)

pytestmark = pytest.mark.timeout(30)


# ----------------------------------------------------------------------------- connecting
async def test_welcome_with_auth_name() -> None:
    """A client connecting with auth {name} is welcomed under that name, then sent `rooms`."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        assert ana.events[0] == (
            "welcome",
            {"name": "ana", "single_room": False, "rooms": [], "recovered": False, "channels": []},
        )
        assert (await ana.next("rooms")) == {"rooms": []}


async def test_guest_name_without_auth() -> None:
    """Without a name the server picks guest-xxxx."""
    async with running_chat() as chat, clients(chat.url, None) as (guest,):
        assert re.fullmatch(r"guest-[0-9a-f]{4}", guest.of("welcome")[0]["name"])


@pytest.mark.parametrize("bad_name", ["", "x" * 33, 42, ["ana"], "a\nb", {"first": "ana"}])
async def test_invalid_auth_name_gets_guest_and_error(bad_name: Any) -> None:
    """An invalid auth name gets an `error` (invalid_name, event connect) and a guest name."""
    async with running_chat() as chat:
        client = await ChatClient().connect(chat.url, auth={"name": bad_name})
        try:
            error = client.of("error")[0]
            assert error["code"] == "invalid_name" and error["event"] == "connect"
            assert client.of("welcome")[0]["name"].startswith("guest-")
            assert (await client.call("channel_join", "r"))["ok"] is True
        finally:
            await client.close()


async def test_welcome_lists_existing_rooms() -> None:
    """A newcomer's welcome and first `rooms` list the rooms with their member counts."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        await bob.call("channel_join", "room2")
        async with clients(chat.url, "cy") as (cy,):
            expected = [{"name": "room1", "count": 2}, {"name": "room2", "count": 1}]
            assert cy.of("welcome")[0]["rooms"] == expected
            assert (await cy.next("rooms")) == {"rooms": expected}


# ---------------------------------------------------------------------------- channel_join
async def test_join_ack_carries_latest_50_and_members() -> None:
    """The join ack has the room's latest 50 messages oldest first, members and count."""
    async with running_chat() as chat:
        for i in range(60):
            await chat.store.append("room1", f"m{i}", "old")
        async with clients(chat.url, "ana", "bob") as (ana, bob):
            await ana.call("channel_join", "room1")
            ack = await bob.call("channel_join", {"channel": "room1"})
            assert ack["ok"] is True and ack["channel"] == "room1" and ack["name"] == "bob"
            assert [m["message"] for m in ack["messages"]] == [f"m{i}" for i in range(10, 60)]
            first = ack["messages"][0]
            assert set(first) == {"id", "channel", "message", "user", "ts"}
            assert ack["members"] == ["ana", "bob"] and ack["count"] == 2


async def test_join_broadcasts_presence_to_the_room_only() -> None:
    """`presence` joined reaches members of the room (joiner included), nobody else."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob", "out") as (ana, bob, out):
        await ana.call("channel_join", "room1")
        await out.call("channel_join", "elsewhere")
        mark_out = out.mark()
        await bob.call("channel_join", "room1")
        expected = {
            "channel": "room1",
            "event": "joined",
            "user": "bob",
            "members": ["ana", "bob"],
            "count": 2,
        }
        assert await ana.next("presence", lambda p: p["user"] == "bob") == expected
        assert await bob.next("presence") == expected
        await sentinel(out, "elsewhere", out)
        assert [e for e in out.since(mark_out) if e[0] == "presence"] == []


async def test_rejoin_broadcasts_nothing() -> None:
    """Joining a room one is already in answers again but says nothing to the room."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        mark = ana.mark()
        ack = await bob.call("channel_join", "room1")
        assert ack["ok"] is True and ack["count"] == 2
        await sentinel(bob, "room1", ana)
        assert only_sentinels(ana.since(mark))


async def test_join_trims_room_name() -> None:
    """' room1 ' is room1: the ack and the broadcasts say so."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        ack = await ana.call("channel_join", "  room1 ")
        assert ack["channel"] == "room1"
        assert (await ana.call("message", "hi"))["channel"] == "room1"


async def test_rooms_broadcast_on_changes_coalesced() -> None:
    """Many joins in a burst reach a bystander as few `rooms` events; the last is exact."""
    config = dataclasses.replace(FAST, rooms_interval=0.3)
    async with running_chat(config) as chat, clients(chat.url, "ana", "by") as (ana, by):
        mark = by.mark()
        for i in range(12):
            await ana.send("channel_join", f"r{i:02d}")
        expected = {"rooms": [{"name": f"r{i:02d}", "count": 1} for i in range(12)]}
        await by.next("rooms", lambda r: r == expected, after=mark)
        assert 1 <= len([e for e in by.since(mark) if e[0] == "rooms"]) <= 3


# --------------------------------------------------------------------------- channel_leave
async def test_leave_tells_the_room_and_stops_delivery() -> None:
    """`presence` left goes to those who stay; the leaver no longer gets the room's messages."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        await bob.call("channel_join", "other")
        assert await bob.call("channel_leave", "room1") == {"ok": True, "channel": "room1"}
        left = await ana.next("presence", lambda p: p["event"] == "left")
        assert left == {
            "channel": "room1",
            "event": "left",
            "user": "bob",
            "members": ["ana"],
            "count": 1,
        }
        mark = bob.mark()
        await ana.call("message", {"channel": "room1", "message": "bob is gone"})
        await sentinel(ana, "room1", ana)
        await sentinel(bob, "other", bob)
        assert [e for e in bob.since(mark) if e[0] in ("message", "presence")] == [
            ("message", bob.of("message")[-1])
        ]
        assert bob.of("message")[-1]["channel"] == "other"


async def test_leave_of_a_room_not_joined_is_quiet() -> None:
    """channel_leave of a room one is not in answers ok and broadcasts nothing."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        mark = ana.mark()
        assert await bob.call("channel_leave", "never") == {"ok": True, "channel": "never"}
        await sentinel(bob, "room1", ana)
        assert only_sentinels(ana.since(mark))


async def test_plain_message_after_leaving_goes_to_previous_room() -> None:
    """A string message goes to the room joined last; after leaving it, the one before."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "a")
        await ana.call("channel_join", "b")
        assert (await ana.call("message", "1"))["channel"] == "b"
        await ana.call("channel_leave", "b")
        assert (await ana.call("message", "2"))["channel"] == "a"
        await ana.call("channel_leave", "a")
        reply = await ana.call("message", "3")
        assert reply["error"]["code"] == "not_in_room"


# --------------------------------------------------------------------------------- message
async def test_tutorial_plain_string_reaches_only_the_room() -> None:
    """The seed's way: join, emit a string without ack; room members get {channel, message}
    (plus id, ts, user), members of other rooms get nothing."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob", "cy") as (ana, bob, cy):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        await cy.call("channel_join", "room2")
        mark = cy.mark()
        await ana.send("message", "hola sala 1")
        got = await bob.next("message")
        assert got["channel"] == "room1" and got["message"] == "hola sala 1"
        assert got["user"] == "ana" and isinstance(got["id"], int) and isinstance(got["ts"], int)
        assert await ana.next("message") == got
        await sentinel(cy, "room2", cy)
        assert only_sentinels(cy.since(mark))


async def test_message_object_form_and_ack() -> None:
    """{channel, message} is acked with id, ts, channel after the broadcast it matches."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        ack = await ana.call("message", {"channel": "room1", "message": "  hi there "})
        assert set(ack) == {"ok", "id", "ts", "channel"} and ack["ok"] is True
        got = await bob.next("message")
        assert got == {
            "id": ack["id"],
            "ts": ack["ts"],
            "channel": "room1",
            "message": "hi there",
            "user": "ana",
        }


async def test_message_to_a_room_not_joined() -> None:
    """A message for a room the socket is not in is not_in_room and reaches nobody."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await bob.call("channel_join", "room1")
        await ana.call("channel_join", "mine")
        mark = bob.mark()
        reply = await ana.call("message", {"channel": "room1", "message": "sneaky"})
        assert reply["error"]["code"] == "not_in_room"
        await sentinel(bob, "room1", bob)
        assert only_sentinels(bob.since(mark))


async def test_message_before_any_join() -> None:
    """A string message before joining anything is not_in_room."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        reply = await ana.call("message", "hello?")
        assert reply == {
            "ok": False,
            "error": {"code": "not_in_room", "message": reply["error"]["message"]},
        }
        assert (await ana.next("error"))["event"] == "message"


async def test_client_id_retry_is_acked_not_rebroadcast() -> None:
    """A retry with the same client_id gets the same id and ts, and is broadcast only once."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        mark = bob.mark()
        msg = {"channel": "room1", "message": "once", "client_id": "c-42"}
        first = await ana.call("message", msg)
        again = await ana.call("message", msg)
        assert first == again and first["client_id"] == "c-42"
        await sentinel(ana, "room1", bob)
        received = [d for e, d in bob.since(mark) if e == "message"]
        assert [d["message"] for d in received][:-1] == ["once"]
        assert received[0]["client_id"] == "c-42"


async def test_messages_are_stored_for_history() -> None:
    """What was broadcast is what history returns."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "room1")
        await ana.call("message", "uno")
        await ana.call("message", "dos")
        history = await ana.call("history", {"channel": "room1"})
        assert [m["message"] for m in history["messages"]] == ["uno", "dos"]
        assert history["messages"] == ana.of("message")


# ---------------------------------------------------------------------------------- typing
async def test_typing_reaches_others_not_the_typist() -> None:
    """typing true reaches the other members with the typist's name, not the typist."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        assert await ana.call("typing", {"channel": "room1", "typing": True}) == {"ok": True}
        assert await bob.next("typing") == {"channel": "room1", "user": "ana", "typing": True}
        assert ana.of("typing") == []


async def test_typing_is_throttled_and_expires() -> None:
    """Ten `true`s in a row make one broadcast; `false` follows on its own after the timeout."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        for _ in range(10):
            await ana.call("typing", "room1")
        stopped = await bob.next("typing", lambda t: t["typing"] is False, timeout=2)
        assert stopped == {"channel": "room1", "user": "ana", "typing": False}
        assert [t["typing"] for t in bob.of("typing")] == [True, False]


async def test_typing_false_and_message_end_typing() -> None:
    """`typing: false` past the throttle interval and sending a message both broadcast
    `typing: false` at once."""
    config = dataclasses.replace(FAST, typing_timeout=30.0)
    async with running_chat(config) as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        await ana.call("typing", "room1")
        await asyncio.sleep(config.typing_throttle + 0.05)
        await ana.call("typing", {"channel": "room1", "typing": False})
        await ana.call("typing", "room1")
        await ana.call("message", "done typing")
        await bob.next("message")
        await sentinel(ana, "room1", bob)
        assert [t["typing"] for t in bob.of("typing")] == [True, False, True, False]


async def test_typing_in_a_room_not_joined() -> None:
    """typing for a room the socket is not in is not_in_room, and nobody hears of it."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await bob.call("channel_join", "room1")
        reply = await ana.call("typing", "room1")
        assert reply["error"]["code"] == "not_in_room"
        await sentinel(bob, "room1", bob)
        assert bob.of("typing") == []


# --------------------------------------------------------------------------------- history
async def test_history_before_and_after() -> None:
    """before pages back, after pages forward, both bound a range; limit caps the page."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "room1")
        ids = [(await ana.call("message", f"m{i}"))["id"] for i in range(10)]

        async def page(**query: Any) -> list[str]:
            reply = await ana.call("history", {"channel": "room1", **query})
            assert reply["ok"] is True and reply["channel"] == "room1"
            return [m["message"] for m in reply["messages"]]

        assert await page() == [f"m{i}" for i in range(10)]
        assert await page(limit=3) == ["m7", "m8", "m9"]
        assert await page(before=ids[5], limit=2) == ["m3", "m4"]
        assert await page(after=ids[5], limit=2) == ["m6", "m7"]
        assert await page(after=ids[1], before=ids[4]) == ["m2", "m3"]
        assert await page(before=ids[0]) == []


async def test_history_of_a_room_not_joined() -> None:
    """Rooms are public: history of a room one is not in works (by name, too)."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await ana.call("message", "public")
        reply = await bob.call("history", "room1")
        assert [m["message"] for m in reply["messages"]] == ["public"]


# ------------------------------------------------------------------------------------ nick
async def test_nick_renames_in_every_room() -> None:
    """nick answers the new name; each room of the socket gets `presence` renamed."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "r1")
        await ana.call("channel_join", "r2")
        await bob.call("channel_join", "r1")
        assert await ana.call("nick", "anita") == {"ok": True, "name": "anita"}
        renamed = await bob.next("presence", lambda p: p["event"] == "renamed")
        assert renamed == {
            "channel": "r1",
            "event": "renamed",
            "user": "anita",
            "previous": "ana",
            "members": ["anita", "bob"],
            "count": 2,
        }
        await ana.next("presence", lambda p: p["event"] == "renamed" and p["channel"] == "r2")
        assert (await ana.call("message", {"channel": "r1", "message": "x"}))["ok"]
        assert (await bob.next("message"))["user"] == "anita"


async def test_nick_to_a_name_taken_in_your_room() -> None:
    """nick to a name another member of one of your rooms shows is name_taken; nothing sent."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "r1")
        await bob.call("channel_join", "r1")
        mark, mark_bob = ana.mark(), bob.mark()
        reply = await bob.call("nick", "ANA")
        assert reply["error"]["code"] == "name_taken"
        assert (await bob.next("error", after=mark_bob))["code"] == "name_taken"
        await sentinel(bob, "r1", ana)
        assert only_sentinels(ana.since(mark))
        assert (await bob.call("message", "still bob"))["ok"] is True
        assert ana.of("message")[-1]["user"] == "bob"


async def test_join_where_name_is_taken_shows_suffix() -> None:
    """Joining a room where another member shows your name shows you as name#2 there."""
    async with running_chat() as chat, clients(chat.url, "ana", "Ana") as (ana1, ana2):
        await ana1.call("channel_join", "r1")
        ack = await ana2.call("channel_join", "r1")
        assert ack["name"] == "Ana#2" and ack["members"] == ["ana", "Ana#2"]
        await ana2.call("message", "me too")
        assert (await ana1.next("message"))["user"] == "Ana#2"
        assert (await ana2.call("channel_join", "r2"))["name"] == "Ana"


# ------------------------------------------------------------------------------ disconnect
async def test_disconnect_tells_each_room() -> None:
    """A disconnect sends `presence` left to each room of the socket, typing false, rooms."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "r1")
        await ana.call("channel_join", "r2")
        await bob.call("channel_join", "r1")
        await bob.call("channel_join", "r2")
        await bob.call("typing", "r1")
        await ana.next("typing")
        await bob.close()
        left = [
            await ana.next("presence", lambda p, r=r: p["event"] == "left" and p["channel"] == r)
            for r in ("r1", "r2")
        ]
        assert all(p["user"] == "bob" and p["members"] == ["ana"] for p in left)
        assert (await ana.next("typing", lambda t: not t["typing"]))["user"] == "bob"
        await ana.next(
            "rooms",
            lambda r: r["rooms"] == [{"name": "r1", "count": 1}, {"name": "r2", "count": 1}],
        )


# ------------------------------------------------------------------------------ single room
async def test_single_room_mode_leaves_previous_room() -> None:
    """--single-room: joining leaves the previous room (presence left there), messages follow."""
    config = dataclasses.replace(FAST, single_room=True)
    async with running_chat(config) as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        assert ana.of("welcome")[0]["single_room"] is True
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        ack = await ana.call("channel_join", "room2")
        assert ack["members"] == ["ana"]
        left = await bob.next("presence", lambda p: p["event"] == "left")
        assert left["channel"] == "room1" and left["user"] == "ana" and left["members"] == ["bob"]
        mark = bob.mark()
        assert (await ana.call("message", "now in 2"))["channel"] == "room2"
        reply = await ana.call("message", {"channel": "room1", "message": "old room"})
        assert reply["error"]["code"] == "not_in_room"
        await sentinel(bob, "room1", bob)
        assert only_sentinels(bob.since(mark))
        await bob.next(
            "rooms",
            lambda r: r["rooms"] == [{"name": "room1", "count": 1}, {"name": "room2", "count": 1}],
        )


async def test_multi_room_mode_stays_in_every_room() -> None:
    """By default a socket stays in all the rooms it joined and gets each room's messages."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await ana.call("channel_join", "room2")
        await bob.call("channel_join", "room1")
        await bob.call("channel_join", "room2")
        await bob.call("message", {"channel": "room1", "message": "in 1"})
        await bob.call("message", {"channel": "room2", "message": "in 2"})
        await ana.next("message", lambda m: m["message"] == "in 2")
        assert [(m["channel"], m["message"]) for m in ana.of("message")] == [
            ("room1", "in 1"),
            ("room2", "in 2"),
        ]


# ------------------------------------------------------------------------------ bad inputs
HUGE = "x" * 100_000
BAD_INPUTS: list[tuple[str, tuple[Any, ...], str]] = [
    # channel_join
    ("channel_join", (), "bad_request"),
    ("channel_join", (None,), "bad_request"),
    ("channel_join", (5,), "bad_request"),
    ("channel_join", (["room1"],), "bad_request"),
    ("channel_join", (True,), "bad_request"),
    ("channel_join", ({"room": "room1"},), "bad_request"),
    ("channel_join", ({"channel": {"nested": {"deep": 1}}},), "invalid_room"),
    ("channel_join", ("",), "invalid_room"),
    ("channel_join", ("x" * 65,), "invalid_room"),
    ("channel_join", ("bell\x07",), "invalid_room"),
    ("channel_join", (HUGE,), "invalid_room"),
    # channel_leave
    ("channel_leave", (), "bad_request"),
    ("channel_leave", (3.5,), "bad_request"),
    ("channel_leave", ({"channel": None},), "bad_request"),
    ("channel_leave", ({"channel": 1},), "invalid_room"),
    # message
    ("message", (), "bad_request"),
    ("message", (None,), "bad_request"),
    ("message", (12,), "bad_request"),
    ("message", (["hi"],), "bad_request"),
    ("message", ({"channel": "room1"},), "bad_request"),
    ("message", ({"message": "hi"},), "bad_request"),
    ("message", ({"channel": "room1", "message": {"nested": "hi"}},), "invalid_message"),
    ("message", ({"channel": "room1", "message": ""},), "invalid_message"),
    ("message", ({"channel": "room1", "message": "   \n "},), "invalid_message"),
    ("message", ({"channel": "room1", "message": "x" * 4001},), "invalid_message"),
    ("message", ({"channel": "room1", "message": HUGE},), "invalid_message"),
    ("message", ({"channel": "room1", "message": "nul\x00"},), "invalid_message"),
    ("message", ({"channel": "room1", "message": "hi", "client_id": 99},), "bad_request"),
    ("message", ({"channel": "room1", "message": "hi", "client_id": {"a": 1}},), "bad_request"),
    ("message", ({"channel": ["room1"], "message": "hi"},), "invalid_room"),
    ("message", ({"channel": "nope", "message": "hi"},), "not_in_room"),
    ("message", ("",), "invalid_message"),
    # typing
    ("typing", (), "bad_request"),
    ("typing", (1,), "bad_request"),
    ("typing", ({"channel": "room1", "typing": "yes"},), "bad_request"),
    ("typing", ({"channel": "room1", "typing": None, "x": 1},), "bad_request"),
    ("typing", ({"channel": "nope"},), "not_in_room"),
    # history
    ("history", (), "bad_request"),
    ("history", ([],), "bad_request"),
    ("history", ({"channel": "room1", "limit": 0},), "bad_request"),
    ("history", ({"channel": "room1", "limit": 201},), "bad_request"),
    ("history", ({"channel": "room1", "limit": "5"},), "bad_request"),
    ("history", ({"channel": "room1", "before": "10"},), "bad_request"),
    ("history", ({"channel": "room1", "after": 1.5},), "bad_request"),
    ("history", ({"channel": 7},), "invalid_room"),
    # nick
    ("nick", (), "bad_request"),
    ("nick", (None,), "bad_request"),
    ("nick", (["bob"],), "bad_request"),
    ("nick", ("",), "invalid_name"),
    ("nick", ("x" * 33,), "invalid_name"),
    ("nick", ("two\nlines",), "invalid_name"),
    ("nick", (HUGE,), "invalid_name"),
    ("nick", ({"name": 5},), "invalid_name"),
]


def _case_id(case: tuple[str, tuple[Any, ...], str]) -> str:
    event, args, code = case
    shown = repr(args)
    return f"{event}-{code}-{shown[:30]}"


@pytest.mark.parametrize(("event", "args", "code"), BAD_INPUTS, ids=map(_case_id, BAD_INPUTS))
async def test_bad_input(event: str, args: tuple[Any, ...], code: str) -> None:
    """Bad input gets the exact error code in the ack and an `error` event to the sender only;
    the other member of the room receives nothing, and the sender's connection still works."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        await bob.next("presence", lambda p: p["count"] == 2)
        # Let the room list settle, so that anything after the mark is caused by the input.
        await bob.next("rooms", lambda r: r["rooms"] == [{"name": "room1", "count": 2}])
        await asyncio.sleep(2 * FAST.rooms_interval)
        mark_ana, mark_bob = ana.mark(), bob.mark()
        reply = await ana.call(event, *args)
        assert reply["ok"] is False and reply["error"]["code"] == code, reply
        assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
        error = await ana.next("error", after=mark_ana)
        assert error == {**reply["error"], "event": event}
        # The offender is still connected and served; the bystander saw only that.
        await sentinel(ana, "room1", ana, bob)
        assert only_sentinels(bob.since(mark_bob))
        assert ana.sio.connected and bob.sio.connected


async def test_bad_input_without_ack_still_gets_error_event() -> None:
    """Without an ack callback the offender still learns of its error through `error`."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        await ana.send("channel_join", 12345)
        error = await ana.next("error")
        assert error["code"] == "bad_request" and error["event"] == "channel_join"


async def test_binary_arguments_are_bad_requests() -> None:
    """Binary data where text goes is bad_request, not a crash."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "room1")
        reply = await ana.call("message", b"\x00\x01")
        assert reply["error"]["code"] == "bad_request"
        reply = await ana.call("channel_join", {"channel": b"room"})
        assert reply["error"]["code"] == "invalid_room"


async def test_unknown_events_are_ignored() -> None:
    """An event the chat does not know neither crashes nor disconnects."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        await ana.send("no_such_event", {"x": 1})
        await ana.call("channel_join", "room1")
        assert (await ana.call("message", "ok"))["ok"] is True


async def test_lone_surrogate_is_invalid_message_not_a_disconnect() -> None:
    """Text with a lone surrogate (half an emoji) is invalid_message, connection kept."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "room1")
        reply = await ana.sio.call("message", "half \ud83d", timeout=1)
        assert reply["error"]["code"] == "invalid_message"


# ------------------------------------------------------------------- resuming without recovery
async def test_client_without_recovery_resumes_with_history_after() -> None:
    """python-socketio cannot recover a session: after a reconnect, `history {channel, after:
    last id seen}` page by page gives exactly the messages it missed, in order; with recovery
    on, its handlers take the offset as an extra argument (`def on_message(data, *_)`)."""
    config = dataclasses.replace(FAST, message_rate=0)
    async with (
        running_chat(config, recovery=MemoryRecoveryStore()) as chat,
        clients(chat.url, "bob") as (bob,),
    ):
        await bob.call("channel_join", "room1")
        seen: list[dict[str, Any]] = []
        arrived = asyncio.Event()

        def on_message(data: dict[str, Any], *_: Any) -> None:
            seen.append(data)
            arrived.set()

        async def until_seen(count: int) -> None:
            while len(seen) < count:
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), 5)

        ana = socketio.AsyncClient(reconnection=False)
        ana.on("message", on_message)
        await ana.connect(chat.url, auth={"name": "ana"}, transports=["websocket"])
        await ana.call("channel_join", "room1", timeout=5)
        for i in range(3):
            await bob.call("message", f"before {i}")
        await until_seen(3)
        last = seen[-1]["id"]
        await ana.disconnect()

        missed = [(await bob.call("message", f"missed {i}"))["id"] for i in range(250)]
        await ana.connect(chat.url, auth={"name": "ana"}, transports=["websocket"])
        joined = await ana.call("channel_join", "room1", timeout=5)
        assert len(joined["messages"]) == 50  # the latest only: not enough to fill the gap
        fetched: list[dict[str, Any]] = []
        after = last
        for _ in range(10):
            page = await ana.call("history", {"channel": "room1", "after": after, "limit": 200})
            fetched += page["messages"]
            if len(page["messages"]) < 200:
                break
            after = page["messages"][-1]["id"]
        assert [m["id"] for m in fetched] == missed
        assert fetched[0]["message"] == "missed 0" and fetched[-1]["message"] == "missed 249"
        live = await bob.call("message", "live again")
        await until_seen(4)
        assert [m["id"] for m in seen[3:]] == [live["id"]]
        await ana.disconnect()
