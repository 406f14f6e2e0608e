"""The server side of a websocket (salas.engine.websocket): handshake and incoming frames
through websockets' sans-I/O protocol, over loopback."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from websockets.exceptions import ConnectionClosed


def client_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> bytes:
    """A client-to-server frame, masked as RFC 6455 requires (unless told otherwise)."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, (0x80 if mask else 0) | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, length)
    else:
        header = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def handshake_request(port: int, target: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def open_raw(h) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A hand-made websocket session; returns the streams and the sid."""
    target = h.ws_url().split(str(h.port), 1)[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
    writer.write(handshake_request(h.port, target))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert head.startswith(b"HTTP/1.1 101"), head
    first, length = await reader.readexactly(2)
    assert first == 0x81
    body = (await reader.readexactly(length)).decode()
    sid = body.split('"sid":"')[1].split('"')[0]
    return reader, writer, sid


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await asyncio.wait_for(reader.readexactly(2), 3)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


async def test_fragmented_messages_reassembled(engine, until) -> None:
    """A message sent in several fragments reaches on_message once, whole."""
    h = await engine()
    ws, sid = await h.ws_open()
    await ws.send(["4he", "ll", "o"])
    await ws.send([b"\x01", b"\x02\x03"])
    await until(lambda: len(h.messages[sid]) == 2)
    assert h.messages[sid] == ["hello", b"\x01\x02\x03"]
    await ws.close()


async def test_control_frame_between_fragments(engine, until) -> None:
    """A ping between two fragments is answered and doesn't break the message."""
    h = await engine()
    reader, writer, sid = await open_raw(h)
    writer.write(client_frame(0x1, b"4ab", fin=False))
    writer.write(client_frame(0x9, b"hb"))
    writer.write(client_frame(0x0, b"cd", fin=True))
    opcode, payload = await read_frame(reader)
    assert (opcode, payload) == (0xA, b"hb")  # pong with the ping's data
    await until(lambda: h.messages[sid] == ["abcd"])
    writer.close()


async def test_ping_frame_answered_with_pong(engine) -> None:
    """A websocket-level ping from the client gets a pong (handled by the protocol layer)."""
    h = await engine()
    ws, _ = await h.ws_open()
    pong = await ws.ping(b"are you there")
    await asyncio.wait_for(pong, 3)
    await ws.close()


async def test_data_in_same_packet_as_handshake(engine, until) -> None:
    """Frames that arrive together with the upgrade request are not lost."""
    h = await engine()
    target = h.ws_url().split(str(h.port), 1)[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
    writer.write(handshake_request(h.port, target) + client_frame(0x1, b"4early"))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    await until(lambda: any(m == ["early"] for m in h.messages.values()), timeout=0.5)
    writer.close()


async def test_invalid_utf8_text_closes_with_1007(engine, until) -> None:
    """A text frame that is not UTF-8 closes the connection (1007), "transport error"."""
    h = await engine()
    reader, writer, sid = await open_raw(h)
    writer.write(client_frame(0x1, b"4\xff\xfe"))
    opcode, payload = await read_frame(reader)
    assert opcode == 0x8
    assert struct.unpack("!H", payload[:2])[0] == 1007
    await until(lambda: sid in h.closed)
    assert h.closed[sid] == "transport error"
    assert h.messages[sid] == []
    writer.close()


async def test_unmasked_client_frame_is_protocol_error(engine, until) -> None:
    """An unmasked frame from a client is a protocol error (1002): the session ends."""
    h = await engine()
    reader, writer, sid = await open_raw(h)
    writer.write(client_frame(0x1, b"4hi", mask=False))
    opcode, payload = await read_frame(reader)
    assert opcode == 0x8
    assert struct.unpack("!H", payload[:2])[0] == 1002
    await until(lambda: sid in h.closed)
    assert h.closed[sid] == "transport error"
    assert h.messages[sid] == []
    writer.close()


async def test_client_close_frame(engine, until) -> None:
    """A close frame from the client is answered and ends the session ("transport close")."""
    h = await engine()
    reader, writer, sid = await open_raw(h)
    writer.write(client_frame(0x8, struct.pack("!H", 1000)))
    opcode, payload = await read_frame(reader)
    assert opcode == 0x8
    assert struct.unpack("!H", payload[:2])[0] == 1000
    await until(lambda: sid in h.closed)
    assert h.closed[sid] == "transport close"
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()


async def test_abrupt_disconnect_ends_session(engine, until) -> None:
    """A websocket TCP connection dropped without a close frame ends the session."""
    h = await engine()
    _, writer, sid = await open_raw(h)
    writer.transport.abort()
    await until(lambda: sid in h.closed)
    assert h.closed[sid] in ("transport close", "transport error")


async def test_bad_websocket_handshake_refused(engine, http) -> None:
    """An upgrade request without Sec-WebSocket-Key is refused (400) and opens no session."""
    h = await engine()
    response = await http(
        h.port,
        "GET",
        h.ws_url().split(str(h.port), 1)[1],
        headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
    )
    assert response.status == 400
    assert h.sessions == {}
    assert h.server.sessions == {}


async def test_no_compression_negotiated(engine) -> None:
    """permessage-deflate is not offered back: a broadcast frame must be shareable as is."""
    h = await engine()
    from websockets.asyncio.client import connect

    ws = await connect(h.ws_url(), compression="deflate", ping_interval=None)
    assert ws.response is not None
    assert "Sec-WebSocket-Extensions" not in ws.response.headers
    await ws.close()


async def test_large_server_message_arrives_whole(engine) -> None:
    """A message above 64 KiB (64-bit length header) arrives intact."""
    h = await engine(max_payload=10_000_000)
    ws, sid = await h.ws_open()
    big = "4" + "€" * 40_000  # 120 001 bytes of UTF-8
    h.sessions[sid].send(big)
    assert await asyncio.wait_for(ws.recv(), 3) == big
    await ws.close()


async def test_server_close_sends_close_frame(engine) -> None:
    """Closing the session sends a normal close frame (1000) to the client."""
    h = await engine()
    ws, sid = await h.ws_open()
    h.sessions[sid].close()
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 3)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1000
