"""The chat with connection state recovery: a recovered socket gets its name, rooms and
current room back (also from a server started after the one it dropped from), a retried
message is stored and broadcast once, and a shutdown broadcasts what it is storing.

Clients are raw websocket clients (`RawClient`) presenting `{pid, offset}` as the official
client does; the recovery store is SQLite, so `socket.data` goes through JSON as in
`salas serve`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from salas.chat import create_app
from salas.recovery import open_recovery_store
from salas.store import open_store
from tests.chat.chat_support import FAST, GatedStore, RawClient, RunningChat, running_chat

pytestmark = pytest.mark.timeout(30)


@asynccontextmanager
async def chat_on(tmp_path: Path, store: Any = None) -> AsyncIterator[RunningChat]:
    """The chat with its messages (unless `store`) and its recovery state in one SQLite file."""
    url = f"sqlite://{tmp_path / 'chat.db'}"
    async with running_chat(
        FAST, store if store is not None else open_store(url), open_recovery_store(url)
    ) as chat:
        yield chat


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def gone(chat: RunningChat, client: RawClient) -> None:
    """Drop `client`'s transport and wait until the chat has seen it go."""
    await client.drop()
    await until(lambda: not chat.app.presence.is_connected(client.sid))


async def test_recovered_socket_is_back_in_its_rooms_under_its_name(tmp_path: Path) -> None:
    """A recovered socket is told so in `welcome`, is a member again (others see `joined`),
    and sends at once, without joining, also a plain string to its current room."""
    async with chat_on(tmp_path) as chat:
        ana = await RawClient.connect(chat.port, {"name": "ana"})
        bob = await RawClient.connect(chat.port, {"name": "bob"})
        for room in ("room1", "room2"):
            assert (await bob.call("channel_join", room))["ok"] is True
        assert (await ana.call("channel_join", "room2"))["ok"] is True
        assert (await ana.call("channel_join", "room1"))["ok"] is True  # current: room1
        await gone(chat, ana)
        left = await bob.next("presence", lambda p: p["event"] == "left")
        assert left["user"] == "ana"
        mark = len(bob.events)
        missed = await bob.call("message", {"channel": "room2", "message": "while away"})

        again = await ana.reconnect()
        assert again.sid == ana.sid
        welcome = again.of("welcome")[0]
        assert welcome["recovered"] is True and welcome["name"] == "ana"
        assert welcome["channels"] == [
            {"channel": "room2", "name": "ana"},
            {"channel": "room1", "name": "ana"},
        ]
        assert [m["id"] for m in again.of("message")] == [missed["id"]]  # replayed
        for room in ("room1", "room2"):
            joined = await bob.next(
                "presence", lambda p, r=room: p["event"] == "joined" and p["channel"] == r, mark
            )
            assert joined["user"] == "ana" and joined["members"] == ["ana", "bob"]
        plain = await again.call("message", "back")
        assert plain["ok"] is True and plain["channel"] == "room1"
        assert (await bob.next("message", lambda m: m["message"] == "back"))["user"] == "ana"
        carol = await RawClient.connect(chat.port, {"name": "carol"})
        assert (await carol.call("channel_join", "room2"))["members"] == ["ana", "bob", "carol"]
        assert (await again.call("typing", "room2"))["ok"] is True
        for client in (again, bob, carol):
            await client.close()


