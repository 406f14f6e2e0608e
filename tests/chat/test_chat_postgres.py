"""The chat end to end on PostgreSQL: `salas serve --db postgresql://...` as a process, real
clients joining, posting and reading history, and a member recovered across a restart from
the state the first process saved there. Each test has its own schema, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.chat.chat_support import ChatClient, RawClient
from tests.support.processes import free_port, salas_serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[str]:
    """A `--db` URL on a schema of this test's own, dropped afterwards."""
    schema = f"salas_test_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_url}?schema={schema}"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def test_chat_on_postgres_join_post_history_and_recovery_across_restart(
    tmp_path: Path, db: str
) -> None:
    """Join, post and read history on PostgreSQL; SIGTERM and restart `salas serve`: the
    history is still there, and a member that presents its session is recovered (same id,
    still in its room) with what it missed, once each, in order."""
    port = free_port()
    server = await salas_serve(tmp_path, db=db, port=port).astart()
    url = f"http://127.0.0.1:{port}"
    try:
        ana = await ChatClient().connect(url, "ana")
        bob = await RawClient.connect(port, {"name": "bob"})
        assert bob.of("welcome")[0]["recovered"] is False
        assert (await ana.call("channel_join", "lobby"))["ok"] is True
        assert (await bob.call("channel_join", "lobby"))["ok"] is True
        sent = await ana.call("message", {"channel": "lobby", "message": "m1"})
        assert sent["ok"] is True, sent
        got = await bob.next("message", lambda m: m["message"] == "m1")
        assert got["id"] == sent["id"] and got["user"] == "ana"
        history = await ana.call("history", {"channel": "lobby"})
        assert [(m["id"], m["message"]) for m in history["messages"]] == [(sent["id"], "m1")]
        await ana.close()

        assert await server.astop() == 0, server.log
        await bob.drop()  # the server is gone; bob keeps its pid and last offset
        await server.astart()

        ana = await ChatClient().connect(url, "ana")
        joined = await ana.call("channel_join", "lobby")
        assert [m["message"] for m in joined["messages"]] == ["m1"]  # stored on PostgreSQL
        for text in ("m2", "m3"):
            assert (await ana.call("message", {"channel": "lobby", "message": text}))["ok"]

        back = await bob.reconnect({"name": "bob"})
        welcome = back.of("welcome")[0]
        assert welcome["recovered"] is True, server.log
        assert back.sid == bob.sid
        missed = [
            await back.next("message", lambda m, t=t: m["message"] == t) for t in ("m2", "m3")
        ]
        assert [m["message"] for m in back.of("message")] == ["m2", "m3"]
        assert missed[0]["id"] < missed[1]["id"]
        # Still in the room without joining again.
        assert (await ana.call("message", {"channel": "lobby", "message": "m4"}))["ok"]
        await back.next("message", lambda m: m["message"] == "m4")
        assert [m["message"] for m in back.of("message")] == ["m2", "m3", "m4"]
        await back.close()
        await ana.close()
    finally:
        await server.astop()
