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


def text_frame(text: str) -> bytes:
    """A text frame carrying `text` encoded as UTF-8."""
    return frame(OP_TEXT, text.encode())


def binary_frame(data: bytes) -> bytes:
    """A binary frame carrying `data`."""
    return frame(OP_BINARY, data)
