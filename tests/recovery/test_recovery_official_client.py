"""Connection state recovery with the official Node client (socket.io-client >= 4.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from salas import Server
from tests.support.node import run_node

SCRIPT = Path(__file__).parent / "js" / "recovery.js"

# run_node skips without node and socket.io-client (fails under SALAS_REQUIRE_SERVICES=1).
pytestmark = pytest.mark.node


@pytest.fixture
async def port() -> AsyncIterator[int]:
    io = Server(connection_state_recovery=True, serve_client=False)

    @io.on("connection")
    def connection(socket: Any) -> None:
        @socket.on("join")
        async def join(room: str) -> str:
            await socket.join(room)
            return "ok"

        @socket.on("say")
        async def say(room: str, text: str) -> None:
            await io.to(room).emit("said", text)

        @socket.on("drop")
        def drop() -> None:
            socket.conn.close()

        @socket.on("whoami")
        def whoami() -> dict[str, Any]:
            return {"id": socket.id, "recovered": socket.recovered, "rooms": sorted(socket.rooms)}

    bound = await io.start("127.0.0.1", 0)
    yield bound
    await io.shutdown()


async def run_scenario(port: int, cut: str) -> dict[str, Any]:
    result: dict[str, Any] = await run_node(SCRIPT, f"http://127.0.0.1:{port}", cut, timeout=20)
    return result


@pytest.mark.parametrize("cut", ["server", "client"])
async def test_official_client_recovers_after_transport_cut(port: int, cut: str) -> None:
    """After a transport cut the client is recovered and gets every message once, in order."""
    result = await run_scenario(port, cut)
    assert result["reason"] == "transport close"
    assert result["recovered"] is True
    assert result["after"]["id"] == result["before"]["id"]
    assert result["after"]["recovered"] is True
    assert result["after"]["rooms"] == result["before"]["rooms"]
    assert result["received"] == [f"m{i}" for i in range(22)]
