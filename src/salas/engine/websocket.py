"""A websocket on an upgraded HTTP connection.

The handshake and every incoming frame go through the sans-I/O `websockets.ServerProtocol`
(masking, fragmentation, control frames, size limit), with one shortcut: a read that holds
only whole, final, masked text or binary frames of the common sizes — what a client sends
almost every time — is split here, unmasked by the library's `apply_mask` and UTF-8
decoded by Python's strict codec, without a parser generator, frame objects and event lists
per frame. Anything else (control frames, fragments, reserved bits, frames split across
reads, oversized ones) goes to the protocol, from the first frame that is not of that kind,
and the protocol is only ever handed data that starts at a frame boundary.

Outgoing data frames are the engine's pre-built bytes, written straight to the transport.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

try:  # the library's C masking, as its own frame parser uses it
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a build of websockets without its C extension
    from websockets.utils import apply_mask

from salas.engine.stats import EngineStats
from salas.engine.transport import CloseCallback, MessageCallback

if TYPE_CHECKING:
    from salas.engine.http import HttpConnection, HttpRequest

__all__ = ["WebSocket", "ignore_close", "ignore_message"]

logger = logging.getLogger("salas.engine")
# First header byte of a final text / binary frame without reserved bits; the second byte of
# a masked frame is at least _MASKED.
_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
_MASKED = 0x80
_TEXT = Opcode.TEXT  # (Enum members looked up once: a class attribute costs on every use)
_BINARY = Opcode.BINARY
_OPEN = State.OPEN

# The websockets library logs every opened connection at INFO; at thousands of connections a
# second that is noise, so its protocol objects get a logger of their own that keeps quiet.
_protocol_logger = logging.getLogger("salas.engine.websocket_protocol")
_protocol_logger.setLevel(logging.WARNING)


def ignore_message(message: str | bytes) -> None:
    """The message callback of a connection nobody listens to (yet, or any more)."""
    return None


def ignore_close(reason: str) -> None:
    """The close callback of a connection nobody listens to (yet, or any more)."""
    return None


class WebSocket:
    """Server side of one websocket connection."""

    __slots__ = (
        "_fragments",
        "_fragments_opcode",
        "_head",
        "_max_size",
        "_owed",
        "_protocol",
        "_tail",
        "closed",
        "congested",
        "connection",
        "on_close",
        "on_message",
        "stats",
        "transport",
    )

    # Chunks written are complete websocket frames (see salas.engine.transport).
    framed = True

    def __init__(
        self,
        request: HttpRequest,
        max_size: int,
        high_water: int = 256 * 1024,
        stats: EngineStats | None = None,
    ) -> None:
        # Made only by `HttpConnection.accept_websocket`, for its own requests.
        connection = cast("HttpConnection", request.connection)
        self.connection = connection
        # Where the bytes read are counted (the engine's; a websocket on its own: here).
        self.stats = stats if stats is not None else EngineStats()
        transport = connection.transport
        assert transport is not None
        self.transport = transport
        # No extensions are offered: permessage-deflate would make every recipient compress
        # its own copy of a broadcast, which defeats framing it once. This one answers the
        # handshake; once open, a protocol object exists only while frames need it (None:
        # open, at a frame boundary, outside a fragmented message), so that an idle
        # connection does not keep its parser, buffers and generator.
        self._protocol: ServerProtocol | None = ServerProtocol(
            max_size=max_size, logger=_protocol_logger
        )
        self._max_size = max_size
        # Above `high_water` unsent bytes the transport calls pause_writing: the connection
        # is congested (volatile packets are dropped, the slow-consumer bound is checked).
        transport.set_write_buffer_limits(high=high_water)
        self.congested = False
        self.on_message: MessageCallback = ignore_message
        self.on_close: CloseCallback = ignore_close
        self.closed = False
        # The parts of a fragmented message so far; made by its first frame.
        self._fragments: list[bytes] | None = None
        self._tail = b""
        self._fragments_opcode: Opcode | None = None
        # Where the protocol's parser stands in the frame it was last handed part of: the
        # bytes of that frame still owed to it, and the bytes of a header it has only part
        # of. Both empty: it waits for a new frame, and whole frames may take the shortcut.
        self._owed = 0
        self._head = b""

    def accept(self, request: HttpRequest) -> bool:
        """Answer the upgrade request; False (and the connection closed) if it was invalid."""
        protocol = self._protocol
        assert protocol is not None
        ws_request = Request(request.path, Headers(request.raw_headers))
        response = protocol.accept(ws_request)
        protocol.send_response(response)
        self._write_protocol_output(protocol)
        if response.status_code != 101:
            self.closed = True
            self.transport.close()
            return False
        # httptools already parsed the request, so the handshake protocol's parser never saw
        # it and still waits for one; frames go to a protocol made in the OPEN state when
        # one is needed (see `_open_protocol`).
        self._protocol = None
        request.responded = True
        self.connection.take_over(self)
        self._tail = request.upgrade_tail
        return True

    def start(self) -> None:
        """Process frames that came with the handshake, once the callbacks are in place."""
        tail, self._tail = self._tail, b""
        if tail:
            self.data_received(tail)

    # -- from the transport -----------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.stats.bytes_received += len(data)
        protocol = self._protocol
        if protocol is None or (
            not self._owed
            and not self._head
            and protocol.current_size is None
            and protocol.state is _OPEN
        ):
            data = self._whole_frames(data)
            if not data or self.closed:
                return
            if protocol is None:
                protocol = self._open_protocol()
        self._track(data)
        protocol.receive_data(data)
        for frame in protocol.events_received():
            if not isinstance(frame, Frame):
                continue
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if frame.fin:
                    self._deliver(opcode, bytes(frame.data))
                else:
                    self._fragments_opcode = opcode
                    self._fragments = [bytes(frame.data)]
            elif opcode is Opcode.CONT and self._fragments is not None:
                self._fragments.append(bytes(frame.data))
                if frame.fin:
                    first = self._fragments_opcode
                    assert first is not None
                    data_whole = b"".join(self._fragments)
                    self._fragments = None
                    self._fragments_opcode = None
                    self._deliver(first, data_whole)
            if self.closed:
                return
        self._write_protocol_output(protocol)
        state = protocol.state
        if state is State.CLOSED or state is State.CLOSING:
            reason = "transport close"
            if protocol.close_rcvd is not None and protocol.close_rcvd.code == 1009:
                reason = "transport error"
            if isinstance(protocol.parser_exc, Exception):
                reason = "transport error"
            self._finish(reason)
        elif (
            state is _OPEN
            and not self._owed
            and not self._head
            and protocol.current_size is None
            and self._fragments_opcode is None
        ):
            self._protocol = None  # back at a frame boundary: nothing left to keep

    def _open_protocol(self) -> ServerProtocol:
        """The protocol for frames from here on, a frame boundary of an open connection."""
        protocol = self._protocol = ServerProtocol(
            max_size=self._max_size, state=_OPEN, logger=_protocol_logger
        )
        return protocol

    def _whole_frames(self, data: bytes) -> bytes:
        """Deliver the whole final data frames at the start of `data`; returns the rest.

        Only called at a frame boundary, outside a fragmented message. Stops at the first
        frame that is not complete here, not a final text or binary frame without reserved
        bits, not masked, longer than 64 KiB or over the size limit: that frame and what
        follows are the protocol's.
        """
        pos = 0
        end = len(data)
        view = memoryview(data)
        while end - pos >= 6:
            head1 = data[pos]
            head2 = data[pos + 1]
            if (head1 != _FIN_TEXT and head1 != _FIN_BINARY) or head2 < _MASKED:
                break
            length = head2 - _MASKED
            start = pos + 6
            if length == 126:
                start = pos + 8
                if end < start:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
            elif length == 127:
                break
            stop = start + length
            if stop > end or length > self._max_size:
                break
            payload = apply_mask(view[start:stop], data[start - 4 : start])
            pos = stop
            self._deliver(_TEXT if head1 == _FIN_TEXT else _BINARY, payload)
            if self.closed:
                return b""
        if pos == 0:
            return data
        return data[pos:]

    def _track(self, data: bytes) -> None:
        """Follow the frame boundaries in `data`, which the protocol is about to parse."""
        pos = 0
        end = len(data)
        while pos < end:
            owed = self._owed
            if owed:
                taken = min(owed, end - pos)
                self._owed = owed - taken
                pos += taken
                continue
            head = self._head + data[pos : pos + 14]
            if len(head) < 2:
                self._head = head
                return
            length = head[1] & 0x7F
            size = 2 + (4 if head[1] & _MASKED else 0)
            if length == 126:
                size += 2
            elif length == 127:
                size += 8
            if len(head) < size:
                self._head = head
                return
            if length == 126:
                length = int.from_bytes(head[2:4], "big")
            elif length == 127:
                length = int.from_bytes(head[2:10], "big")
            pos += size - len(self._head)
            self._head = b""
            self._owed = length

    def _deliver(self, opcode: Opcode, payload: bytes) -> None:
        if opcode is _TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                protocol = self._protocol or self._open_protocol()
                protocol.fail(1007, "invalid UTF-8")
                self._write_protocol_output(protocol)
                self._finish("transport error")
                return
            self.on_message(text)
        else:
            self.on_message(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish("transport close" if exc is None else "transport error")

    def pause_writing(self) -> None:
        self.congested = True

    def resume_writing(self) -> None:
        self.congested = False

    # -- to the transport -------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Write pre-built frames."""
        if not self.closed:
            self.transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        if not self.closed:
            self.transport.writelines(chunks)

    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel."""
        return self.transport.get_write_buffer_size()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and close the connection (what was written first goes out)."""
        if self.closed:
            return
        protocol = self._protocol or self._open_protocol()
        if protocol.state is _OPEN:
            protocol.send_close(code, reason)
            self._write_protocol_output(protocol)
        self._finish("forced close")

    def abort(self) -> None:
        """Drop the connection now, discarding what is unsent."""
        if self.closed:
            return
        self.transport.abort()
        self._finish("transport error")

    def _write_protocol_output(self, protocol: ServerProtocol) -> None:
        for chunk in protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                # The protocol asks for the TCP connection to be closed once it's written.
                self.transport.close()

    def _finish(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.transport.close()
        callback = self.on_close
        self.on_close = ignore_close
        self.on_message = ignore_message
        callback(reason)
