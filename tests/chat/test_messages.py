"""MessageService.post without a socket: storage, broadcast to the room, dedup by client_id,
the socket path's error codes, and the order of a room's and of a sender's messages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from salas.chat import ChatError, MessageService
from tests.chat.chat_support import ChatClient, GatedStore, clients, running_chat, sentinel

pytestmark = pytest.mark.timeout(30)


def _texts_since(client: ChatClient, mark: int) -> list[str]:
    """The texts of the messages `client` received since `mark`, sentinels left out."""
    return [
        str(data["message"])
        for name, data in client.since(mark)
        if name == "message" and not str(data["message"]).startswith("sentinel-")
    ]


async def test_post_stores_and_broadcasts_to_the_room_only() -> None:
    """A post is stored, then broadcast to the room's members (sockets elsewhere get nothing)."""
    async with (
        running_chat() as chat,
        clients(chat.url, "ana", "bob", "carol") as (ana, bob, carol),
    ):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        await carol.call("channel_join", "room2")
        mark = carol.mark()
        stored = await chat.app.messages.post("room1", "  hello  ", user="notice-bot")
        assert (stored.channel, stored.message, stored.user) == ("room1", "hello", "notice-bot")
        assert stored.client_id is None
        for member in (ana, bob):
            assert await member.next("message") == stored.to_wire()
        assert await chat.store.history("room1") == [stored]
        await sentinel(carol, "room2", carol)
        assert _texts_since(carol, mark) == []


