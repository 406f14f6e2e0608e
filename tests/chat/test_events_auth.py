"""The chat with token auth, through python-socketio: refused connections, identity from the
token (names, user ids), several sockets of one user as one member, private rooms."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
import socketio
import websockets

from tests.chat.chat_support import (
    FAST,
    TIMEOUT,
    ChatClient,
    running_chat,
    sentinel,
    token,
    verifier,
)

pytestmark = pytest.mark.timeout(30)

PRIVATE = dataclasses.replace(FAST, private_rooms=("staff-*", "ops"))


async def _connect_error(port: int, auth: dict[str, Any] | None) -> Any:
    """What the server answers a CONNECT with this auth payload: the CONNECT_ERROR's data."""
    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    async with websockets.connect(url) as ws:
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ws.send("40" + (json.dumps(auth) if auth is not None else ""))
        while True:
            packet = str(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if packet != "2":
                break
    assert packet.startswith("44"), packet
    return json.loads(packet[2:])


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        (None, "missing token"),
        ({"name": "ana"}, "missing token"),
        ({"token": "not-a-jwt"}, "malformed"),
        ({"token": 42}, "malformed"),
    ],
)
async def test_refused_without_a_valid_token(auth: dict[str, Any] | None, reason: str) -> None:
    """Without a valid token the CONNECT is refused with the exact unauthorized payload."""
    async with running_chat(auth=verifier()) as chat:
        assert await _connect_error(chat.port, auth) == {
            "message": "unauthorized",
            "data": {"code": "unauthorized", "reason": reason},
        }
        assert chat.app.presence.connections == 0


async def test_expired_token_is_refused() -> None:
    """An expired token gets reason `expired`; the python client cannot connect with it."""
    async with running_chat(auth=verifier()) as chat:
        expired = token("ana", ttl=1)
        await asyncio.sleep(2.1)
        data = await _connect_error(chat.port, {"token": expired})
        assert data["data"] == {"code": "unauthorized", "reason": "expired"}
        with pytest.raises(socketio.exceptions.ConnectionError):
            await ChatClient().connect(chat.url, auth={"token": expired})


async def test_token_in_auth_payload_gives_identity() -> None:
    """With auth.token the name comes from the token (auth.name ignored); welcome says who."""
    async with running_chat(auth=verifier()) as chat:
        ana = await ChatClient().connect(
            chat.url, auth={"token": token("u-ana", "Ana"), "name": "mallory"}
        )
        try:
            assert ana.of("welcome")[0] == {
                "name": "Ana",
                "single_room": False,
                "rooms": [],
                "recovered": False,
                "channels": [],
                "user_id": "u-ana",
                "role": "member",
                "auth": True,
                "nick_allowed": False,
            }
        finally:
            await ana.close()


async def test_token_in_authorization_header() -> None:
    """A non-browser client may send the token as `Authorization: Bearer`."""
    async with running_chat(auth=verifier()) as chat:
        client = await ChatClient().connect(
            chat.url, headers={"Authorization": f"Bearer {token('u-bot', 'bot', role='admin')}"}
        )
        try:
            welcome = client.of("welcome")[0]
            assert (welcome["user_id"], welcome["name"], welcome["role"]) == (
                "u-bot",
                "bot",
                "admin",
            )
        finally:
            await client.close()


async def test_nick_is_forbidden_unless_allowed() -> None:
    """With auth, `nick` answers forbidden; with allow_nick it renames as before."""
    async with running_chat(auth=verifier()) as chat:
        ana = await ChatClient().connect(chat.url, auth={"token": token("u-ana", "Ana")})
        try:
            reply = await ana.call("nick", "Queen")
            assert reply["ok"] is False and reply["error"]["code"] == "forbidden"
            assert (await ana.next("error"))["event"] == "nick"
        finally:
            await ana.close()
    config = dataclasses.replace(FAST, allow_nick=True)
    async with running_chat(config, auth=verifier()) as chat:
        ana = await ChatClient().connect(chat.url, auth={"token": token("u-ana", "Ana")})
        try:
            assert ana.of("welcome")[0]["nick_allowed"] is True
            assert await ana.call("nick", "Queen") == {"ok": True, "name": "Queen"}
        finally:
            await ana.close()


