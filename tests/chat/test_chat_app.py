"""The chat app around its events: storage before delivery, store failures, ordering, rate
limits, room limits, state cleanup, /healthz and the pages it serves."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest

from salas.chat import ChatApp, ChatConfig, LocalPresence, create_app
from salas.http import CONTENT_SECURITY_POLICY, SECURITY_HEADERS
from salas.store import open_store
from tests.chat.chat_support import (
    FAST,
    GatedStore,
    clients,
    only_sentinels,
    running_chat,
    sentinel,
)

pytestmark = pytest.mark.timeout(30)


async def _wait_until(condition: object, timeout: float = 2.0) -> None:
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_ack_and_broadcast_only_after_storage() -> None:
    """While the store has not confirmed a message, neither its ack nor its broadcast exist."""
    store = GatedStore()
    async with running_chat(store=store) as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        store.gate.clear()
        pending = asyncio.ensure_future(ana.call("message", "wait for it"))
        await _wait_until(lambda: store.waiting == 1)
        await asyncio.sleep(0.1)
        assert not pending.done()
        assert bob.of("message") == [] and ana.of("message") == []
        store.gate.set()
        ack = await pending
        assert ack["ok"] is True
        assert (await bob.next("message"))["id"] == ack["id"]
        assert [m.message for m in await store.history("room1")] == ["wait for it"]


async def test_store_failure_is_unavailable_and_not_broadcast() -> None:
    """When the store fails: `unavailable` to the sender, nothing to the room, and the
    connection works again once the store does."""
    store = GatedStore()
    async with running_chat(store=store) as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        mark = bob.mark()
        store.fail = True
        reply = await ana.call("message", "lost")
        assert reply["ok"] is False and reply["error"]["code"] == "unavailable"
        assert (await ana.next("error"))["code"] == "unavailable"
        store.fail = False
        await sentinel(ana, "room1", bob)
        assert only_sentinels(bob.since(mark))


async def test_a_sockets_messages_keep_their_order() -> None:
    """Messages sent back to back are broadcast in the order sent, even when the store
    confirms them in another order."""
    store = GatedStore()
    store.delays = [0.3, 0.2, 0.1, 0.0, 0.0]
    async with running_chat(store=store) as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        acks = await asyncio.gather(*(ana.call("message", f"m{i}") for i in range(5)))
        assert all(ack["ok"] for ack in acks)
        await bob.next("message", lambda m: m["message"] == "m4")
        await asyncio.sleep(0.05)
        assert [m["message"] for m in bob.of("message")] == [f"m{i}" for i in range(5)]


async def test_message_rate_limit() -> None:
    """Past the burst, messages are rate_limited (not stored, not sent); tokens come back."""
    config = dataclasses.replace(FAST, message_burst=6, message_rate=5.0)  # the join spends 1
    async with running_chat(config) as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        replies = [await ana.call("message", f"m{i}") for i in range(6)]
        assert [r["ok"] for r in replies] == [True] * 5 + [False]
        assert replies[5]["error"]["code"] == "rate_limited"
        assert (await ana.next("error"))["code"] == "rate_limited"
        assert len(await chat.store.history("room1")) == 5
        await asyncio.sleep(0.25)
        assert (await ana.call("message", "later"))["ok"] is True
        await bob.next("message", lambda m: m["message"] == "later")
        assert "m5" not in [m["message"] for m in bob.of("message")]


async def test_message_rate_zero_is_unlimited() -> None:
    """With message_rate 0 a socket may send far past the burst."""
    config = dataclasses.replace(FAST, message_burst=1, message_rate=0)
    async with running_chat(config) as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "room1")
        replies = await asyncio.gather(*(ana.call("message", f"m{i}") for i in range(40)))
        assert all(r["ok"] for r in replies)


async def test_big_rooms_get_presence_without_member_lists() -> None:
    """Above presence_members_max members, presence has count but no members list; the join
    ack still lists everyone."""
    config = dataclasses.replace(FAST, presence_members_max=2)
    async with running_chat(config) as chat, clients(chat.url, "a", "b", "c") as (a, b, c):
        await a.call("channel_join", "room1")
        await b.call("channel_join", "room1")
        small = await a.next("presence", lambda p: p["user"] == "b")
        assert small["members"] == ["a", "b"]
        ack = await c.call("channel_join", "room1")
        assert ack["members"] == ["a", "b", "c"] and ack["count"] == 3
        big = await a.next("presence", lambda p: p["user"] == "c")
        assert big == {"channel": "room1", "event": "joined", "user": "c", "count": 3}
        await c.call("channel_leave", "room1")
        left = await a.next("presence", lambda p: p["event"] == "left")
        assert left["members"] == ["a", "b"] and left["count"] == 2


async def test_rooms_list_is_capped() -> None:
    """The `rooms` list names at most rooms_list_max rooms, the most populated."""
    config = dataclasses.replace(FAST, rooms_list_max=2)
    async with running_chat(config) as chat, clients(chat.url, "a", "b") as (a, b):
        for room in ("big", "mid", "small"):
            await a.call("channel_join", room)
        for room in ("big", "mid"):
            await b.call("channel_join", room)
        expected = [{"name": "big", "count": 2}, {"name": "mid", "count": 2}]
        await a.next("rooms", lambda r: r["rooms"] == expected)
        async with clients(chat.url, "c") as (c,):
            assert c.of("welcome")[0]["rooms"] == expected


async def test_one_budget_for_every_event() -> None:
    """Joins, history and messages share one bucket: past its burst, rate_limited."""
    config = dataclasses.replace(FAST, message_burst=4, message_rate=0.5)
    async with running_chat(config) as chat, clients(chat.url, "ana") as (ana,):
        replies = [await ana.call("channel_join", f"r{i}") for i in range(3)]
        replies.append(await ana.call("history", {"channel": "r0"}))
        replies.append(await ana.call("message", "no tokens left"))
        assert [r["ok"] for r in replies] == [True, True, True, True, False]
        assert replies[4]["error"]["code"] == "rate_limited"


async def test_too_many_rooms() -> None:
    """Past max_rooms_per_socket joins are too_many_rooms; re-joining a room is still fine."""
    config = dataclasses.replace(FAST, max_rooms_per_socket=2)
    async with running_chat(config) as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "a")
        await ana.call("channel_join", "b")
        assert (await ana.call("channel_join", "c"))["error"]["code"] == "too_many_rooms"
        assert (await ana.call("channel_join", "a"))["ok"] is True
        await ana.call("channel_leave", "b")
        assert (await ana.call("channel_join", "c"))["ok"] is True


async def test_join_when_history_is_unavailable() -> None:
    """If history cannot be read the join still works: no messages, an `unavailable` event."""
    store = GatedStore()
    async with running_chat(store=store) as chat, clients(chat.url, "ana") as (ana,):
        store.fail_history = True
        ack = await ana.call("channel_join", "room1")
        assert ack["ok"] is True and ack["messages"] == [] and ack["members"] == ["ana"]
        error = await ana.next("error")
        assert error["code"] == "unavailable" and error["event"] == "channel_join"
        reply = await ana.call("history", "room1")
        assert reply["error"]["code"] == "unavailable"
        assert (await ana.call("message", "writes still work"))["ok"] is True


async def test_disconnect_leaves_no_state() -> None:
    """After clients go, the app holds no connection, room or typing state for them."""
    async with running_chat() as chat:
        async with clients(chat.url, "ana", "bob") as (ana, bob):
            await ana.call("channel_join", "r1")
            await bob.call("channel_join", "r1")
            await ana.call("typing", "r1")
            assert chat.app.presence.connections == 2
        await _wait_until(lambda: chat.app.presence.connections == 0)
        assert chat.app.presence.room_list() == []
        assert chat.app.typing.typists("r1") == []


async def test_polling_client() -> None:
    """A long-polling client takes part like a websocket one."""
    async with (
        running_chat() as chat,
        clients(chat.url, "ana", transport="polling") as (ana,),
        clients(chat.url, "bob") as (bob,),
    ):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        await bob.send("message", "to a poller")
        assert (await ana.next("message"))["message"] == "to a poller"
        assert (await ana.call("message", "from a poller"))["ok"] is True
        await bob.next("message", lambda m: m["message"] == "from a poller")


async def _get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def _healthz(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as resp:
        return resp.status, await resp.json()


async def test_healthz_ok() -> None:
    """/healthz is 200 {ok, store: {ok}, connections} while the store is healthy."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob"):
        status, kind, _ = await _get(chat.url + "/healthz")
        assert status == 200 and kind.startswith("application/json")
        assert await _healthz(chat.url) == (
            200,
            {"ok": True, "store": {"ok": True}, "connections": 2},
        )


