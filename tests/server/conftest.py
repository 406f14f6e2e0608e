"""Fixtures of the public API tests: a real Server on 127.0.0.1 (port 0) and a raw
Socket.IO client over websocket, whose frames the tests read as the wire strings.

Helpers are handed out as fixtures (test modules cannot import a conftest by name).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from salas import Server

HOST = "127.0.0.1"


class RawClient:
    """A Socket.IO client speaking the wire format by hand (websocket transport).

    `recv()` returns the next Engine.IO packet after answering pings, so tests see
    exactly what the server sent ("40{...}", '42["ev",1]', "41", bytes, ...).
    """

    def __init__(self, ws: ClientConnection, open_data: dict[str, Any]) -> None:
        self.ws = ws
        self.open = open_data
        self.sid = open_data["sid"]  # the Engine.IO session id

    @classmethod
    async def open_ws(cls, port: int, path: str = "/socket.io/") -> RawClient:
        ws = await connect(
            f"ws://{HOST}:{port}{path}?EIO=4&transport=websocket",
            compression=None,
            ping_interval=None,
            max_size=None,
            open_timeout=5,
            close_timeout=1,
        )
        first = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(first, str) and first.startswith("0"), first
        return cls(ws, orjson.loads(first[1:]))

    async def send(self, packet: str | bytes) -> None:
        """Send one Socket.IO packet (text gets the Engine.IO "4" in front)."""
        await self.ws.send("4" + packet if isinstance(packet, str) else packet)

    async def recv(self, timeout: float = 3.0, answer_pings: bool = True) -> str | bytes:
        """The next packet from the server, Engine.IO type included (pings answered)."""
        while True:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
            if message == "2" and answer_pings:
                await self.ws.send("3")
                continue
            return message

    async def connect_nsp(self, nsp: str = "/", auth: dict[str, Any] | None = None) -> str:
        """Join a namespace; return the socket id the server gave."""
        prefix = "" if nsp == "/" else nsp + ","
        await self.send("0" + prefix + (orjson.dumps(auth).decode() if auth else ""))
        reply = await self.recv()
        assert isinstance(reply, str)
        assert reply.startswith("40" + prefix + "{"), reply
        return str(orjson.loads(reply[2 + len(prefix) :])["sid"])

    async def event(self, timeout: float = 3.0) -> list[Any]:
        """The next EVENT packet's data (main namespace, no id)."""
        message = await self.recv(timeout)
        assert isinstance(message, str) and message.startswith("42"), message
        return list(orjson.loads(message[2:]))

    async def nothing(self, wait: float = 0.1) -> None:
        """Assert that no packet arrives within `wait` seconds."""
        try:
            message = await self.recv(timeout=wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected packet {message!r}")

    async def closed(self, timeout: float = 3.0) -> None:
        """Wait for the server to close the websocket (packets before the close are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - loop.time()))
            except ConnectionClosed:
                return

    async def close(self) -> None:
        await self.ws.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll `predicate` every few milliseconds; fail the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Server]]:
    """`make_server(**options)`: a Server (not serving the npm client), shut down afterwards."""
    servers: list[Server] = []

    def make(**options: Any) -> Server:
        options.setdefault("serve_client", False)
        io = Server(**options)
        servers.append(io)
        return io

    yield make
    for io in servers:
        if io.port is not None:
            await io.shutdown()


@pytest.fixture
def start() -> Callable[[Server], Awaitable[int]]:
    """`await start(io)`: listen on 127.0.0.1, any free port; returns it."""

    async def run(io: Server) -> int:
        return await io.start(HOST, 0)

    return run


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., Awaitable[RawClient]]]:
    """`await client(port, nsp="/", auth=None, join=True)`: a raw client, closed afterwards."""
    opened: list[RawClient] = []

    async def make(
        port: int, nsp: str | None = "/", auth: dict[str, Any] | None = None
    ) -> RawClient:
        raw = await RawClient.open_ws(port)
        opened.append(raw)
        if nsp is not None:
            raw.socket_id = await raw.connect_nsp(nsp, auth)  # type: ignore[attr-defined]
        return raw

    yield make
    for raw in opened:
        await raw.close()


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    """`await until(predicate, timeout)`: wait for a condition."""
    return wait_until
