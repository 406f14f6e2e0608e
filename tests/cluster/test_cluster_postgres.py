"""A cluster node while PostgreSQL goes away (a restart of the database: its connections
dropped, then none accepted for a while): posts fail with ``unavailable`` meanwhile, nothing
crashes, and service resumes by itself. The database is shared with other tests, so the
node reaches it through a TCP relay, and only that node's connections are ended."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import socketio

from tests.cluster.test_cluster_recovery import fresh_schema, join_lobby, node
from tests.support.relay import Relay

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow, pytest.mark.cluster]


async def terminate_backends(postgres_url: str, application_name: str) -> int:
    """End every PostgreSQL connection of ``application_name`` (only this test's node's)."""
    conn = await asyncpg.connect(postgres_url)
    try:
        ended: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND pid <> pg_backend_pid()",
            application_name,
        )
    finally:
        await conn.close()
    return ended


async def test_posts_fail_unavailable_while_postgres_is_away_then_resume(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """The node's database connections are terminated, then the database is unreachable for
    two seconds: every post is either stored and delivered or refused with ``unavailable``
    (some are, during the outage), the node stays up, and posts succeed again after."""
    name = f"salas_test_{secrets.token_hex(4)}"
    prefix = f"salas-test-{uuid.uuid4().hex[:8]}"
    clients: list[socketio.AsyncClient] = []
    async with fresh_schema(postgres_url) as db:
        database = urlsplit(postgres_url)
        relay = await Relay(database.port or 5432).start()
        via_relay = db.replace(database.netloc, f"{database.username}@127.0.0.1:{relay.port}")
        server = node(tmp_path, f"{via_relay}&application_name={name}", redis_url, prefix)
        try:
            await server.astart()
            poster, reader = (
                await join_lobby(server.port, "ana"),
                await join_lobby(server.port, "bo"),
            )
            clients += [poster, reader]
            got: list[str] = []
            reader.on("message", lambda m: got.append(m["message"]))
            acked: list[str] = []
            codes: set[str] = set()

            async def post(text: str) -> bool:
                message = {"channel": "lobby", "message": text}
                reply = await poster.call("message", message, timeout=10)
                if reply["ok"]:
                    acked.append(text)
                    return True
                codes.add(reply["error"]["code"])
                return False

            async def post_until_stored(stem: str) -> None:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 15
                i = 0
                while not await post(f"{stem}-{i}"):
                    assert loop.time() < deadline, f"no post stored again; refusals {codes}"
                    i += 1
                    await asyncio.sleep(0.2)

            assert await post("before")
            # Connections ended under the node's feet: it reconnects by itself.
            assert await terminate_backends(postgres_url, name) > 0
            await post_until_stored("r0")
            # The database unreachable for a while: posts are refused meanwhile.
            relay.open = False
            relay.cut_all()
            for i in range(5):
                assert not await post(f"away{i}")  # refused (with which code: checked below)
            await asyncio.sleep(2)
            relay.open = True
            await post_until_stored("r1")
            assert codes == {"unavailable"}, codes
            assert await post("after")
            assert server.proc is not None and server.proc.poll() is None, server.log_tail()
            for _ in range(100):
                if len(got) >= len(acked):
                    break
                await asyncio.sleep(0.05)
            assert got == acked
        finally:
            for client in clients:
                await client.disconnect()
            await server.astop()
            await relay.close()
