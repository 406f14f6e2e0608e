"""Moderation with token auth: deleting messages (also reaching a recovering client),
kicking, banning (refused rejoin, expiry, restart of `salas serve`) and unbanning."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from salas.recovery import MemoryRecoveryStore
from tests.chat.chat_support import (
    FAST,
    SECRET,
    ChatClient,
    RawClient,
    RunningChat,
    running_chat,
    sentinel,
    token,
    verifier,
)
from tests.support.processes import salas_serve

pytestmark = pytest.mark.timeout(60)


@asynccontextmanager
async def people(url: str, *who: tuple[str, str, str]) -> AsyncIterator[list[ChatClient]]:
    """Clients with tokens for these (user id, name, role), all in room "r"."""
    made: list[ChatClient] = []
    try:
        for sub, name, role in who:
            client = await ChatClient().connect(url, auth={"token": token(sub, name, role=role)})
            made.append(client)
            assert (await client.call("channel_join", "r"))["ok"] is True
        yield made
    finally:
        for client in made:
            await client.close()


async def _post(client: ChatClient, text: str) -> int:
    reply = await client.call("message", {"channel": "r", "message": text})
    assert reply["ok"] is True, reply
    message_id: int = reply["id"]
    return message_id


def _code(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    code: str = reply["error"]["code"]
    return code


# ---------------------------------------------------------------------------- delete_message
async def test_author_deletes_own_message_and_members_are_told() -> None:
    """The author deletes their message: ack, `message_deleted` to the room, gone from
    history and from the join ack, a tombstone in the store."""
    async with (
        running_chat(auth=verifier()) as chat,
        people(chat.url, ("u-ana", "Ana", "member"), ("u-bob", "Bob", "member")) as (ana, bob),
    ):
        keep = await _post(ana, "keep")
        gone = await _post(ana, "oops")
        reply = await ana.call("delete_message", {"channel": "r", "id": gone})
        assert reply == {"ok": True, "channel": "r", "id": gone}
        deleted = await bob.next("message_deleted")
        assert deleted == {"channel": "r", "id": gone, "by": "Ana"}
        history = await bob.call("history", "r")
        assert [m["id"] for m in history["messages"]] == [keep]
        assert [m["id"] for m in (await bob.call("channel_join", "r"))["messages"]] == [keep]
        stored = await chat.store.get("r", gone)
        assert stored is not None and stored.deleted and stored.message == ""


async def test_delete_rules() -> None:
    """Others' messages: forbidden for members, allowed for moderators; unknown id:
    not_found; a room one is not in: not_in_room; a repeat: ok without a second broadcast."""
    async with (
        running_chat(auth=verifier()) as chat,
        people(
            chat.url,
            ("u-ana", "Ana", "member"),
            ("u-bob", "Bob", "member"),
            ("u-mod", "Mod", "moderator"),
        ) as (ana, bob, mod),
    ):
        mine = await _post(ana, "ana's")
        assert _code(await bob.call("delete_message", {"channel": "r", "id": mine})) == "forbidden"
        assert _code(await bob.call("delete_message", {"channel": "r", "id": 999})) == "not_found"
        elsewhere = await bob.call("delete_message", {"channel": "x", "id": mine})
        assert _code(elsewhere) == "not_in_room"
        assert _code(await bob.call("delete_message", {"channel": "r", "id": "1"})) == (
            "bad_request"
        )
        assert (await mod.call("delete_message", {"channel": "r", "id": mine}))["ok"] is True
        await ana.next("message_deleted")
        again = await ana.call("delete_message", {"channel": "r", "id": mine})
        assert again == {"ok": True, "channel": "r", "id": mine}
        await sentinel(bob, "r", ana)
        assert len(ana.of("message_deleted")) == 1


async def test_deletion_reaches_a_recovering_client() -> None:
    """A client whose transport dropped, and recovers its session, gets `message_deleted`
    for a deletion made while it was away."""
    async with running_chat(FAST, recovery=MemoryRecoveryStore(), auth=verifier()) as chat:
        ana_token = token("u-ana", "Ana")
        ana = await RawClient.connect(chat.port, {"token": ana_token})
        bob = await ChatClient().connect(chat.url, auth={"token": token("u-bob", "Bob")})
        try:
            assert (await ana.call("channel_join", "r"))["ok"] is True
            await bob.call("channel_join", "r")
            target = await _post(bob, "to be deleted")
            await ana.next("message", lambda m: m["id"] == target)
            await ana.drop()
            await _wait(lambda: not chat.app.presence.is_connected(ana.sid))
            assert (await bob.call("delete_message", {"channel": "r", "id": target}))["ok"]
            back = await ana.reconnect({"token": ana_token})
            try:
                assert back.sid == ana.sid
                assert await back.next("message_deleted") == {
                    "channel": "r",
                    "id": target,
                    "by": "Bob",
                }
                welcome = back.of("welcome")[0]
                assert welcome["recovered"] is True and welcome["user_id"] == "u-ana"
            finally:
                await back.close()
        finally:
            await bob.close()


async def _wait(condition: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------------------------- kick
async def test_kick_removes_every_socket_of_the_user(caplog: pytest.LogCaptureFixture) -> None:
    """A moderator's kick takes each socket of the user out of the room (each gets
    `kicked`), members see one `presence` kicked, and it is logged; the user may rejoin."""
    async with (
        running_chat(auth=verifier()) as chat,
        people(
            chat.url,
            ("u-mod", "Mod", "moderator"),
            ("u-bob", "Bob", "member"),
            ("u-bob", "Bob", "member"),
        ) as (mod, tab1, tab2),
    ):
        with caplog.at_level(logging.INFO, logger="salas.chat"):
            assert await mod.call("kick", {"channel": "r", "user_id": "u-bob"}) == {"ok": True}
        expected = {"channel": "r", "by": "Mod", "banned": False, "until": None}
        assert await tab1.next("kicked") == expected
        assert await tab2.next("kicked") == expected
        kicked = await mod.next("presence", lambda p: p["event"] == "kicked")
        assert kicked["user_id"] == "u-bob" and kicked["by"] == "Mod"
        assert kicked["members"] == ["Mod"] and kicked["count"] == 1
        assert "moderation action=kick channel=r user_id=u-bob by=u-mod" in caplog.text
        assert _code(await tab1.call("message", {"channel": "r", "message": "x"})) == "not_in_room"
        mark = tab2.mark()
        await sentinel(mod, "r", mod)
        assert [e for e in tab2.since(mark) if e[0] == "message"] == []
        assert (await tab1.call("channel_join", "r"))["ok"] is True


async def test_kick_rules() -> None:
    """Members may not kick; kicking someone not in the room is not_found; bad user ids
    are bad_request."""
    async with (
        running_chat(auth=verifier()) as chat,
        people(chat.url, ("u-mod", "Mod", "admin"), ("u-bob", "Bob", "member")) as (mod, bob),
    ):
        assert _code(await bob.call("kick", {"channel": "r", "user_id": "u-mod"})) == "forbidden"
        assert _code(await mod.call("kick", {"channel": "r", "user_id": "u-x"})) == "not_found"
        assert _code(await mod.call("kick", {"channel": "r", "user_id": 5})) == "bad_request"
        assert _code(await mod.call("kick", ["r", "u-bob"])) == "bad_request"
        assert chat.app.presence.members("r") == ["Bob", "Mod"]


# -------------------------------------------------------------------------------------- ban
async def test_ban_refuses_rejoin_until_unbanned(caplog: pytest.LogCaptureFixture) -> None:
    """A ban kicks the user (banned: true), refuses their rejoin with `banned`; unban lifts
    it (lifted: true, then false)."""
    async with (
        running_chat(auth=verifier()) as chat,
        people(chat.url, ("u-mod", "Mod", "moderator"), ("u-bob", "Bob", "member")) as (mod, bob),
    ):
        with caplog.at_level(logging.INFO, logger="salas.chat"):
            reply = await mod.call("ban", {"channel": "r", "user_id": "u-bob"})
        assert reply == {"ok": True, "until": None}
        assert await bob.next("kicked") == {
            "channel": "r",
            "by": "Mod",
            "banned": True,
            "until": None,
        }
        banned = await mod.next("presence", lambda p: p["event"] == "banned")
        assert banned["user_id"] == "u-bob" and banned["by"] == "Mod"
        assert "moderation action=ban channel=r user_id=u-bob by=u-mod until=never" in caplog.text
        assert _code(await bob.call("channel_join", "r")) == "banned"
        assert (await bob.next("error"))["code"] == "banned"
        assert (await bob.call("channel_join", "elsewhere"))["ok"] is True
        assert await mod.call("unban", {"channel": "r", "user_id": "u-bob"}) == {
            "ok": True,
            "lifted": True,
        }
        assert (await mod.call("unban", {"channel": "r", "user_id": "u-bob"}))["lifted"] is False
        assert (await bob.call("channel_join", "r"))["ok"] is True


async def test_timed_ban_expires() -> None:
    """A ban for 1 s refuses the rejoin, then lets it in once over; `until` is in ms."""
    async with (
        running_chat(auth=verifier()) as chat,
        people(chat.url, ("u-mod", "Mod", "moderator"), ("u-bob", "Bob", "member")) as (mod, bob),
    ):
        reply = await mod.call("ban", {"channel": "r", "user_id": "u-bob", "seconds": 1})
        assert reply["ok"] is True and isinstance(reply["until"], int)
        assert (await bob.next("kicked"))["until"] == reply["until"]
        assert _code(await bob.call("channel_join", "r")) == "banned"
        await asyncio.sleep(1.2)
        assert (await bob.call("channel_join", "r"))["ok"] is True


async def test_ban_of_an_absent_user_and_bad_input() -> None:
    """A user not in the room can be banned (nothing broadcast); seconds must be a whole
    number of 1 s to a year; members may not ban or unban."""
    async with (
        running_chat(auth=verifier()) as chat,
        people(chat.url, ("u-mod", "Mod", "moderator"), ("u-bob", "Bob", "member")) as (mod, bob),
    ):
        assert (await mod.call("ban", {"channel": "r", "user_id": "u-away"}))["ok"] is True
        for seconds in (0, -1, 1.5, True, "60", 366 * 86400):
            reply = await mod.call("ban", {"channel": "r", "user_id": "u-x", "seconds": seconds})
            assert _code(reply) == "bad_request", seconds
        assert _code(await bob.call("ban", {"channel": "r", "user_id": "u-mod"})) == "forbidden"
        assert _code(await bob.call("unban", {"channel": "r", "user_id": "u-away"})) == (
            "forbidden"
        )
        away = await ChatClient().connect(chat.url, auth={"token": token("u-away", "Away")})
        try:
            assert _code(await away.call("channel_join", "r")) == "banned"
        finally:
            await away.close()


async def test_moderation_spends_the_event_budget() -> None:
    """Moderation events cost one token each like the others."""
    config = dataclasses.replace(FAST, message_burst=3, message_rate=0.001)
    async with (
        running_chat(config, auth=verifier()) as chat,
        people(chat.url, ("u-mod", "Mod", "moderator")) as (mod,),
    ):
        # The join spent one token; two unbans spend the rest; the third is refused.
        for _ in range(2):
            assert (await mod.call("unban", {"channel": "r", "user_id": "u-x"}))["ok"] is True
        assert _code(await mod.call("unban", {"channel": "r", "user_id": "u-x"})) == (
            "rate_limited"
        )


async def test_ban_survives_a_restart_of_salas_serve(tmp_path: Path) -> None:
    """`salas serve` keeps bans in its SQLite database: after a restart the banned user is
    still refused."""
    server = salas_serve(tmp_path, "--jwt-secret", SECRET)
    await server.astart()
    try:
        url = server.url.rstrip("/")
        async with people(url, ("u-mod", "Mod", "moderator")) as (mod,):
            assert (await mod.call("ban", {"channel": "r", "user_id": "u-bob"}))["ok"] is True
        assert await server.astop() == 0
        await server.astart()
        bob = await ChatClient().connect(url, auth={"token": token("u-bob", "Bob")})
        try:
            assert _code(await bob.call("channel_join", "r")) == "banned"
        finally:
            await bob.close()
        assert "moderation action=ban" in server.log
    finally:
        await server.astop()


async def test_unauthenticated_recovered_session_is_refused(tmp_path: Path) -> None:
    """A session saved by a server without auth, recovered by one with auth (recovery skips
    the middleware), is disconnected rather than let in without a token."""
    from salas.chat import create_app
    from salas.recovery import open_recovery_store
    from salas.store import open_store

    url = f"sqlite://{tmp_path / 'chat.db'}"
    async with running_chat(FAST, open_store(url), open_recovery_store(url)) as chat:
        ana = await RawClient.connect(chat.port, {"name": "ana"})
        await ana.call("channel_join", "r")
        port = chat.port
        await ana.drop()
        await _wait(lambda: not chat.app.presence.is_connected(ana.sid))
    store = open_store(url)
    await store.open()
    app = create_app(FAST, store, open_recovery_store(url), auth=verifier())
    await app.start("127.0.0.1", port)
    try:
        chat2 = RunningChat(app, store, port)
        back = await RawClient.connect(chat2.port, {"pid": ana.pid}, welcome=False)
        await asyncio.sleep(0.3)
        assert back.of("welcome") == [] and app.presence.connections == 0
        await back.drop()
    finally:
        await app.shutdown()
        await store.close()
