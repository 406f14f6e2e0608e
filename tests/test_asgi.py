"""salas.asgi under uvicorn beside a Starlette application (tests/apps/starlette_app.py): the
official Node client on each transport, Starlette's own paths, lifespan, and the hardening
(Origin, max_payload) holding for an honest client beside a hostile one."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
import websockets

from tests.integration.itest_support import JS_DIR
from tests.support.node import run_node
from tests.support.processes import ServerProcess, free_port

pytestmark = [pytest.mark.timeout(90), pytest.mark.node]

MODES = ("outer", "mounted")
GOOD_ORIGIN = "http://good.example"
SMALL_PAYLOAD = 10_000


class Uvicorn(ServerProcess):
    """tests/apps/starlette_app.py's application `mode` under uvicorn, with `env` for the
    salas test application (CORS_ORIGIN, MAX_PAYLOAD, ...)."""

    def __init__(self, mode: str, env: dict[str, str], log_path: Path) -> None:
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            f"tests.apps.starlette_app:{mode}",
            "--port",
            str(port),
            "--lifespan",
            "on",
            "--log-level",
            "warning",
        ]
        super().__init__(argv, port, log_path, ready_path="/hello")
        self.env.update(env)
        self.env["PYTHONUNBUFFERED"] = "1"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Uvicorn]]:
    """Started on first use, one per (mode, settings); stopped at the end of the module."""
    started: dict[tuple[str, str], Uvicorn] = {}
    yield started
    for server in started.values():
        server.stop()


def _server(
    servers: dict[tuple[str, str], Uvicorn],
    tmp_path_factory: pytest.TempPathFactory,
    mode: str,
    **env: str,
) -> Uvicorn:
    key = (mode, repr(sorted(env.items())))
    server = servers.get(key)
    if server is None:
        log = tmp_path_factory.mktemp("uvicorn") / f"{mode}.log"
        server = servers[key] = Uvicorn(mode, dict(env), log)
        server.start()
    return server


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("transport", ["polling", "websocket", "upgrade"])
async def test_official_client_through_starlette(
    servers: dict[tuple[str, str], Uvicorn],
    tmp_path_factory: pytest.TempPathFactory,
    mode: str,
    transport: str,
) -> None:
    """The official Node client connects on each transport (upgrading from polling) and
    exchanges events and acks, with salas around Starlette and mounted inside it."""
    server = await asyncio.to_thread(_server, servers, tmp_path_factory, mode)
    result = await run_node(JS_DIR / "transports.js", server.url.rstrip("/"), transport)
    assert "error" not in result, result
    assert result["final"] == ("polling" if transport == "polling" else "websocket")
    if transport == "upgrade":
        assert result["initial"] == "polling" and result["upgrades"] == ["websocket"]
    assert result["echo"] == ["a", 1, {"b": [True, None, 2.5]}, "ünï©ødé ✓"]
    assert result["event"] == ["x", {"y": 2}]
    assert result["handshake"]["query"] == {"foo": "bar"}
    assert result["burst_ok"] is True


async def test_other_paths_reach_starlette(
    servers: dict[tuple[str, str], Uvicorn], tmp_path_factory: pytest.TempPathFactory, mode: str
) -> None:
    """Starlette answers its routes and its 404; salas still serves the official client."""
    server = await asyncio.to_thread(_server, servers, tmp_path_factory, mode)
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "hello") as resp:
            assert resp.status == 200
            assert await resp.text() == "hello from starlette"
        async with http.get(server.url + "nowhere") as resp:
            assert resp.status == 404
            assert await resp.text() == "Not Found"
        async with http.get(server.url + "socket.io/socket.io.js") as resp:
            assert resp.status == 200
            assert "javascript" in resp.headers["Content-Type"]


async def test_lifespan_opens_and_shuts_down_io(
    tmp_path_factory: pytest.TempPathFactory, mode: str
) -> None:
    """Lifespan startup opens io before requests are served; shutdown (SIGTERM) runs the
    application's shutdown and io.shutdown, which disconnects the connected client."""
    log = tmp_path_factory.mktemp("lifespan") / "uvicorn.log"
    server = Uvicorn(mode, {"PING_INTERVAL_MS": "1000", "PING_TIMEOUT_MS": "2000"}, log)
    await server.astart()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url + "status") as resp:
            assert await resp.json() == {"io_open": True}
        client = socketio.AsyncClient(reconnection=False)
        gone = asyncio.Event()
        client.on("disconnect", lambda *args: gone.set())
        await client.connect(server.url, transports=["websocket"], wait_timeout=5)
    finally:
        status = await server.astop()
    # uvicorn ends a clean shutdown by raising the signal it caught again.
    assert status in (0, -signal.SIGTERM), server.log_tail()
    await asyncio.wait_for(gone.wait(), 5)
    assert "LIFESPAN app-startup" in server.log
    assert "LIFESPAN app-shutdown" in server.log


async def test_foreign_origin_refused(
    servers: dict[tuple[str, str], Uvicorn], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With one allowed origin, a handshake from another site is refused with 403 on both
    transports, and one from the allowed origin is served."""
    server = await asyncio.to_thread(
        _server, servers, tmp_path_factory, "outer", CORS_ORIGIN=GOOD_ORIGIN
    )
    polling = server.url + "socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(polling, headers={"Origin": "http://evil.example"}) as resp:
            assert resp.status == 403
            assert (await resp.json())["code"] == 4
        async with http.get(polling, headers={"Origin": GOOD_ORIGIN}) as resp:
            assert resp.status == 200
            assert (await resp.text()).startswith("0{")
    ws_url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(ws_url, origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with websockets.connect(ws_url, origin=GOOD_ORIGIN) as ws:  # type: ignore[arg-type]
        assert str(await ws.recv()).startswith("0{")


async def _honest_echo(url: str, text: str) -> Any:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, transports=["websocket"], wait_timeout=5)
    try:
        return await client.call("echo", text, timeout=5)
    finally:
        await client.disconnect()


async def test_oversized_message_refused_beside_an_honest_client(
    servers: dict[tuple[str, str], Uvicorn], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A websocket message over max_payload closes that connection with 1009 and a polling
    POST over it is answered 413, while an honest client's session goes on."""
    server = await asyncio.to_thread(
        _server, servers, tmp_path_factory, "outer", MAX_PAYLOAD=str(SMALL_PAYLOAD)
    )
    honest = socketio.AsyncClient(reconnection=False)
    await honest.connect(server.url, transports=["websocket"], wait_timeout=5)
    try:
        ws_url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        async with websockets.connect(ws_url, max_size=None) as hostile:
            assert str(await hostile.recv()).startswith("0{")
            await hostile.send("40")
            assert str(await hostile.recv()).startswith("40")
            await hostile.send('42["echo","' + "x" * (2 * SMALL_PAYLOAD) + '"]')
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(hostile.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        async with aiohttp.ClientSession() as http:
            base = server.url + "socket.io/?EIO=4&transport=polling"
            async with http.get(base) as resp:
                sid = (await resp.text()).split('"sid":"')[1].split('"')[0]
            async with http.post(f"{base}&sid={sid}", data="4" + "x" * (2 * SMALL_PAYLOAD)) as resp:
                assert resp.status == 413
        assert await honest.call("echo", "still here", timeout=5) == "still here"
        assert await _honest_echo(server.url, "newcomer") == "newcomer"
    finally:
        await honest.disconnect()
