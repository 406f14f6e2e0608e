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


# -- the shortcut for whole data frames, against the protocol alone ---------------------------


class _Sink:
    """A transport that keeps what is written."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.written += chunk

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 1234) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def _open_websocket(max_size: int, shortcut: bool):
    """A WebSocket accepted on a connection with a sink transport, and what it delivers."""
    from salas.engine.http import HttpConnection
    from salas.engine.websocket import WebSocket

    class ProtocolOnly(WebSocket):
        __slots__ = ()

        def _whole_frames(self, data: bytes) -> bytes:
            return data  # the protocol sees every byte

    opened = []
    events: list = []

    def handler(request) -> None:
        ws = (WebSocket if shortcut else ProtocolOnly)(request, max_size)
        assert ws.accept(request)
        ws.on_message = events.append
        ws.on_close = lambda reason: events.append(("closed", reason))
        opened.append(ws)
        ws.start()

    connection = HttpConnection(handler, lambda request: 1_000_000)
    sink = _Sink()
    connection.connection_made(sink)
    connection.data_received(handshake_request(1234, "/ws"))
    assert len(opened) == 1
    sink.written.clear()
    return connection, sink, events


def _frame(first: int, payload: bytes, masked: bool = True, long_form: bool = False) -> bytes:
    """A frame with a fixed mask (first byte as given: FIN, RSV bits and opcode)."""
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126 and not long_form:
        header = bytes((first, mask_bit | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not masked:
        return header + payload
    key = b"\x01\x82\x03\xf4"
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def _compare(stream: bytes, cuts: list[int], max_size: int = 1000) -> list:
    """Feed `stream` in pieces to a WebSocket with and without the shortcut: same outcome."""
    outcomes = []
    for shortcut in (True, False):
        connection, sink, events = _open_websocket(max_size, shortcut)
        start = 0
        for cut in [*sorted(c for c in cuts if 0 < c < len(stream)), len(stream)]:
            if start < cut:
                connection.data_received(stream[start:cut])
            start = cut
        outcomes.append((events, _opcodes(bytes(sink.written)), sink.closed))
    (events, written, closed), (events_alone, written_alone, closed_alone) = outcomes
    assert (events, closed) == (events_alone, closed_alone)
    if closed:
        # The protocol alone parses a whole read before its text frames are decoded, so it
        # may answer a ping that follows a text frame that is not UTF-8; the shortcut stops
        # at that frame. Either way the connection ends with a close frame.
        written = [op for op in written if op != 0xA]
        written_alone = [op for op in written_alone if op != 0xA]
    assert written == written_alone
    return events


def _opcodes(written: bytes) -> list[int]:
    """The opcodes of the (unmasked) frames the server wrote.

    Close codes are left out: when one read holds both a frame the protocol refuses and,
    before it, a text frame that is not UTF-8, which of the two closes the connection
    depends on how the bytes were split into reads, with or without the shortcut.
    """
    opcodes = []
    pos = 0
    while pos + 2 <= len(written):
        length = written[pos + 1] & 0x7F
        start = pos + 2
        if length == 126:
            length = int.from_bytes(written[start : start + 2], "big")
            start += 2
        elif length == 127:
            length = int.from_bytes(written[start : start + 8], "big")
            start += 8
        opcodes.append(written[pos] & 0x0F)
        pos = start + length
    return opcodes


async def test_shortcut_delivers_whole_frames_in_order() -> None:
    """Whole text and binary frames in one read arrive in order, as the protocol reads them."""
    stream = (
        _frame(0x81, b'42["message","hi"]')
        + _frame(0x82, b"\x00\x01\x02")
        + _frame(0x81, "é".encode() * 100)
        + _frame(0x81, b"")
    )
    events = await _compare(stream, [])
    assert events == ['42["message","hi"]', b"\x00\x01\x02", "é" * 100, ""]


async def test_shortcut_hands_over_at_fragments_and_control_frames() -> None:
    """A fragmented message, a ping between its fragments, then whole frames: same outcome."""
    stream = (
        _frame(0x81, b"a")
        + _frame(0x01, b"b")
        + _frame(0x89, b"ping")
        + _frame(0x80, b"c")
        + _frame(0x81, b"d")
    )
    events = await _compare(stream, [])
    assert events == ["a", "bc", "d"]


async def test_shortcut_with_frames_split_across_reads() -> None:
    """Every way of cutting a stream in two reads gives the protocol's outcome."""
    stream = _frame(0x81, b"x" * 130) + _frame(0x81, b"yz") + _frame(0x81, b"w" * 7)
    for cut in range(len(stream) + 1):
        events = await _compare(stream, [cut])
        assert events == ["x" * 130, "yz", "w" * 7]