async def test_recovered_socket_shows_another_name_where_its_was_taken(tmp_path: Path) -> None:
    """If a newcomer took its name in a room meanwhile, the recovered socket shows `name#2`
    there, and `welcome.channels` says so; where it showed `name#2` it keeps it."""
    async with chat_on(tmp_path) as chat:
        first = await RawClient.connect(chat.port, {"name": "Ana"})
        await first.call("channel_join", "room3")
        ana = await RawClient.connect(chat.port, {"name": "ana"})
        for room in ("room1", "room2", "room3"):
            await ana.call("channel_join", room)
        await gone(chat, ana)
        await first.close()  # "Ana" leaves room3: "ana" is free there now
        other = await RawClient.connect(chat.port, {"name": "ANA"})
        await other.call("channel_join", "room1")
        again = await ana.reconnect()
        assert again.of("welcome")[0]["channels"] == [
            {"channel": "room1", "name": "ana#2"},
            {"channel": "room2", "name": "ana"},
            {"channel": "room3", "name": "ana#2"},
        ]
        joined = await other.next("presence", lambda p: p["user"] != "ANA")
        assert (joined["event"], joined["user"]) == ("joined", "ana#2")
        assert joined["members"] == ["ANA", "ana#2"]
        await again.call("message", {"channel": "room1", "message": "hi"})
        assert (await other.next("message"))["user"] == "ana#2"
        await again.close()
        await other.close()


async def test_recovered_socket_after_a_restart(tmp_path: Path) -> None:
    """A session saved by a chat that shut down is recovered by the next one on the same
    database, whose bookkeeping starts empty: the socket is in its room, listed, and sends."""
    async with chat_on(tmp_path) as chat:
        ana = await RawClient.connect(chat.port, {"name": "ana"})
        await ana.call("channel_join", "room1")
        await ana.call("nick", "anita")
    # (The chat shut down: ana's transport was closed and her session saved.)
    await ana.drop()
    async with chat_on(tmp_path) as chat:
        assert chat.app.presence.connections == 0
        again = await RawClient.connect(chat.port, {"pid": ana.pid, "offset": ana.offset or "0"})
        assert again.sid == ana.sid
        welcome = again.of("welcome")[0]
        assert welcome["recovered"] is True and welcome["name"] == "anita"
        assert welcome["channels"] == [{"channel": "room1", "name": "anita"}]
        assert welcome["rooms"] == [{"name": "room1", "count": 1, "private": False}]
        sent = await again.call("message", "after the restart")
        assert sent["ok"] is True and sent["channel"] == "room1"
        assert (await again.next("message"))["user"] == "anita"
        await again.close()


async def test_recovered_socket_without_chat_state_starts_afresh(tmp_path: Path) -> None:
    """A recovered socket whose saved state is not the chat's (here: none) gets a fresh name
    and no rooms (its server rooms are left), and `welcome` says it was recovered."""
    async with chat_on(tmp_path) as chat:
        ana = await RawClient.connect(chat.port, {"name": "ana"})
        await ana.call("channel_join", "room1")
        chat.app.io.sockets.sockets[ana.sid].data.clear()
        await gone(chat, ana)
        bob = await RawClient.connect(chat.port, {"name": "bob"})
        await bob.call("channel_join", "room1")
        again = await ana.reconnect({"name": "ana2"})
        welcome = again.of("welcome")[0]
        assert welcome["recovered"] is True and welcome["name"] == "ana2"
        assert welcome["channels"] == []
        assert (await again.call("message", "x"))["error"]["code"] == "not_in_room"
        mark = len(again.events)
        await bob.call("message", {"channel": "room1", "message": "not for ana any more"})
        await bob.next("message")
        await again.call("nick", "ana3")  # a round trip: anything sent to her is here by now
        assert [e for e in again.events[mark:] if e[0] == "message"] == []
        await again.close()
        await bob.close()


async def test_retry_is_stored_and_broadcast_once() -> None:
    """A retried message (same client_id) is acked with the stored id and not broadcast
    again, whether the first try was answered or not."""
    async with running_chat() as chat:
        ana = await RawClient.connect(chat.port, {"name": "ana"})
        bob = await RawClient.connect(chat.port, {"name": "bob"})
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        payload = {"channel": "room1", "message": "once", "client_id": "c-1"}
        first, second = await asyncio.gather(
            ana.call("message", payload), ana.call("message", payload)
        )
        third = await ana.call("message", payload)
        assert first["id"] == second["id"] == third["id"]
        await ana.call("message", {"channel": "room1", "message": "after", "client_id": "c-2"})
        await bob.next("message", lambda m: m["message"] == "after")
        assert [m["message"] for m in bob.of("message")] == ["once", "after"]
        assert [m.message for m in await chat.store.history("room1")] == ["once", "after"]
        await ana.close()
        await bob.close()


