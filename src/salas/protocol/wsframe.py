"""Server-to-client websocket frames built ahead of time (RFC 6455, section 5.2).

This is the broadcast fast path's reason to exist: a packet sent to a thousand websocket
clients is framed once here and the same bytes are handed to every transport. Frames from
server to client are never masked, so a frame is just a header in front of the payload.
Incoming frames (masked, possibly fragmented, UTF-8 to validate) are parsed by the
`websockets` library, never here.
"""

from __future__ import annotations

import struct

__all__ = ["binary_frame", "frame", "text_frame"]

OP_TEXT = 0x1
OP_BINARY = 0x2
_FIN = 0x80

_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, unfragmented frame with `payload`."""
    length = len(payload)
    if length < 126:
        return bytes((_FIN | opcode, length)) + payload
    if length < 65536:
        return _pack_16(_FIN | opcode, 126, length) + payload
    return _pack_64(_FIN | opcode, 127, length) + payload


# The headers of short final text frames, by payload length: most frames a chat sends.
_SHORT_TEXT_HEADERS = [bytes((_FIN | OP_TEXT, length)) for length in range(126)]


def text_frame(text: str) -> bytes:
    """A text frame carrying `text` encoded as UTF-8."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        return _SHORT_TEXT_HEADERS[length] + payload
    return frame(OP_TEXT, payload)


def binary_frame(data: bytes) -> bytes:
    """A binary frame carrying `data`."""
    return frame(OP_BINARY, data)
