"""Pre-built server-to-client websocket frames (salas.protocol.wsframe)."""

from __future__ import annotations

import struct
from collections.abc import Generator

import pytest
from websockets.frames import Frame, Opcode

from salas.protocol.wsframe import OP_BINARY, OP_TEXT, binary_frame, frame, text_frame


def parse(data: bytes) -> tuple[Frame, bytes]:
    """Parse one unmasked frame from `data` with websockets' own parser; return it and the rest."""
    view = memoryview(data)
    pos = 0

    def read_exact(n: int) -> Generator[None, None, bytes]:
        nonlocal pos
        if pos + n > len(view):
            raise AssertionError("frame is shorter than its header says")
        chunk = bytes(view[pos : pos + n])
        pos += n
        return chunk
        yield  # a generator, as Frame.parse wants

    gen = Frame.parse(read_exact, mask=False)
    try:
        next(gen)
    except StopIteration as stop:
        return stop.value, data[pos:]
    raise AssertionError("parser asked for more data")


@pytest.mark.parametrize(
    ("length", "header_len", "length_field"),
    [
        (0, 2, 0),
        (1, 2, 1),
        (125, 2, 125),
        (126, 4, 126),
        (127, 4, 127),
        (65535, 4, 65535),
        (65536, 10, 65536),
        (70000, 10, 70000),
    ],
)
def test_header_length_encoding(length: int, header_len: int, length_field: int) -> None:
    """Payloads up to 125 bytes use a 7-bit length, up to 65535 a 16-bit one, then 64-bit."""
    payload = bytes(i % 251 for i in range(length))
    data = binary_frame(payload)
    assert len(data) == header_len + length
    assert data[header_len:] == payload
    assert data[0] == 0x82  # FIN + binary
    assert data[1] & 0x80 == 0  # server frames are never masked
    if header_len == 2:
        assert data[1] == length_field
    elif header_len == 4:
        assert data[1] == 126
        assert struct.unpack("!H", data[2:4])[0] == length_field
    else:
        assert data[1] == 127
        assert struct.unpack("!Q", data[2:10])[0] == length_field
    parsed, rest = parse(data)
    assert rest == b""
    assert parsed.opcode is Opcode.BINARY
    assert parsed.fin is True
    assert bytes(parsed.data) == payload


@pytest.mark.parametrize("length", [125, 126, 65535, 65536])
def test_text_frame_lengths_count_utf8_bytes(length: int) -> None:
    """A text frame's length is that of the UTF-8 bytes, not of the str."""
    text = "é" * (length // 2) + "a" * (length % 2)  # 2 bytes per "é"
    data = text_frame(text)
    parsed, rest = parse(data)
    assert rest == b""
    assert parsed.opcode is Opcode.TEXT
    assert bytes(parsed.data).decode() == text
    assert len(parsed.data) == length


def test_text_and_binary_opcodes() -> None:
    """text_frame uses opcode 0x1, binary_frame 0x2, both with FIN set."""
    assert OP_TEXT == 1
    assert OP_BINARY == 2
    assert text_frame("4hello") == b"\x81\x064hello"
    assert binary_frame(b"\x01\x02") == b"\x82\x02\x01\x02"
    assert parse(text_frame("2"))[0].opcode is Opcode.TEXT
    assert parse(binary_frame(b"2"))[0].opcode is Opcode.BINARY


def test_frame_with_other_opcode() -> None:
    """frame() writes any opcode in the low bits of the first byte."""
    data = frame(0x9, b"hi")
    parsed, _ = parse(data)
    assert parsed.opcode is Opcode.PING
    assert bytes(parsed.data) == b"hi"


def test_concatenated_frames_parse_one_after_another() -> None:
    """Frames written back to back (as a coalesced write) parse as separate frames."""
    data = text_frame("4a") + binary_frame(b"\x00" * 200) + text_frame("4" + "z" * 70000)
    first, rest = parse(data)
    second, rest = parse(rest)
    third, rest = parse(rest)
    assert rest == b""
    assert (first.opcode, bytes(first.data)) == (Opcode.TEXT, b"4a")
    assert (second.opcode, bytes(second.data)) == (Opcode.BINARY, b"\x00" * 200)
    assert (third.opcode, len(third.data)) == (Opcode.TEXT, 70001)
