"""Slowloris: connections that hold the server's resources by sending a request slowly, or
never finishing it, are closed once the HTTP timeouts pass (`--timeout-head`,
`--timeout-body`, `--timeout-keep-alive`, 1 s each here), while a long-poll GET held by the
server and an open websocket are never cut by them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp

from tests.abuse.abuse_support import (
    FAST_TIMEOUTS,
    Polling,
    closed_within,
    honest_chatting,
    http_session,
    open_raw,
    serving,
)

# How long past its timeout the server may take to close a connection (its timers may run
# on a coarse tick; the machine may be loaded).
SLACK = 2.5
CUT_WITHIN = 1 + SLACK
SOCKETS = 20


async def test_partial_request_lines_are_closed(tmp_path: Path) -> None:
    """Connections that sent half a request line and stop are all closed within the head
    timeout, and the honest member is served meanwhile."""
    async with serving(tmp_path, *FAST_TIMEOUTS) as server, honest_chatting(server.port):
        conns = [await open_raw(server.port) for _ in range(SOCKETS)]
        for _, writer in conns:
            writer.write(b"GET /socket.io/?EIO=4&transport=pol")
        await asyncio.gather(*(closed_within(reader, CUT_WITHIN) for reader, _ in conns))
        for _, writer in conns:
            writer.close()


async def test_headers_sent_a_byte_at_a_time_are_cut(tmp_path: Path) -> None:
    """A request head that keeps trickling in, one byte every 0.1 s, is cut when the head
    timeout passes even though bytes still arrive."""
    async with serving(tmp_path, *FAST_TIMEOUTS) as server, honest_chatting(server.port):
        reader, writer = await open_raw(server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        await closed_within(reader, CUT_WITHIN, feed=lambda: writer.write(b"X"))
        assert time.monotonic() - started < CUT_WITHIN
        writer.close()


async def test_unfinished_body_is_cut(tmp_path: Path) -> None:
    """A polling POST announcing 1 MB that stops after 1 KB is cut after the body timeout
    (50 of them at once: undefended, they stayed forever and grew the process)."""
    async with (
        serving(tmp_path, *FAST_TIMEOUTS) as server,
        honest_chatting(server.port),
        http_session() as http,
    ):
        sessions = [await Polling(http, server.port).open() for _ in range(5)]
        conns = []
        for i in range(50):
            reader, writer = await open_raw(server.port)
            sid = sessions[i % len(sessions)].sid
            writer.write(
                f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
                "Host: x\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n".encode()
                + b"4" * 1024
            )
            conns.append((reader, writer))
        # The body timeout counts from the last progress; a head timeout may have started
        # with the connection: both are 1 s here.
        await asyncio.gather(*(closed_within(reader, CUT_WITHIN) for reader, _ in conns))
        for _, writer in conns:
            writer.close()


async def test_idle_keep_alive_is_closed(tmp_path: Path) -> None:
    """A keep-alive connection idle after a complete request and its answer is closed within
    the keep-alive timeout."""
    async with serving(tmp_path, *FAST_TIMEOUTS) as server, honest_chatting(server.port):
        reader, writer = await open_raw(server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"connection: close" not in head.lower(), "not kept alive: nothing to test"
        await closed_within(reader, CUT_WITHIN)
        writer.close()


async def test_long_poll_and_websocket_outlive_the_timeouts(tmp_path: Path) -> None:
    """A long-poll GET the server holds (for up to pingInterval) is not cut by the 1 s
    timeouts, nor is the honest member's websocket, 3.5 s on."""
    async with (
        serving(tmp_path, *FAST_TIMEOUTS) as server,
        honest_chatting(server.port) as honest,
        http_session() as http,
    ):
        polling = await Polling(http, server.port).open()
        held = asyncio.create_task(polling.get(timeout=60))
        await asyncio.sleep(CUT_WITHIN)
        try:
            assert not held.done(), f"the long poll ended early: {held.result()!r}"
        finally:
            held.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await held
        assert not honest.disconnected