async def test_user_id_on_messages_presence_typing_and_history() -> None:
    """`user_id` is the token's sub on message, presence, typing, join ack and history,
    and it is stored with the message."""
    async with running_chat(auth=verifier()) as chat:
        ana = await ChatClient().connect(chat.url, auth={"token": token("u-ana", "Ana")})
        bob = await ChatClient().connect(chat.url, auth={"token": token("u-bob", "Bob")})
        try:
            await ana.call("channel_join", "r")
            ack = await bob.call("channel_join", "r")
            assert ack["users"] == [
                {"id": "u-ana", "name": "Ana"},
                {"id": "u-bob", "name": "Bob"},
            ]
            assert ack["private"] is False
            joined = await ana.next("presence", lambda p: p["user"] == "Bob")
            assert joined["user_id"] == "u-bob" and joined["users"] == ack["users"]
            reply = await ana.call("message", {"channel": "r", "message": "hi"})
            got = await bob.next("message")
            assert got["user_id"] == "u-ana" and got["user"] == "Ana"
            stored = await chat.store.get("r", reply["id"])
            assert stored is not None and stored.user_id == "u-ana"
            await ana.call("typing", "r")
            assert (await bob.next("typing"))["user_id"] == "u-ana"
            history = await bob.call("history", "r")
            assert history["messages"][0]["user_id"] == "u-ana"
            rejoin = await ana.call("channel_join", "r")
            assert rejoin["messages"][0]["user_id"] == "u-ana"
        finally:
            await ana.close()
            await bob.close()


async def test_two_sockets_of_one_user_are_one_member() -> None:
    """A user's second socket in a room adds no member and no `joined`; the user leaves
    (one `left`) when the last socket does; the rooms list counts users."""
    async with running_chat(auth=verifier()) as chat:
        watcher = await ChatClient().connect(chat.url, auth={"token": token("u-w", "W")})
        tab1 = await ChatClient().connect(chat.url, auth={"token": token("u-ana", "Ana")})
        tab2 = await ChatClient().connect(chat.url, auth={"token": token("u-ana", "Ana")})
        try:
            await watcher.call("channel_join", "r")
            mark = watcher.mark()
            assert (await tab1.call("channel_join", "r"))["name"] == "Ana"
            ack = await tab2.call("channel_join", "r")
            assert ack["name"] == "Ana" and ack["count"] == 2
            assert ack["members"] == ["Ana", "W"]
            await watcher.next(
                "rooms", lambda r: r["rooms"] == [{"name": "r", "count": 2, "private": False}]
            )
            await tab1.close()
            await sentinel(tab2, "r", watcher)
            await tab2.call("channel_leave", "r")
            left = await watcher.next("presence", lambda p: p["event"] == "left")
            await sentinel(watcher, "r", watcher)
            presences = [p for name, p in watcher.since(mark) if name == "presence"]
            assert [(p["event"], p["user_id"]) for p in presences] == [
                ("joined", "u-ana"),
                ("left", "u-ana"),
            ]
            assert left["members"] == ["W"] and left["count"] == 1
        finally:
            for client in (watcher, tab1, tab2):
                await client.close()


async def test_same_name_of_different_users_gets_a_suffix() -> None:
    """Two users named alike are told apart with #2; two sockets of one user are not."""
    async with running_chat(auth=verifier()) as chat:
        a1 = await ChatClient().connect(chat.url, auth={"token": token("u-1", "Ana")})
        a2 = await ChatClient().connect(chat.url, auth={"token": token("u-1", "Ana")})
        other = await ChatClient().connect(chat.url, auth={"token": token("u-2", "Ana")})
        try:
            assert (await a1.call("channel_join", "r"))["name"] == "Ana"
            assert (await a2.call("channel_join", "r"))["name"] == "Ana"
            assert (await other.call("channel_join", "r"))["name"] == "Ana#2"
        finally:
            for client in (a1, a2, other):
                await client.close()


