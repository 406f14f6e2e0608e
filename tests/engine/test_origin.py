"""Origin checks on websocket upgrades and polling requests (salas.engine.cors)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from salas.engine import CorsConfig


async def _ws_status(h, origin: str | None, **query: str) -> int:
    """The status a websocket handshake with this Origin gets (101 when it opens)."""
    headers = {"Origin": origin} if origin is not None else None
    try:
        ws = await connect(
            h.ws_url(**query), origin=None, additional_headers=headers, open_timeout=3
        )
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def test_cross_site_websocket_refused_by_default(engine) -> None:
    """Without a CORS setting, a websocket from another site's page gets 403 (cross-site
    websocket hijacking); the page's own origin and non-browser clients get in."""
    h = await engine()
    assert await _ws_status(h, "http://evil.test") == 403
    assert await _ws_status(h, f"http://127.0.0.1:{h.port}") == 101
    assert await _ws_status(h, f"https://127.0.0.1:{h.port}") == 101  # TLS at a proxy
    assert await _ws_status(h, None) == 101
    assert await _ws_status(h, f"http://127.0.0.1:{h.port + 1}") == 403
    assert await _ws_status(h, "null") == 403
    assert len(h.sessions) == 3  # one per accepted handshake, none for the refused


async def test_refusal_is_an_engine_error(engine) -> None:
    """The 403 has an Engine.IO error body, like the other refusals; no session opens."""
    h = await engine()
    response = await h.request("GET", h.path(), headers={"Origin": "http://evil.test"})
    assert response.status == 403
    assert response.headers["content-type"] == "application/json"
    assert orjson.loads(response.body) == {"code": 4, "message": "Origin not allowed"}
    assert h.sessions == {}


async def test_polling_requests_checked(engine) -> None:
    """Polling GET and POST from a disallowed origin are refused, even with a valid sid;
    the same session goes on for its own page."""
    h = await engine()
    sid, _ = await h.handshake()
    evil = {"Origin": "http://evil.test"}
    assert (await h.request("POST", h.path(sid=sid), b"4forged", headers=evil)).status == 403
    assert (await h.request("GET", h.path(sid=sid), headers=evil)).status == 403
    own = {"Origin": f"http://127.0.0.1:{h.port}"}
    assert (await h.request("POST", h.path(sid=sid), b"4mine", headers=own)).body == b"ok"
    assert h.messages[sid] == ["mine"]


async def test_upgrade_from_disallowed_origin_refused(engine) -> None:
    """A websocket upgrade of an existing session from another site is refused."""
    h = await engine()
    sid, _ = await h.handshake()
    assert await _ws_status(h, "http://evil.test", sid=sid) == 403
    assert h.sessions[sid].transport == "polling"


@pytest.mark.parametrize(
    ("origins", "origin", "status"),
    [
        ("*", "http://anything.test", 101),
        ("http://a.test,http://b.test", "http://b.test", 101),
        ("http://a.test,http://b.test", "http://c.test", 403),
        ("http://a.test", "https://a.test", 403),  # a list is exact, scheme included
    ],
)
async def test_cors_origins_decide(engine, origins: str, origin: str, status: int) -> None:
    """With cors_origins set, the allowed origins are exactly those ("*": any)."""
    h = await engine(cors=CorsConfig.parse(origins))
    assert await _ws_status(h, origin) == status


async def test_host_comparison(engine) -> None:
    """Same origin compares host and port with the Host header, case-insensitively, default
    ports implied."""
    h = await engine()

    async def status(origin: str, host: str) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
        writer.write(
            f"GET {h.path()} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        data = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        return int(data.split(b" ")[1])

    assert await status("http://Chat.Example", "chat.example") == 200
    assert await status("https://chat.example", "chat.example") == 200
    assert await status("https://chat.example", "chat.example:443") == 200
    assert await status("http://chat.example:8080", "chat.example:8080") == 200
    assert await status("http://[::1]:8080", "[::1]:8080") == 200
    assert await status("http://chat.example.evil", "chat.example") == 403
    assert await status("http://chat.example:8080", "chat.example") == 403


async def test_forwarded_host_from_trusted_proxy(engine) -> None:
    """Behind a trusted proxy that rewrites Host, X-Forwarded-Host is the page's host; from
    an untrusted peer it is ignored."""

    async def status(h) -> int:
        response = await h.request(
            "GET",
            h.path(),
            headers={"Origin": "https://chat.example", "X-Forwarded-Host": "chat.example"},
        )
        return response.status

    assert await status(await engine(forwarded_allow_ips=("127.0.0.1",))) == 200
    assert await status(await engine()) == 403


async def test_honest_page_exchanges_while_hijack_refused(engine) -> None:
    """While a cross-site page is refused, the page's own websocket exchanges messages."""
    h = await engine()
    ws = await connect(
        h.ws_url(), origin=None, additional_headers={"Origin": f"http://127.0.0.1:{h.port}"}
    )
    first = await asyncio.wait_for(ws.recv(), 3)
    sid = orjson.loads(first[1:])["sid"]
    assert await _ws_status(h, "http://evil.test") == 403
    await ws.send("4hello")
    while not h.messages[sid]:
        await asyncio.sleep(0.005)
    h.sessions[sid].send_message("hi")
    assert await asyncio.wait_for(ws.recv(), 3) == "4hi"
    await ws.close()
