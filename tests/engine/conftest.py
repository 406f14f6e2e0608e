"""Fixtures of the engine tests: a real EngineServer on 127.0.0.1 (port 0), raw HTTP and
raw websocket clients.

Helpers are handed out as fixtures (test modules cannot import a conftest by name).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from salas.engine import EngineConfig, EngineServer, EngineSession, HttpRequest

HOST = "127.0.0.1"


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def _parse_response(data: bytes) -> Response:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {data[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    length = headers.get("content-length")
    if length is not None:
        body = body[: int(length)]
    return Response(status, headers, body)


async def http_request(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Response:
    """One request on a fresh connection; the response is read by its Content-Length.

    (`Connection: close` is sent, but not relied upon: see test_http.py.)
    """
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return await asyncio.wait_for(read_response(reader, method == "HEAD"), timeout)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader, head_only: bool = False) -> Response:
    """Read one response: its head, then Content-Length bytes of body (none for HEAD)."""
    head = await reader.readuntil(b"\r\n\r\n")
    response = _parse_response(head)
    length = 0 if head_only else int(response.headers.get("content-length", "0"))
    response.body = await reader.readexactly(length) if length else b""
    return response


class EngineHarness:
    """An EngineServer that records its sessions, their messages and close reasons."""

    def __init__(self, config: EngineConfig, fallback: Callable[[HttpRequest], None] | None):
        self.config = config
        kwargs: dict[str, Any] = {} if fallback is None else {"fallback": fallback}
        self.server = EngineServer(config, self._on_connection, **kwargs)
        self.sessions: dict[str, EngineSession] = {}
        self.messages: dict[str, list[str | bytes]] = defaultdict(list)
        self.closed: dict[str, str] = {}
        self.port = 0

    def _on_connection(self, session: EngineSession) -> None:
        sid = session.sid
        self.sessions[sid] = session
        session.on_message = self.messages[sid].append
        session.on_close = lambda reason: self.closed.__setitem__(sid, reason)

    async def start(self) -> None:
        self.port = await self.server.listen(HOST, 0)

    def path(self, **query: str) -> str:
        params = {"EIO": "4", "transport": "polling", **query}
        return self.config.path + "?" + "&".join(f"{k}={v}" for k, v in params.items())

    async def request(self, method: str, target: str, body: bytes = b"", **kw: Any) -> Response:
        return await http_request(self.port, method, target, body, **kw)

    async def handshake(self) -> tuple[str, dict[str, Any]]:
        """Open a polling session; return its sid and the open packet's data."""
        response = await self.request("GET", self.path())
        assert response.status == 200, response
        assert response.body[:1] == b"0"
        data = orjson.loads(response.body[1:])
        return data["sid"], data

    async def poll(self, sid: str, timeout: float = 5.0) -> Response:
        return await self.request("GET", self.path(sid=sid), timeout=timeout)

    async def post(self, sid: str, body: bytes | str) -> Response:
        raw = body.encode() if isinstance(body, str) else body
        return await self.request("POST", self.path(sid=sid), raw)

    def ws_url(self, **query: str) -> str:
        params = {"EIO": "4", "transport": "websocket", **query}
        query_string = "&".join(f"{k}={v}" for k, v in params.items())
        return f"ws://{HOST}:{self.port}{self.config.path}?{query_string}"

    async def ws_connect(self, **query: str) -> ClientConnection:
        return await connect(
            self.ws_url(**query),
            compression=None,
            ping_interval=None,
            max_size=None,
            open_timeout=5,
            close_timeout=1,
        )

    async def ws_open(self) -> tuple[ClientConnection, str]:
        """A session opened directly over websocket; returns the client and the sid."""
        ws = await self.ws_connect()
        first = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(first, str) and first.startswith("0"), first
        return ws, orjson.loads(first[1:])["sid"]


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll `predicate` every few milliseconds; fail the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


class RawWebSocket:
    """A websocket client that does the handshake by hand and reads only when asked.

    Used as a slow consumer: a tiny receive buffer, and nothing read after the handshake.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, target: str, rcvbuf: int = 4096) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.transport.abort()


@pytest.fixture
async def engine() -> AsyncIterator[Callable[..., Awaitable[EngineHarness]]]:
    """`await engine(ping_interval=..., ...)`: a started EngineServer harness."""
    harnesses: list[EngineHarness] = []

    async def make(
        fallback: Callable[[HttpRequest], None] | None = None, **config: Any
    ) -> EngineHarness:
        harness = EngineHarness(EngineConfig(**config), fallback)
        await harness.start()
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        await harness.server.close()


@pytest.fixture
def http() -> Callable[..., Awaitable[Response]]:
    """`await http(port, method, target, body, headers)`: one raw HTTP/1.1 request."""
    return http_request


@pytest.fixture(name="read_response")
def read_response_fixture() -> Callable[..., Awaitable[Response]]:
    """`await read_response(reader, head_only=False)`: one response from a stream."""
    return read_response


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    """`await until(predicate, timeout)`: wait for a condition."""
    return wait_until


@pytest.fixture
def raw_ws() -> Callable[..., Awaitable[RawWebSocket]]:
    """`await raw_ws(port, target)`: a hand-made websocket client that never reads."""
    return RawWebSocket.open