async def test_retry_of_a_message_stored_before_a_restart_is_acked_not_broadcast(
    tmp_path: Path,
) -> None:
    """After a restart, a retry of a message the previous run stored (and broadcast) gets
    its id in the ack and reaches no one a second time."""
    payload = {"channel": "room1", "message": "sent before", "client_id": "c-9"}
    async with chat_on(tmp_path) as chat:
        ana = await RawClient.connect(chat.port, {"name": "ana"})
        await ana.call("channel_join", "room1")
        first = await ana.call("message", payload)
    async with chat_on(tmp_path) as chat:
        again = await RawClient.connect(chat.port, {"name": "ana"})
        bob = await RawClient.connect(chat.port, {"name": "bob"})
        for client in (again, bob):
            await client.call("channel_join", "room1")
        retry = await again.call("message", payload)
        assert (retry["id"], retry["ts"]) == (first["id"], first["ts"])
        await again.call("message", {"channel": "room1", "message": "new", "client_id": "c-10"})
        await bob.next("message", lambda m: m["message"] == "new")
        assert [m["message"] for m in bob.of("message")] == ["new"]
        await again.close()
        await bob.close()


async def test_room_messages_are_broadcast_in_id_order() -> None:
    """Two senders' messages reach the room in the order of their ids, even when the store
    confirms the earlier one last."""
    store = GatedStore()
    store.delays = [0.3, 0.0]  # the first append is held back after it is stored
    async with running_chat(store=store) as chat:
        ana = await RawClient.connect(chat.port, {"name": "ana"})
        bob = await RawClient.connect(chat.port, {"name": "bob"})
        carol = await RawClient.connect(chat.port, {"name": "carol"})
        for client in (ana, bob, carol):
            await client.call("channel_join", "room1")
        first = asyncio.ensure_future(ana.call("message", "first"))
        await until(lambda: len(store.delays) == 1)  # ana's append has started
        second = await bob.call("message", "second")
        assert (await first)["id"] < second["id"]
        await carol.next("message", lambda m: m["message"] == "second")
        assert [m["message"] for m in carol.of("message")] == ["first", "second"]
        for client in (ana, bob, carol):
            await client.close()


async def test_shutdown_broadcasts_what_it_is_storing_and_leaves_new_messages_unanswered() -> None:
    """A message being stored when the chat shuts down is broadcast before connections close;
    one arriving during the shutdown is neither stored nor answered (the client retries)."""
    store = GatedStore()
    await store.open()
    app = create_app(FAST, store)
    port = await app.start("127.0.0.1", 0)
    try:
        ana = await RawClient.connect(port, {"name": "ana"})
        bob = await RawClient.connect(port, {"name": "bob"})
        for client in (ana, bob):
            await client.call("channel_join", "room1")
        store.gate.clear()
        storing = asyncio.ensure_future(ana.call("message", "being stored"))
        await until(lambda: store.waiting == 1)
        stopping = asyncio.ensure_future(app.shutdown())
        await until(lambda: app.closing)
        late = asyncio.ensure_future(ana.call("message", "too late"))
        await asyncio.sleep(0.1)
        assert not stopping.done()  # it waits for the message being stored
        store.gate.set()
        assert (await storing)["ok"] is True
        await stopping
        await bob.drop()
        assert [m["message"] for m in bob.of("message")] == ["being stored"]
        with pytest.raises(ConnectionError):
            await late
        assert [m.message for m in await store.history("room1")] == ["being stored"]
    finally:
        await app.shutdown()
        await store.close()
