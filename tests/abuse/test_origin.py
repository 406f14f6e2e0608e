"""Cross-site websocket hijacking: a page on another site must not connect a visitor's
browser to the chat. Websocket upgrades and polling requests whose `Origin` is not allowed
get 403 (allowed: `--cors-origins`, or `*`; unset: the same origin as `Host`); requests
without an `Origin` (non-browser clients) are served."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import websockets

from tests.abuse.abuse_support import Polling, honest_chatting, http_session, serving, ws_connect

EVIL = "https://evil.example"
GOOD = "https://good.example"


async def _ws_status(port: int, origin: str | None) -> int:
    """101 if a websocket with this Origin opens (and answers), else the refusal's status."""
    try:
        ws = await ws_connect(port, origin=origin)
    except websockets.InvalidStatus as refused:
        return refused.response.status_code
    await ws.close()
    return 101


async def _polling_status(http: aiohttp.ClientSession, port: int, origin: str | None) -> int:
    """The status of a polling handshake with this Origin."""
    headers = {"Origin": origin} if origin is not None else {}
    url = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    async with http.get(url, headers=headers) as response:
        return response.status


@pytest.mark.parametrize(
    ("cors", "allowed", "refused"),
    [
        (None, ["same-origin", None], [EVIL, GOOD, "http://127.0.0.1:1"]),
        (GOOD, [GOOD, None], [EVIL, "https://good.example.evil.example"]),
        ("*", [EVIL, GOOD, None], []),
    ],
    ids=["unset", "list", "any"],
)
async def test_origin_is_checked_on_websocket_and_polling(
    tmp_path: Path, cors: str | None, allowed: list[str | None], refused: list[str]
) -> None:
    """Websocket upgrades and polling handshakes from an origin that is not allowed get 403;
    allowed origins and clients without an Origin connect."""
    flags = ("--cors-origins", cors) if cors is not None else ()
    async with serving(tmp_path, *flags) as server, http_session() as http:
        same = f"http://127.0.0.1:{server.port}"
        allowed = [same if o == "same-origin" else o for o in allowed]
        for origin in allowed:
            assert await _ws_status(server.port, origin) == 101, origin
            assert await _polling_status(http, server.port, origin) == 200, origin
        for origin in refused:
            assert await _ws_status(server.port, origin) == 403, origin
            assert await _polling_status(http, server.port, origin) == 403, origin


async def test_cross_site_requests_on_an_open_session_are_refused(tmp_path: Path) -> None:
    """A polling POST and GET carrying a foreign Origin on an existing session get 403, and
    the honest member is served meanwhile."""
    async with (
        serving(tmp_path) as server,
        honest_chatting(server.port),
        http_session() as http,
    ):
        polling = await Polling(http, server.port).open()
        headers = {"Origin": EVIL}
        async with http.post(polling.url, data='42["message","hi"]', headers=headers) as r:
            assert r.status == 403
        async with http.get(polling.url, headers=headers) as r:
            assert r.status == 403
