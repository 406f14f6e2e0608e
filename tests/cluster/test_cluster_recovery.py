"""Connection state recovery across nodes: two `salas serve` processes on one PostgreSQL
database and one Redis; the official Node client, behind a TCP relay (the load balancer),
loses its node to kill -9 and is recovered by the other one."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import socketio

from tests.recovery.test_recovery_restart import Member, chat_client
from tests.support.processes import SalasServe, salas_serve
from tests.support.relay import Relay

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow, pytest.mark.node, pytest.mark.cluster]


@contextlib.asynccontextmanager
async def fresh_schema(postgres_url: str) -> AsyncIterator[str]:
    """A store URL on a schema of its own, dropped afterwards."""
    schema = f"salas_test_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{postgres_url}?schema={schema}"
    finally:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def join_lobby(port: int, name: str) -> socketio.AsyncClient:
    """A python-socketio member in room lobby (left to die with its node)."""
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        f"http://127.0.0.1:{port}", auth={"name": name}, transports=["websocket"], wait_timeout=5
    )
    assert (await client.call("channel_join", "lobby", timeout=5))["ok"] is True
    return client


def node(tmp_path: Path, db: str, redis_url: str, prefix: str) -> SalasServe:
    """One `salas serve` of the cluster (not started)."""
    flags = ("--redis", redis_url, "--redis-prefix", prefix, "--message-rate", "0")
    return salas_serve(tmp_path, *flags, db=db)


async def test_a_client_whose_node_is_killed_recovers_on_another(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """kill -9 of the member's node mid-stream, the relay moved to the other node: the member
    reconnects by itself, is recovered (same id, its room) and has every acked message of
    the stream once, in order."""
    prefix = f"salas-test-{uuid.uuid4().hex[:8]}"
    member: Member | None = None
    relay: Relay | None = None
    clients: list[socketio.AsyncClient] = []
    async with fresh_schema(postgres_url) as db:
        a, b = node(tmp_path, db, redis_url, prefix), node(tmp_path, db, redis_url, prefix)
        try:
            await asyncio.gather(a.astart(), b.astart())  # at once, on an empty schema
            relay = await Relay(a.port).start()
            member = await Member.start(relay.url)
            first = await member.expect("connect")
            assert first["recovered"] is False
            member.send("join lobby")
            assert (await member.expect("joined"))["ok"] is True
            await asyncio.sleep(1.5)  # its session is written through meanwhile
            acked: list[str] = []

            async def post(client: socketio.AsyncClient, texts: list[str]) -> None:
                for text in texts:
                    message = {"channel": "lobby", "message": text}
                    reply = await client.call("message", message, timeout=5)
                    assert reply["ok"] is True, reply
                    acked.append(text)
                    await asyncio.sleep(0.01)

            async with chat_client(b.port, "ana") as ana:
                assert (await ana.call("channel_join", "lobby", timeout=5))["ok"] is True
                bo = await join_lobby(a.port, "bo")
                clients.append(bo)
                # Both nodes broadcast at once: offsets must be one order for both.
                await asyncio.gather(
                    post(ana, [f"a{i}" for i in range(20)]),
                    post(bo, [f"b{i}" for i in range(20)]),
                )
                assert a.proc is not None
                a.proc.kill()  # kill -9: nothing saved, nothing flushed
                a.proc.wait()
                a.proc = None
                relay.upstream = b.port  # the load balancer's next choice
                await post(ana, [f"a{i}" for i in range(20, 60)])
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 15
                while loop.time() < deadline:
                    got = [e["message"] for e in member.events if e["type"] == "message"]
                    if len(got) >= len(acked):
                        break
                    await asyncio.sleep(0.1)
                member.unread()
                kinds = [e["type"] for e in member.events if e["type"] != "message"]
                assert kinds == ["connect", "joined", "disconnect", "connect"], member.events
                again = [e for e in member.events if e["type"] == "connect"][1]
                assert again["recovered"] is True, member.events
                assert again["id"] == first["id"]
                got = [e["message"] for e in member.events if e["type"] == "message"]
                assert sorted(got) == sorted(acked), member.events  # each once
                for poster in "ab":  # and each poster's in the order posted
                    mine = [t for t in got if t.startswith(poster)]
                    assert mine == [t for t in acked if t.startswith(poster)], member.events
                offsets = [int(e["offset"]) for e in member.events if e["type"] == "message"]
                assert offsets == sorted(set(offsets))
                # Still in its room, on node B: a message after the recovery reaches it.
                reply = await ana.call(
                    "message", {"channel": "lobby", "message": "after"}, timeout=5
                )
                assert reply["ok"] is True
                event = await member.expect("message", timeout=10)
                assert event["message"] == "after"
        finally:
            if member is not None:
                await member.stop()
            for client in clients:
                await client.disconnect()
            if relay is not None:
                await relay.close()
            for server in (a, b):
                if server.proc is not None:
                    await server.astop()
