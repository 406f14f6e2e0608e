"""Head, body and keep-alive timeouts of HTTP connections (salas.engine.http), over loopback.

Short timeouts (a fraction of a second) stand in for the defaults; each hostile client is
checked next to an honest one that must be unaffected.
"""

from __future__ import annotations

import asyncio

import pytest

from salas.engine import EngineConfig

# A timeout short enough for tests, long enough that an honest request on loopback fits.
T = 0.3


def _timeouts(**extra: object) -> dict[str, object]:
    return {"head_timeout": T, "body_timeout": T, "keep_alive_timeout": T, **extra}


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before closing; fails if it is still open after `seconds`."""
    return await asyncio.wait_for(reader.read(), seconds)


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _honest_polling_exchange(h) -> None:
    """An honest client: handshake, a message each way over long-polling."""
    sid, _ = await h.handshake()
    assert (await h.post(sid, "4hello")).body == b"ok"
    h.sessions[sid].send_message("back")
    assert (await h.poll(sid)).body == b"4back"
    assert h.messages[sid] == ["hello"]


def test_timeouts_configurable_and_validated() -> None:
    """The three timeouts have defaults of at most 10 s and must be positive."""
    config = EngineConfig()
    assert 0 < config.head_timeout <= 10
    assert 0 < config.body_timeout <= 10
    assert 0 < config.keep_alive_timeout <= 10
    for name in ("head_timeout", "body_timeout", "keep_alive_timeout"):
        for bad in (0, -1.0):
            with pytest.raises(ValueError, match=name):
                EngineConfig(**{name: bad})  # type: ignore[arg-type]


async def test_silent_connection_closed_after_head_timeout(engine) -> None:
    """A connection that never sends a byte is closed after the head timeout."""
    h = await engine(**_timeouts())
    reader, writer = await _open(h.port)
    started = asyncio.get_running_loop().time()
    assert await _closed_within(reader, 3) == b""
    assert asyncio.get_running_loop().time() - started >= T * 0.9
    writer.close()


async def test_partial_request_line_gets_408(engine) -> None:
    """A request line that never ends is answered 408 and closed, while an honest client
    completes its exchange meanwhile."""
    h = await engine(**_timeouts())
    reader, writer = await _open(h.port)
    writer.write(b"GET /engine.io/?EIO=4&tra")
    await _honest_polling_exchange(h)
    data = await _closed_within(reader, 3)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"Connection: close" in data
    writer.close()


async def test_headers_a_byte_at_a_time_cut_at_head_timeout(engine) -> None:
    """Slowloris: headers trickling in a byte at a time do not extend the head timeout."""
    h = await engine(**_timeouts())
    reader, writer = await _open(h.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(b"GET / HTTP/1.1\r\n")

    async def trickle() -> None:
        while True:
            writer.write(b"X")
            await asyncio.sleep(T / 10)

    trickler = asyncio.create_task(trickle())
    try:
        await _honest_polling_exchange(h)
        data = await _closed_within(reader, 3)
    finally:
        trickler.cancel()
    assert data.startswith(b"HTTP/1.1 408 ")
    assert loop.time() - started < T * 4
    writer.close()


async def test_unfinished_body_cut_at_body_timeout(engine) -> None:
    """A body that stops arriving is answered 408 after the body timeout."""
    h = await engine(**_timeouts())
    reader, writer = await _open(h.port)
    writer.write(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 1000)
    await _honest_polling_exchange(h)
    data = await _closed_within(reader, 3)
    assert data.startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_slow_but_progressing_body_is_not_cut(engine, read_response) -> None:
    """A body that keeps arriving, slower than the timeout as a whole, is read completely."""
    h = await engine(fallback=lambda r: r.respond(200, str(len(r.body)).encode()), **_timeouts())
    reader, writer = await _open(h.port)
    writer.write(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
    for _ in range(8):
        await asyncio.sleep(T / 3)  # 8 * T/3 > 2T in total, each gap well under T
        writer.write(b"b")
    response = await asyncio.wait_for(read_response(reader), 3)
    assert response.status == 200
    assert response.body == b"8"
    writer.close()


async def test_idle_keep_alive_closed_and_active_one_kept(engine, read_response) -> None:
    """An idle keep-alive connection closes after its timeout; one in use stays open."""
    h = await engine(fallback=lambda r: r.respond(200, b"hi"), **_timeouts())
    idle_reader, idle_writer = await _open(h.port)
    busy_reader, busy_writer = await _open(h.port)
    for writer in (idle_writer, busy_writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    for reader in (idle_reader, busy_reader):
        assert (await asyncio.wait_for(read_response(reader), 3)).body == b"hi"
    for _ in range(5):  # 5 requests T/2 apart: longer than T, never idle for T
        await asyncio.sleep(T / 2)
        busy_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(read_response(busy_reader), 3)).body == b"hi"
    assert idle_reader.at_eof() or await _closed_within(idle_reader, 1) == b""
    assert not busy_writer.is_closing()
    for writer in (idle_writer, busy_writer):
        writer.close()


async def test_long_poll_held_past_timeouts_not_cut(engine) -> None:
    """A long-polling GET held by the server for 2x every timeout is answered, not cut."""
    h = await engine(ping_interval=T * 4, ping_timeout=T * 4, **_timeouts())
    sid, _ = await h.handshake()
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = await h.poll(sid, timeout=T * 10)  # held until the server's ping
    assert poll.status == 200
    assert poll.body == b"2"
    assert loop.time() - started >= T * 2
    assert sid not in h.closed


async def test_pipelined_request_behind_held_poll_not_cut(engine, read_response) -> None:
    """A complete request queued behind a held long-poll waits past the timeouts."""
    h = await engine(**_timeouts())
    sid, _ = await h.handshake()
    reader, writer = await _open(h.port)
    path = h.path(sid=sid)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n4hi".encode()
    )
    await asyncio.sleep(T * 2)
    h.sessions[sid].send_message("late")
    assert (await asyncio.wait_for(read_response(reader), 3)).body == b"4late"
    assert (await asyncio.wait_for(read_response(reader), 3)).body == b"ok"
    assert h.messages[sid] == ["hi"]
    writer.close()


async def test_websocket_outlives_http_timeouts(engine) -> None:
    """An open websocket idle for 3x the HTTP timeouts still exchanges messages."""
    h = await engine(ping_interval=30, **_timeouts())
    ws, sid = await h.ws_open()
    await asyncio.sleep(T * 3)
    await ws.send("4still here")
    await asyncio.wait_for(_until_message(h, sid), 3)
    h.sessions[sid].send_message("yes")
    assert await asyncio.wait_for(ws.recv(), 3) == "4yes"
    await ws.close()


async def test_upgraded_websocket_outlives_http_timeouts(engine) -> None:
    """A session upgraded from polling keeps its websocket past the HTTP timeouts."""
    h = await engine(ping_interval=30, **_timeouts())
    sid, _ = await h.handshake()
    ws = await h.ws_connect(sid=sid)
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 3) == "3probe"
    await ws.send("5")
    await asyncio.sleep(T * 3)
    await ws.send("4after")
    await asyncio.wait_for(_until_message(h, sid), 3)
    assert h.sessions[sid].transport == "websocket"
    await ws.close()


async def _until_message(h, sid: str) -> None:
    while not h.messages[sid]:
        await asyncio.sleep(0.005)


async def test_timeout_answer_is_plain(engine) -> None:
    """The 408 answer has a short body and closes the connection."""
    h = await engine(**_timeouts())
    reader, writer = await _open(h.port)
    writer.write(b"GET / HTTP/1.1\r\nHost")
    data = await _closed_within(reader, 3)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout")
    assert body == b"Request Timeout"
    writer.close()