# ---------------------------------------------------------------------------- private rooms
@pytest.mark.parametrize(
    ("event", "arg"),
    [
        ("channel_join", "staff-1"),
        ("history", {"channel": "staff-1"}),
        ("message", {"channel": "staff-1", "message": "psst"}),
        ("typing", {"channel": "ops", "typing": True}),
    ],
)
async def test_private_room_is_forbidden_without_the_claim(event: str, arg: Any) -> None:
    """A member without the rooms claim gets `forbidden` for a private room, nothing is
    broadcast, and the room's members see nothing."""
    async with running_chat(PRIVATE, auth=verifier()) as chat:
        staff = await ChatClient().connect(
            chat.url, auth={"token": token("u-s", "S", rooms=["staff-*", "ops"])}
        )
        eve = await ChatClient().connect(chat.url, auth={"token": token("u-eve", "Eve")})
        try:
            await staff.call("channel_join", "staff-1")
            await staff.call("channel_join", "ops")
            mark = staff.mark()
            reply = await eve.call(event, arg)
            assert reply["ok"] is False and reply["error"]["code"] == "forbidden", reply
            await sentinel(staff, "staff-1", staff)
            assert [e for e in staff.since(mark) if e[0] != "message"] == []
            assert chat.app.presence.rooms_of(eve.sio.get_sid() or "") == []
        finally:
            await staff.close()
            await eve.close()


async def test_private_rooms_listed_only_to_those_who_may_enter() -> None:
    """The rooms list hides private rooms from a member without the claim (counts of the
    others unchanged) and shows them with private: true to a claim holder and a moderator."""
    async with running_chat(PRIVATE, auth=verifier()) as chat:
        staff = await ChatClient().connect(
            chat.url, auth={"token": token("u-s", "S", rooms=["staff-*"])}
        )
        mod = await ChatClient().connect(
            chat.url, auth={"token": token("u-m", "M", role="moderator")}
        )
        eve = await ChatClient().connect(chat.url, auth={"token": token("u-eve", "Eve")})
        try:
            ack = await staff.call("channel_join", "staff-1")
            assert ack["ok"] is True and ack["private"] is True
            await staff.call("channel_join", "lobby")
            assert (await mod.call("channel_join", "ops"))["private"] is True
            public = [{"name": "lobby", "count": 1, "private": False}]
            await eve.next("rooms", lambda r: r["rooms"] == public)
            staff_view = [
                {"name": "lobby", "count": 1, "private": False},
                {"name": "staff-1", "count": 1, "private": True},
            ]
            await staff.next("rooms", lambda r: r["rooms"] == staff_view)
            mod_view = [
                {"name": "lobby", "count": 1, "private": False},
                {"name": "ops", "count": 1, "private": True},
                {"name": "staff-1", "count": 1, "private": True},
            ]
            await mod.next("rooms", lambda r: r["rooms"] == mod_view)
            await asyncio.sleep(3 * FAST.rooms_interval)
            assert all(room["name"] == "lobby" for r in eve.of("rooms") for room in r["rooms"])
            late = await ChatClient().connect(chat.url, auth={"token": token("u-l", "L")})
            try:
                assert late.of("welcome")[0]["rooms"] == public
            finally:
                await late.close()
        finally:
            for client in (staff, mod, eve):
                await client.close()


async def test_private_rooms_cannot_be_entered_without_auth() -> None:
    """Without token auth nobody may enter a private room."""
    async with running_chat(PRIVATE) as chat:
        guest = await ChatClient().connect(chat.url, "ana")
        try:
            reply = await guest.call("channel_join", "ops")
            assert reply["error"]["code"] == "forbidden"
            assert (await guest.call("channel_join", "lobby"))["ok"] is True
        finally:
            await guest.close()


async def test_token_expiry_disconnects() -> None:
    """A socket whose token expires is disconnected by the server (leeway 0 here)."""
    async with running_chat(auth=verifier()) as chat:
        ana = await ChatClient().connect(chat.url, auth={"token": token("u-ana", "Ana", ttl=2)})
        await ana.call("channel_join", "r")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 6
        while ana.sio.connected and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert not ana.sio.connected
        assert chat.app.presence.connections == 0
