"""Fixtures of the middleware tests: a real Server with jwt_auth on 127.0.0.1 (any port),
python-socketio clients, and a raw websocket client that reads CONNECT_ERROR as sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import socketio
from websockets.asyncio.client import connect

from salas import Server, Socket
from salas.auth import JwtAuth, jwt_auth
from tests.auth.auth_support import SECRET

HOST = "127.0.0.1"


class AuthServer:
    """A started Server guarded by `auth`; `sockets` are those its connection handler saw."""

    def __init__(self, io: Server, auth: JwtAuth, port: int) -> None:
        self.io = io
        self.auth = auth
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.sockets: list[Socket] = []


@pytest.fixture
async def auth_server() -> AsyncIterator[Callable[..., Awaitable[AuthServer]]]:
    """`await auth_server(**jwt_auth_options)`: a started Server with the middleware."""
    started: list[AuthServer] = []

    async def make(**options: Any) -> AuthServer:
        options.setdefault("secret", SECRET)
        io = Server(serve_client=False)
        auth = jwt_auth(**options)
        io.use(auth)
        port = await io.start(HOST, 0)
        server = AuthServer(io, auth, port)
        io.on("connection", server.sockets.append)
        started.append(server)
        return server

    yield make
    for server in started:
        await server.io.shutdown()


@pytest.fixture
async def sio_client() -> AsyncIterator[Callable[[], socketio.AsyncClient]]:
    """`sio_client()`: a python-socketio AsyncClient (no reconnection), disconnected afterwards."""
    clients: list[socketio.AsyncClient] = []

    def make() -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.disconnect()


async def raw_connect(
    port: int, auth: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> str:
    """Open a websocket, send CONNECT with `auth`; the server's answer as sent ("40{...}",
    "44{...}")."""
    async with connect(
        f"ws://{HOST}:{port}/socket.io/?EIO=4&transport=websocket",
        additional_headers=headers,
        open_timeout=5,
        close_timeout=1,
    ) as ws:
        opened = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(opened, str) and opened.startswith("0{"), opened
        await ws.send("40" + (orjson.dumps(auth).decode() if auth is not None else ""))
        while True:
            reply = await asyncio.wait_for(ws.recv(), 5)
            if reply != "2":  # a ping
                assert isinstance(reply, str)
                return reply


@pytest.fixture
def raw() -> Callable[..., Awaitable[str]]:
    """`await raw(port, auth=None, headers=None)`: the answer to a raw CONNECT."""
    return raw_connect