async def test_healthz_unhealthy_store_shows_no_error_text() -> None:
    """/healthz is 503 with ok false when the store is unhealthy, without the error's text."""
    store = GatedStore()
    async with running_chat(store=store) as chat:
        store.healthy = False
        assert await _healthz(chat.url) == (
            503,
            {"ok": False, "store": {"ok": False}, "connections": 0},
        )


async def test_healthz_shows_no_sqlite_path(tmp_path) -> None:
    """On SQLite, /healthz does not show where the database file is."""
    store = open_store(f"sqlite:///{tmp_path}/chat.db")
    async with running_chat(store=store) as chat:
        status, body = await _healthz(chat.url)
    assert status == 200
    assert str(tmp_path) not in str(body) and "chat.db" not in str(body)


async def test_healthz_details_on_request(tmp_path) -> None:
    """With healthz_details, /healthz shows the store's report: backend, path, error text."""
    config = dataclasses.replace(FAST, healthz_details=True)
    store = open_store(f"sqlite:///{tmp_path}/chat.db")
    async with running_chat(config, store=store) as chat:
        status, body = await _healthz(chat.url)
    assert status == 200
    assert body["store"]["backend"] == "sqlite"  # type: ignore[index]
    assert body["store"]["path"] == f"{tmp_path}/chat.db"  # type: ignore[index]
    gated = GatedStore()
    async with running_chat(config, store=gated) as chat:
        gated.healthy = False
        assert await _healthz(chat.url) == (
            503,
            {
                "ok": False,
                "store": {"backend": "gated", "ok": False, "error": "unhealthy (test)"},
                "connections": 0,
            },
        )


