"""Hostile input: deeply nested JSON closes only the connection that sent it; NUL bytes and
over-long names in static paths answer 404; control characters in paths and namespaces
cannot forge a line of the server's log. None of it leaves a traceback in the log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.abuse.abuse_support import (
    Polling,
    assert_clean_log,
    healthz,
    honest_chatting,
    http_request,
    http_session,
    serving,
    ws_closed_within,
    ws_connect,
)

DEPTH = 1_100
DEEP = {
    "event-arrays": '42["message",' + "[" * DEPTH + "]" * DEPTH + "]",
    "event-objects": '42["message",' + '{"a":' * DEPTH + "1" + "}" * DEPTH + "]",
    "connect-auth": "40" + '{"a":' * DEPTH + "1" + "}" * DEPTH,
}


@pytest.mark.parametrize("packet", list(DEEP.values()), ids=list(DEEP))
async def test_deep_json_over_websocket_closes_only_that_connection(
    tmp_path: Path, packet: str
) -> None:
    """A packet of 1,100 nested arrays/objects over a websocket closes that connection
    cleanly (no fatal transport error, no traceback), and the server and the honest member
    carry on."""
    async with serving(tmp_path) as server, honest_chatting(server.port):
        ws = await ws_connect(server.port, join=not packet.startswith("40"))
        await ws.send(packet)
        await ws_closed_within(ws, 3.0)
        assert await healthz(server.port) == 200
    assert_clean_log(server)


async def test_deep_json_over_polling_closes_only_that_session(tmp_path: Path) -> None:
    """A polling POST carrying a deeply nested packet closes that session cleanly, and the
    server and the honest member carry on."""
    async with (
        serving(tmp_path) as server,
        honest_chatting(server.port),
        http_session() as http,
    ):
        polling = await Polling(http, server.port).open()
        status, _ = await polling.post(DEEP["event-arrays"] + '\x1e42["message","after"]')
        assert status in (200, 400)
        assert await polling.is_closed()
        assert await healthz(server.port) == 200
    assert_clean_log(server)


STATIC = [
    "/a%00b",
    "/%00",
    "/tutorial/x%00.js",
    "/" + "a" * 300,
    "/" + "a" * 300 + ".css",
    "/tutorial/" + "b" * 300 + ".js",
]


async def test_nul_and_long_static_paths_answer_404(tmp_path: Path) -> None:
    """Static paths with a NUL byte or a 300-character name answer 404 and leave no
    traceback in the log (undefended: 500 and a traceback each, a way to flood the log)."""
    async with serving(tmp_path) as server, honest_chatting(server.port):
        for path in STATIC:
            request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            status, _, writer = await http_request(server.port, request.encode())
            writer.close()
            assert status == 404, path[:60]
    assert_clean_log(server)


FORGED = "FORGED-LINE CRITICAL salas: the admin password is hunter2"


async def test_control_characters_cannot_forge_log_lines(tmp_path: Path) -> None:
    """Newlines (raw or %0a) in request paths and namespaces never start a line of their own
    in the server's log, at the most verbose log level."""
    forged = FORGED.replace(" ", "%20")
    async with serving(tmp_path, "--log-level", "debug") as server:
        for path in (
            f"/x%0a{forged}%00",
            f"/x%0d%0a{forged}",
            f"/socket.io/x%0a{forged}",
            f"/tutorial/%0a{forged}%00.js",
            f"/{'a' * 300}%0a{forged}",
        ):
            request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            _, _, writer = await http_request(server.port, request.encode())
            writer.close()
        # Namespaces: a CONNECT to an unknown one, an event for one not joined, a second
        # CONNECT; each may be logged when refused.
        for packet in (f"40/x\n{FORGED}", f"42/x\n{FORGED},[1]", f"40/x\r\n{FORGED}"):
            ws = await ws_connect(server.port)
            try:
                await ws.send(packet)
                await ws_closed_within(ws, 1.5)
            except AssertionError:
                pass  # refused and left open: fine, only the log matters here
            finally:
                await ws.close()
        await asyncio.sleep(0.2)
    lines = server.log.splitlines()
    assert not [line for line in lines if line.startswith("FORGED-LINE")], server.log_tail(40)
