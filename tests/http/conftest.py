"""Fixtures of the HTTP surface tests: a Router behind a real EngineServer on 127.0.0.1
(port 0), and one raw HTTP/1.1 request at a time.

Helpers are handed out as fixtures (test modules cannot import a conftest by name).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from salas.engine import EngineConfig, EngineServer
from salas.http import Router

HOST = "127.0.0.1"


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def http_request(
    port: int, method: str, target: str, body: bytes = b"", timeout: float = 5.0
) -> Response:
    """One request on a fresh connection; the body is read by its Content-Length (none
    for HEAD, so that a body sent anyway would show up as trailing bytes)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD":
            rest = await asyncio.wait_for(reader.read(), timeout)  # the server closes
        else:
            length = int(headers.get("content-length", "0"))
            rest = await asyncio.wait_for(reader.readexactly(length), timeout)
        return Response(int(status_line.split(" ", 2)[1]), headers, rest)
    finally:
        writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[int]]]:
    """`await serve(router, **engine_config)`: the router as a started engine's fallback;
    returns the port."""
    servers: list[EngineServer] = []

    async def start(router: Router, **config: Any) -> int:
        server = EngineServer(EngineConfig(**config), fallback=router)
        servers.append(server)
        return await server.listen(HOST, 0)

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def http() -> Callable[..., Awaitable[Response]]:
    """`await http(port, method, target, body)`: one raw HTTP/1.1 request."""
    return http_request


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A static folder, with a secret file next to it (outside it)."""
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "docs").mkdir()
    (static / "index.html").write_text("<h1>home</h1>")
    (static / "css" / "site.css").write_text("body{}")
    (static / "docs" / "index.html").write_text("docs home")
    (static / "data.bin").write_bytes(b"\x00\x01")
    (static / "hello world.txt").write_text("spaced")
    (tmp_path / "secret.txt").write_text("top secret")
    (static / "link.txt").symlink_to(tmp_path / "secret.txt")
    return static