async def test_pages_are_served() -> None:
    """/ is the chat page, /tutorial/ the tutorial's page and its script, plus the client."""
    async with running_chat() as chat:
        status, kind, _ = await _get(chat.url + "/")
        assert status == 200 and kind.startswith("text/html")
        status, kind, body = await _get(chat.url + "/tutorial/")
        assert status == 200 and kind.startswith("text/html") and "Room 1" in body
        status, _, body = await _get(chat.url + "/tutorial/views/index.js")
        assert status == 200 and "channel_join" in body
        status, _, _ = await _get(chat.url + "/socket.io/socket.io.js")
        assert status == 200


async def test_pages_carry_security_headers() -> None:
    """The chat page, the tutorial's page and their files carry CSP, nosniff, frame denial
    and no-referrer; Engine.IO responses do not."""
    async with running_chat() as chat, aiohttp.ClientSession() as session:
        for page in ("/", "/app.js", "/style.css", "/tutorial/", "/tutorial/views/index.js"):
            async with session.get(chat.url + page) as resp:
                assert resp.status == 200
                for name, value in SECURITY_HEADERS:
                    assert resp.headers.get(name) == value, (page, name)
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        async with session.get(chat.url + "/socket.io/?EIO=4&transport=polling") as resp:
            assert resp.status == 200
            assert "Content-Security-Policy" not in resp.headers


async def test_create_app_defaults_to_a_memory_store() -> None:
    """create_app() without arguments builds a multi-room chat on a memory store."""
    app = create_app()
    assert app.config == ChatConfig()
    await app.store.open()
    port = await app.start("127.0.0.1", 0)
    try:
        assert port == app.port and port > 0
        assert (await app.store.health())["backend"] == "memory"
    finally:
        await app.shutdown()
        await app.store.close()


async def test_shutdown_disconnects_clients() -> None:
    """shutdown() closes every connection; the store is left for the caller to close."""
    store = open_store("memory://")
    async with running_chat(store=store) as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "room1")
        await chat.app.shutdown()
        await _wait_until(lambda: not ana.sio.connected, timeout=5)
        assert (await store.health())["ok"] is True


async def test_presence_backend_is_the_one_given() -> None:
    """A ChatApp built with a presence backend keeps its members there."""
    presence = LocalPresence()
    store = open_store("memory://")
    await store.open()
    app = ChatApp(FAST, store, presence=presence)
    port = await app.start("127.0.0.1", 0)
    try:
        async with clients(f"http://127.0.0.1:{port}", "ana") as (ana,):
            await ana.call("channel_join", "room1")
            assert app.presence is presence and presence.members("room1") == ["ana"]
    finally:
        await app.shutdown()
        await store.close()
