"""Token auth, identity, private rooms and moderation with the official Node client."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.chat.chat_support import FAST, run_js, running_chat, token, verifier

pytestmark = [pytest.mark.node, pytest.mark.timeout(60)]


async def test_identity_private_rooms_and_moderation() -> None:
    """CONNECT_ERROR for missing/bad tokens; the token's identity in welcome; two sockets of
    one user are one member; private rooms forbidden; delete, kick, ban and unban."""
    config = dataclasses.replace(FAST, private_rooms=("staff-*",), message_burst=1000)
    tokens = {
        "ana": token("u-ana", "Ana"),
        "ana2": token("u-ana", "Ana"),
        "bob": token("u-bob", "Bob"),
        "mod": token("u-mod", "Mo", role="moderator"),
    }
    async with running_chat(config, auth=verifier()) as chat:
        r = await run_js("chat_auth.js", chat.url, json.dumps(tokens))
    assert "error" not in r, r
    assert r["no_token"] == {
        "message": "unauthorized",
        "data": {"code": "unauthorized", "reason": "missing token"},
    }
    assert r["bad_token"]["data"] == {"code": "unauthorized", "reason": "malformed"}
    assert r["welcome"] == {
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
    assert r["mod_welcome_role"] == "moderator"
    assert r["join_ana"]["users"] == [
        {"id": "u-ana", "name": "Ana"},
        {"id": "u-bob", "name": "Bob"},
    ]
    assert r["join_ana2"]["count"] == 2 and r["join_ana2"]["name"] == "Ana"
    assert r["nick"]["error"]["code"] == "forbidden"
    assert r["private_join"]["error"]["code"] == "forbidden"
    assert r["private_mod"]["ok"] is True and r["private_mod"]["private"] is True
    assert r["message_at_bob"]["user_id"] == "u-ana"
    assert r["delete_by_bob"]["error"]["code"] == "forbidden"
    assert r["delete_by_mod"]["ok"] is True
    assert r["deleted_at_bob"] == {"channel": "r", "id": r["message_at_bob"]["id"], "by": "Mo"}
    assert r["kick"] == {"ok": True}
    kicked = {"channel": "r", "by": "Mo", "banned": False, "until": None}
    assert r["kicked_ana"] == kicked and r["kicked_ana2"] == kicked
    assert r["presence_kicked"]["user_id"] == "u-ana" and r["presence_kicked"]["by"] == "Mo"
    assert r["presence_at_bob"] == [
        ["joined", "u-ana"],
        ["joined", "u-mod"],
        ["kicked", "u-ana"],
    ]
    assert r["ban"]["ok"] is True and r["kicked_bob"]["banned"] is True
    assert r["kicked_bob"]["until"] == r["ban"]["until"]
    assert r["rejoin_bob"]["error"]["code"] == "banned"
    assert r["unban"] == {"ok": True, "lifted": True}
    assert r["rejoin_after_unban"]["ok"] is True