async def test_post_and_socket_messages_share_one_room() -> None:
    """A socket's reply to a post lands after it in the room, with a larger id."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "room1")
        first = await chat.app.messages.post("room1", "from the service", user="bot")
        reply = await ana.call("message", "from a socket")
        assert reply["ok"] is True and reply["id"] > first.id
        await ana.next("message", lambda m: m["message"] == "from a socket")
        assert [m["id"] for m in ana.of("message")] == [first.id, reply["id"]]


async def test_duplicate_client_id_returns_the_first_and_broadcasts_once() -> None:
    """A second post with a client_id returns the message stored first, not broadcast again."""
    async with running_chat() as chat, clients(chat.url, "ana", "bob") as (ana, bob):
        await ana.call("channel_join", "room1")
        await bob.call("channel_join", "room1")
        first = await chat.app.messages.post("room1", "once", user="bot", client_id="c-1")
        again = await chat.app.messages.post("room1", "twice?", user="bot", client_id="c-1")
        assert again == first and again.message == "once"
        # The socket path dedupes against the same client_id too.
        retry = {"channel": "room1", "message": "thrice?", "client_id": "c-1"}
        reply = await ana.call("message", retry)
        assert reply["ok"] is True and reply["id"] == first.id
        await sentinel(ana, "room1", bob)
        assert [m["id"] for m in bob.of("message") if m.get("client_id") == "c-1"] == [first.id]
        assert [m.message for m in await chat.store.history("room1")][:1] == ["once"]
        assert len(await chat.store.history("room1")) == 2  # "once" and the sentinel


BAD_POSTS = [
    pytest.param("", "hi", None, "invalid_room", id="empty room"),
    pytest.param("r" * 65, "hi", None, "invalid_room", id="room too long"),
    pytest.param("bad\nroom", "hi", None, "invalid_room", id="control in room"),
    pytest.param(7, "hi", None, "invalid_room", id="room not a string"),
    pytest.param("room1", "   ", None, "invalid_message", id="blank text"),
    pytest.param("room1", "x" * 4001, None, "invalid_message", id="text too long"),
    pytest.param("room1", "nul\x00", None, "invalid_message", id="NUL in text"),
    pytest.param("room1", 12, None, "invalid_message", id="text not a string"),
    pytest.param("room1", "hi", "", "bad_request", id="empty client_id"),
    pytest.param("room1", "hi", "c" * 129, "bad_request", id="client_id too long"),
]


@pytest.mark.parametrize(("room", "text", "client_id", "code"), BAD_POSTS)
async def test_bad_input_gets_the_socket_paths_code(
    room: Any, text: Any, client_id: Any, code: str
) -> None:
    """Bad room, text or client_id: ChatError with the code a socket gets for it; nothing
    stored, nothing broadcast."""
    async with running_chat() as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "room1")
        mark = ana.mark()
        with pytest.raises(ChatError) as info:
            await chat.app.messages.post(room, text, user="bot", client_id=client_id)
        assert info.value.code == code
        payload: dict[str, Any] = {"channel": room, "message": text}
        if client_id is not None:
            payload["client_id"] = client_id
        reply = await ana.call("message", payload)
        assert reply["ok"] is False and reply["error"]["code"] == code
        assert await chat.store.history("room1") == []
        await sentinel(ana, "room1", ana)
        assert _texts_since(ana, mark) == []


async def test_post_without_a_user_name_is_invalid_name() -> None:
    """A post needs the name it is shown under: an empty one is invalid_name."""
    async with running_chat() as chat:
        with pytest.raises(ChatError) as info:
            await chat.app.messages.post("room1", "hi", user=" ")
        assert info.value.code == "invalid_name"
        assert await chat.store.history("room1") == []


async def test_store_failure_is_unavailable_and_not_broadcast() -> None:
    """When the store fails the post raises unavailable and the room gets nothing."""
    store = GatedStore()
    async with running_chat(store=store) as chat, clients(chat.url, "ana") as (ana,):
        await ana.call("channel_join", "room1")
        mark = ana.mark()
        store.fail = True
        with pytest.raises(ChatError) as info:
            await chat.app.messages.post("room1", "lost", user="bot")
        assert info.value.code == "unavailable"
        store.fail = False
        await sentinel(ana, "room1", ana)
        assert _texts_since(ana, mark) == []


async def test_concurrent_posts_are_broadcast_in_id_order() -> None:
    """Posts to one room whose writes finish in reverse order are still broadcast in the
    order of their ids, which is the order of the calls."""
    store = GatedStore()
    store.delays = [0.3, 0.2, 0.1, 0.0, 0.0]
    async with running_chat(store=store) as chat, clients(chat.url, "bob") as (bob,):
        await bob.call("channel_join", "room1")
        posts = [chat.app.messages.post("room1", f"m{i}", user="bot") for i in range(5)]
        stored = await asyncio.gather(*posts)
        assert [m.message for m in stored] == [f"m{i}" for i in range(5)]
        assert [m.id for m in stored] == sorted(m.id for m in stored)
        await bob.next("message", lambda m: m["message"] == "m4")
        await sentinel(bob, "room1", bob)
        received = [m["message"] for m in bob.of("message")]
        assert received[:5] == [f"m{i}" for i in range(5)]


async def test_rooms_do_not_wait_for_each_other() -> None:
    """A slow write in one room does not hold back another room's broadcast."""
    store = GatedStore()
    store.delays = [0.5, 0.0]
    async with running_chat(store=store) as chat, clients(chat.url, "bob") as (bob,):
        await bob.call("channel_join", "slow")
        await bob.call("channel_join", "fast")
        slow = asyncio.ensure_future(chat.app.messages.post("slow", "later", user="bot"))
        await asyncio.sleep(0)
        await chat.app.messages.post("fast", "sooner", user="bot")
        assert not slow.done()
        await slow
        await bob.next("message", lambda m: m["message"] == "later")
        assert [m["message"] for m in bob.of("message")] == ["sooner", "later"]


async def test_one_senders_posts_keep_their_order_across_rooms() -> None:
    """Posts from one sender to two rooms are broadcast in the order posted, even when the
    later one is stored first; the hook runs just before each broadcast."""
    store = GatedStore()
    store.delays = [0.3, 0.0]
    async with running_chat(store=store) as chat, clients(chat.url, "bob") as (bob,):
        await bob.call("channel_join", "a")
        await bob.call("channel_join", "b")
        calls: list[tuple[str, str]] = []

        def before_broadcast(room: str, sender: str) -> None:
            calls.append((room, sender))

        service = MessageService(chat.app.io, store, before_broadcast=before_broadcast)
        await asyncio.gather(
            service.post("a", "first", user="bot", sender="bot-1"),
            service.post("b", "second", user="bot", sender="bot-1"),
        )
        await bob.next("message", lambda m: m["message"] == "second")
        assert [m["message"] for m in bob.of("message")] == ["first", "second"]
        assert calls == [("a", "bot-1"), ("b", "bot-1")]


async def test_draining_refuses_posts() -> None:
    """Once drain has begun a post is unavailable and not stored."""
    async with running_chat() as chat:
        await chat.app.messages.drain(1.0)
        assert chat.app.closing
        with pytest.raises(ChatError) as info:
            await chat.app.messages.post("room1", "too late", user="bot")
        assert info.value.code == "unavailable"
        assert await chat.store.history("room1") == []