@pytest.mark.parametrize(
    "bad",
    [
        _frame(0x81, b"\xff\xfe"),  # invalid UTF-8: closed with 1007
        _frame(0x81, b"plain", masked=False),  # a client frame must be masked
        _frame(0xC1, b"rsv1"),  # a reserved bit without an extension
        _frame(0x81, b"x" * 1001),  # over the size limit: 1009
        _frame(0x81, b"x" * 1001, long_form=True),
        _frame(0x80, b"continuation of nothing"),
        _frame(0x83, b"unknown opcode"),
        _frame(0x88, struct.pack("!H", 1000)),  # a close frame
    ],
)
async def test_shortcut_refuses_as_the_protocol_does(bad: bytes) -> None:
    """Hostile or closing frames after an honest one: the outcome is the protocol's."""
    stream = _frame(0x81, b"honest") + bad + _frame(0x81, b"after")
    events = await _compare(stream, [])
    assert events[0] == "honest"
    assert "after" not in events
    assert events[-1][0] == "closed"


def _frames_strategy():
    from hypothesis import strategies as st

    payloads = st.one_of(
        st.binary(max_size=140),
        st.text(max_size=60).map(str.encode),
        st.integers(0, 1200).map(lambda n: b"a" * n),
    )
    first = st.sampled_from([0x81, 0x82, 0x01, 0x02, 0x80, 0x00, 0x89, 0x8A, 0xC1, 0x81, 0x81])
    frame = st.builds(
        _frame,
        first,
        payloads,
        masked=st.sampled_from([True, True, True, False]),
        long_form=st.booleans(),
    )
    return st.tuples(
        st.lists(frame, max_size=8).map(b"".join), st.lists(st.integers(0, 3000), max_size=6)
    )


async def test_shortcut_matches_the_protocol_on_any_stream() -> None:
    """Random frame streams (valid or not) cut at random: the shortcut changes nothing."""
    from hypothesis import HealthCheck, given, settings

    cases = []

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_frames_strategy())
    def collect(case) -> None:
        cases.append(case)

    collect()
    for stream, cuts in cases:
        await _compare(stream, cuts)


async def test_idle_open_websocket_keeps_no_protocol_object() -> None:
    """Between frames an open websocket holds no protocol object; a ping makes one, for a while."""
    connection, sink, events = _open_websocket(1000, shortcut=True)
    ws = connection._stream
    assert ws._protocol is None
    connection.data_received(_frame(0x81, b"hello"))
    assert ws._protocol is None
    connection.data_received(_frame(0x89, b"ping")[:3])  # a ping, cut mid-header
    assert ws._protocol is not None
    connection.data_received(_frame(0x89, b"ping")[3:])
    assert ws._protocol is None
    assert _opcodes(bytes(sink.written)) == [0xA]  # its pong
    connection.data_received(_frame(0x01, b"frag"))  # a fragmented message in progress
    assert ws._protocol is not None
    connection.data_received(_frame(0x80, b"ment"))
    assert ws._protocol is None
    assert events == ["hello", "fragment"]
