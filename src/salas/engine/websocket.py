"""A websocket on an upgraded HTTP connection.

The handshake and every incoming frame go through the sans-I/O `websockets.ServerProtocol`
(masking, fragmentation, control frames, size limit). Outgoing data frames are the engine's
pre-built bytes, written straight to the transport.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from salas.engine.stats import EngineStats
from salas.engine.transport import CloseCallback, MessageCallback

if TYPE_CHECKING:
    from salas.engine.http import HttpConnection, HttpRequest

__all__ = ["WebSocket", "ignore_close", "ignore_message"]

logger = logging.getLogger("salas.engine")
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
        "_max_size",
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
        # its own copy of a broadcast, which defeats framing it once.
        self._protocol = ServerProtocol(max_size=max_size, logger=_protocol_logger)
        self._max_size = max_size
        # Above `high_water` unsent bytes the transport calls pause_writing: the connection
        # is congested (volatile packets are dropped, the slow-consumer bound is checked).
        transport.set_write_buffer_limits(high=high_water)
        self.congested = False
        self.on_message: MessageCallback = ignore_message
        self.on_close: CloseCallback = ignore_close
        self.closed = False
        self._fragments: list[bytes] = []
        self._tail = b""
        self._fragments_opcode: Opcode | None = None

    def accept(self, request: HttpRequest) -> bool:
        """Answer the upgrade request; False (and the connection closed) if it was invalid."""
        ws_request = Request(request.path, Headers(request.raw_headers))
        response = self._protocol.accept(ws_request)
        self._protocol.send_response(response)
        self._write_protocol_output()
        if response.status_code != 101:
            self.closed = True
            self.transport.close()
            return False
        # httptools already parsed the request, so the handshake protocol's parser never saw
        # it and still waits for one; frames go to a protocol that starts in the OPEN state.
        self._protocol = ServerProtocol(
            max_size=self._max_size, state=State.OPEN, logger=_protocol_logger
        )
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
            elif opcode is Opcode.CONT and self._fragments_opcode is not None:
                self._fragments.append(bytes(frame.data))
                if frame.fin:
                    first = self._fragments_opcode
                    data_whole = b"".join(self._fragments)
                    self._fragments = []
                    self._fragments_opcode = None
                    self._deliver(first, data_whole)
            if self.closed:
                return
        self._write_protocol_output()
        if protocol.state is State.CLOSED or protocol.state is State.CLOSING:
            reason = "transport close"
            if protocol.close_rcvd is not None and protocol.close_rcvd.code == 1009:
                reason = "transport error"
            if isinstance(protocol.parser_exc, Exception):
                reason = "transport error"
            self._finish(reason)

    def _deliver(self, opcode: Opcode, payload: bytes) -> None:
        if opcode is Opcode.TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                self._protocol.fail(1007, "invalid UTF-8")
                self._write_protocol_output()
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
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)
            self._write_protocol_output()
        self._finish("forced close")

    def abort(self) -> None:
        """Drop the connection now, discarding what is unsent."""
        if self.closed:
            return
        self.transport.abort()
        self._finish("transport error")

    def _write_protocol_output(self) -> None:
        for chunk in self._protocol.data_to_send():
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
