"""The chat's other broadcasts: presence payloads, and background sends that log failures."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from salas.chat import ChatConfig, LocalPresence
from salas.chat.announce import Announcer
from salas.server import Server


def _announcer(presence_members_max: int) -> tuple[Announcer, LocalPresence]:
    presence = LocalPresence()
    config = dataclasses.replace(ChatConfig(), presence_members_max=presence_members_max)
    return Announcer(Server(serve_client=False), presence, config), presence


def test_presence_payload_lists_members_of_small_rooms() -> None:
    """Up to presence_members_max members, the payload lists them (names and users);
    `previous` for renames."""
    announce, presence = _announcer(2)
    presence.connect("s0", "bob")
    presence.connect("s1", "ana")
    presence.join("s0", "r")
    presence.join("s1", "r")
    assert announce.presence_payload("r", "renamed", "ana", "s1", previous="al") == {
        "channel": "r",
        "event": "renamed",
        "user": "ana",
        "user_id": "s1",
        "members": ["ana", "bob"],
        "users": [{"id": "s1", "name": "ana"}, {"id": "s0", "name": "bob"}],
        "count": 2,
        "previous": "al",
    }


def test_presence_payload_of_big_rooms_has_only_the_count() -> None:
    """Above presence_members_max members, the payload has the count and no list."""
    announce, presence = _announcer(1)
    for i, name in enumerate(("ana", "bob")):
        presence.connect(f"s{i}", name)
        presence.join(f"s{i}", "r")
    assert announce.presence_payload("r", "left", "cid", "u-cid") == {
        "channel": "r",
        "event": "left",
        "user": "cid",
        "user_id": "u-cid",
        "count": 2,
    }


def test_presence_payload_of_a_kick_says_by_whom() -> None:
    """A kicked/banned presence carries `by`, the moderator's name."""
    announce, presence = _announcer(5)
    presence.connect("s0", "mod", "u-mod")
    presence.join("s0", "r")
    payload = announce.presence_payload("r", "kicked", "bob", "u-bob", by="mod")
    assert payload["by"] == "mod" and payload["user_id"] == "u-bob"
    assert payload["users"] == [{"id": "u-mod", "name": "mod"}]


async def test_spawn_logs_what_a_background_send_raises(caplog: pytest.LogCaptureFixture) -> None:
    """A background send that fails is logged as an error, not lost."""
    announce, _ = _announcer(1)
    done = asyncio.Event()

    async def failing() -> None:
        done.set()
        raise RuntimeError("boom (test)")

    with caplog.at_level(logging.ERROR, logger="salas.chat"):
        announce.spawn(failing())
        await done.wait()
        for _ in range(3):
            await asyncio.sleep(0)
    assert any("error in a chat broadcast" in r.message for r in caplog.records)
