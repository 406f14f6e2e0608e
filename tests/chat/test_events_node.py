"""The chat with the official Node.js socket.io-client: the tutorial's own client code, and
every event with acks and bad inputs (scenario scripts in tests/chat/js)."""

from __future__ import annotations

import dataclasses

import pytest

from tests.chat.chat_support import FAST, run_js, running_chat

pytestmark = [pytest.mark.node, pytest.mark.timeout(60)]


def _real(messages: list[str]) -> list[str]:
    return [m for m in messages if not m.startswith("sentinel-")]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_tutorial_client_multi_room(transport: str) -> None:
    """The tutorial's emits (no acks) work: a string message reaches room1 only, as
    {channel, message} (plus user)."""
    async with running_chat() as chat:
        result = await run_js("chat_tutorial.js", chat.url, transport)
    assert "error" not in result, result
    assert result["transport"] == transport
    assert result["b_got"] == {"channel": "room1", "message": "hola sala 1", "user_is_string": True}
    assert _real(result["b_messages"]) == ["hola sala 1"]
    assert _real(result["c_messages"]) == []


async def test_tutorial_client_single_room() -> None:
    """--single-room, the tutorial's last step: joining room2 leaves room1, so the next string
    message reaches room2 and not room1 (which is told the sender left)."""
    config = dataclasses.replace(FAST, single_room=True)
    async with running_chat(config) as chat:
        result = await run_js("chat_tutorial.js", chat.url, "websocket", "single")
    assert "error" not in result, result
    assert result["c_got"] == {"channel": "room2", "message": "hola sala 2"}
    assert result["b_saw_left"] is True
    assert _real(result["b_messages"]) == ["hola sala 1"]
    assert _real(result["c_messages"]) == ["hola sala 2"]


async def test_every_event_and_bad_input() -> None:
    """Each event answers as documented through the Node client; each bad input gets its exact
    code in the ack and in `error`, reaches no one else, and leaves the connection working."""
    # Dozens of messages (one sentinel per bad input) in a second: above the default burst.
    config = dataclasses.replace(FAST, message_burst=1000)
    async with running_chat(config) as chat:
        r = await run_js("chat_protocol.js", chat.url)
    assert "error" not in r, r
    assert r["welcome"] == {
        "event": "welcome",
        "data": {
            "name": "ana",
            "single_room": False,
            "rooms": [],
            "recovered": False,
            "channels": [],
        },
    }
    assert r["join"] == {
        "ok": True,
        "channel": "room1",
        "name": "ana",
        "messages": [],
        "members": ["ana"],
        "count": 1,
    }
    assert r["join_bob"]["members"] == ["ana", "bob"]
    assert r["presence_at_ana"]["event"] == "joined" and r["presence_at_ana"]["count"] == 2
    ack = r["message_ack"]
    assert ack["ok"] is True and ack["client_id"] == "n-1"
    assert r["message_at_bob"] == {
        "id": ack["id"],
        "ts": ack["ts"],
        "channel": "room1",
        "message": "hello",
        "user": "ana",
        "client_id": "n-1",
    }
    assert r["retry_ack"] == ack
    assert r["plain_ack"]["channel"] == "room1" and r["plain_ack"]["id"] > ack["id"]
    assert r["typing_ack"] == {"ok": True}
    assert r["typing_at_bob"] == {"channel": "room1", "user": "ana", "typing": True}
    assert r["typing_stop_at_bob"] == {"channel": "room1", "user": "ana", "typing": False}
    assert [m["message"] for m in r["history"]["messages"]] == ["hello", "plain string"]
    assert [m["message"] for m in r["history_before"]["messages"]] == ["hello"]
    assert [m["message"] for m in r["history_after"]["messages"]] == ["plain string"]
    assert r["nick"] == {"ok": True, "name": "roberto"}
    assert r["renamed_at_ana"]["user"] == "roberto" and r["renamed_at_ana"]["previous"] == "bob"
    assert r["nick_taken"]["error"]["code"] == "name_taken"
    assert len(r["bad"]) == 26
    for case in r["bad"]:
        assert case["ack_code"] == case["expected"], case
        assert case["event_code"] == case["expected"], case
        assert case["event_event"] == case["event"], case
        assert case["bystander_clean"] is True, case
        assert case["still_connected"] is True, case
    assert r["leave"] == {"ok": True, "channel": "room1"}
    assert r["left_at_ana"]["user"] == "roberto" and r["left_at_ana"]["members"] == ["ana"]
    assert r["rooms_at_ana"] == {"rooms": [{"name": "room1", "count": 1}]}
