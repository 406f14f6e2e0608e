"""The engine carried by an ASGI server (uvicorn, hypercorn, ...) instead of its own.

One ASGI `http` scope becomes an `HttpRequest` whose connection answers through the ASGI
`send` (`AsgiConnection`); a `websocket` scope becomes the upgrade request, and once the
engine accepts it, an `EngineSocket` that sends Engine.IO packets as websocket messages
(`AsgiWebSocket`). Everything else — handshakes, sessions, polling, upgrades, heartbeats,
Origin checks, `allow_request` hooks, connection limits, inbound budgets, `max_payload` —
is the engine's own code (`EngineServer.handle_request`), as on salas' HTTP server.

What the ASGI server owns here: TCP connections, HTTP parsing, keep-alive and any head
timeout (uvicorn: `--timeout-keep-alive`), websocket framing and its message size limit
(uvicorn: `--ws-max-size`, 16 MiB by default; a message over `max_payload` is refused here
once it is whole). The body timeout is applied here, per chunk of a request body. The
connection limits count the requests and websockets in flight under the engine (a long-poll
GET, a websocket), per client address and in total.

Broadcasts still encode once: every recipient's websocket gets the same packet strings, and
only the ASGI `send` call (and its message dict) is per recipient. Each websocket has one
writer task that sends what the session flushed, in order; its unsent size counts toward the
slow-consumer bound (`max_buffer`) as on salas' server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from salas.engine.http import HttpRequest, header_value, parse_query
from salas.engine.logsafe import printable
from salas.engine.stats import EngineStats
from salas.engine.transport import CloseCallback, MessageCallback
from salas.engine.websocket import ignore_close, ignore_message
from salas.protocol import WirePacket

if TYPE_CHECKING:
    from salas.engine.server import EngineServer

__all__ = [
    "AsgiConnection",
    "AsgiWebSocket",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "serve_http",
    "serve_websocket",
]

logger = logging.getLogger("salas.engine")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# An answer waiting to be sent: status, headers, body.
_Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class AsgiConnection:
    """One ASGI request as the engine's `Connection`: the answer (or, for a websocket
    scope, the accepted websocket) is kept for the ASGI side to send."""

    __slots__ = ("_head", "admitted", "counted_as", "left", "peer_address", "settled")

    def __init__(self, peer_address: str, head: bool = False) -> None:
        self.peer_address = peer_address
        self.counted_as: str | None = None
        self.admitted = False
        self.left = False  # the client went away
        self._head = head
        # The answer, or the websocket the engine accepted.
        self.settled: asyncio.Future[_Answer | AsgiWebSocket] = (
            asyncio.get_running_loop().create_future()
        )

    @property
    def gone(self) -> bool:
        return self.left

    def write_response(
        self,
        request: HttpRequest,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]],
        content_type: str,
    ) -> None:
        if self.left or self.settled.done():
            return
        raw: list[tuple[bytes, bytes]] = []
        if status != 204:
            raw.append((b"content-type", content_type.encode("latin-1")))
            raw.append((b"content-length", str(len(body)).encode("latin-1")))
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers)
        self.settled.set_result((status, raw, b"" if self._head else body))

    def close(self) -> None:
        """Nothing to do: the ASGI server owns the connection and its keep-alive."""

    def accept_websocket(
        self, request: HttpRequest, max_size: int, high_water: int, stats: EngineStats
    ) -> AsgiWebSocket | None:
        if self.left or self.settled.done() or not request.upgrade:
            return None
        ws = AsgiWebSocket(max_size, high_water, stats)
        request.responded = True
        self.settled.set_result(ws)
        return ws


def _request(scope: Scope, connection: AsgiConnection, method: str) -> HttpRequest:
    """The engine's request for an ASGI scope."""
    request = HttpRequest(connection)
    request.method = method
    path = scope["path"]
    raw_path = scope.get("raw_path")
    request.path = path
    request.raw_path = raw_path.decode("latin-1") if raw_path else path
    request.query_string = scope.get("query_string", b"").decode("latin-1")
    request.query = parse_query(request.query_string)
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        request.add_header(key, header_value(key, value))
    return request


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int, timeout: float) -> bytes | None:
    """The request body (None: the client left); `_TooLarge`, or TimeoutError when a chunk
    takes longer than `timeout`."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await asyncio.wait_for(receive(), timeout)
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] not in ("http.disconnect", "websocket.disconnect"):
        pass


async def _settled(connection: AsgiConnection, receive: Receive) -> bool:
    """Wait for the engine's answer; False if the client left first (its request is then
    aborted: a long-poll GET, a handshake whose `allow_request` hook still runs)."""
    settled = connection.settled
    if settled.done():
        return True
    watch = asyncio.ensure_future(_until_disconnect(receive))
    try:
        await asyncio.wait((settled, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if settled.done():
        return True
    connection.left = True
    return False


async def _send_answer(send: Send, answer: _Answer) -> None:
    status, headers, body = answer
    with contextlib.suppress(OSError):  # the client left meanwhile
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _admit(engine: EngineServer, connection: AsgiConnection) -> _Answer | None:
    refusal = engine.admit(connection)
    if refusal is not None:
        status, body = refusal
        return status, [(b"content-type", b"text/plain; charset=UTF-8")], body
    connection.admitted = True
    return None


async def serve_http(engine: EngineServer, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ASGI `http` scope with `engine` (its Engine.IO path, else its fallback)."""
    method = scope.get("method", "GET")
    connection = AsgiConnection(_peer(scope), head=method == "HEAD")
    refused = _admit(engine, connection)
    if refused is not None:
        await _send_answer(send, refused)
        return
    try:
        request = _request(scope, connection, method)
        limit = engine.head_parsed(request)
        if not request.responded:
            length = request.headers.get("content-length")
            try:
                if length is not None and length.isdigit() and int(length) > limit:
                    raise _TooLarge
                body = await _read_body(receive, limit, engine.config.body_timeout)
            except _TooLarge:
                request.respond(413, b"Payload Too Large")
            except TimeoutError:
                logger.debug("request body from %s timed out", printable(request.client_address))
                request.respond(408, b"Request Timeout")
            else:
                if body is None:
                    connection.left = True
                    request.aborted()
                    return
                request.body = body
                try:
                    engine.handle_request(request)
                except Exception:
                    logger.exception(
                        "error handling %s %s", printable(request.method), printable(request.path)
                    )
                    request.respond(500, b"Internal Server Error")
        if not await _settled(connection, receive):
            request.aborted()
            return
        answer = connection.settled.result()
        assert isinstance(answer, tuple)
        await _send_answer(send, answer)
    finally:
        if connection.admitted:
            connection.admitted = False
            engine.release(connection)


async def serve_websocket(engine: EngineServer, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ASGI `websocket` scope with `engine` (a handshake or an upgrade)."""
    if (await receive())["type"] != "websocket.connect":
        return
    connection = AsgiConnection(_peer(scope))
    refused = _admit(engine, connection)
    if refused is not None:
        await _refuse_websocket(scope, send, refused)
        return
    try:
        request = _request(scope, connection, "GET")
        request.upgrade = True
        engine.head_parsed(request)
        if not request.responded:
            try:
                engine.handle_request(request)
            except Exception:
                logger.exception("error handling a websocket at %s", printable(request.path))
                request.respond(500, b"Internal Server Error")
        if not await _settled(connection, receive):
            return  # a hook still running finds the connection gone
        result = connection.settled.result()
        if isinstance(result, AsgiWebSocket):
            await result.run(receive, send)
        else:
            await _refuse_websocket(scope, send, result)
    finally:
        if connection.admitted:
            connection.admitted = False
            engine.release(connection)


async def _refuse_websocket(scope: Scope, send: Send, answer: _Answer) -> None:
    """Answer a websocket handshake with plain HTTP where the server can (the ASGI
    "websocket.http.response" extension), else close it (the server answers 403)."""
    status, headers, body = answer
    with contextlib.suppress(OSError):
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {"type": "websocket.http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


_ACCEPT = _Close(0, "")  # the first thing sent: the handshake's answer


class AsgiWebSocket:
    """An accepted ASGI websocket as the engine's `EngineSocket` (chunks are packets)."""

    __slots__ = (
        "_buffered",
        "_done",
        "_high_water",
        "_max_size",
        "_pending",
        "_stats",
        "_wake",
        "closed",
        "on_close",
        "on_message",
    )

    # Chunks are Engine.IO packets, sent as websocket messages by the ASGI server.
    framed = False

    def __init__(self, max_size: int, high_water: int, stats: EngineStats) -> None:
        self.on_message: MessageCallback = ignore_message
        self._stats = stats  # the engine's counters: bytes read are counted here
        self.on_close: CloseCallback = ignore_close
        self.closed = False
        self._max_size = max_size
        self._high_water = high_water
        self._pending: deque[WirePacket | _Close] = deque([_ACCEPT])
        self._buffered = 0  # size of the packets not yet handed to the ASGI server
        self._wake: asyncio.Future[None] | None = None
        # Done when the ASGI side is to return: closed and sent, aborted, or the client left.
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def congested(self) -> bool:
        return self._buffered > self._high_water

    def start(self) -> None:
        """Nothing to do: messages are read once `run` starts, after the callbacks are set."""

    def write(self, chunk: WirePacket) -> None:
        self.writelines([chunk])

    def writelines(self, chunks: list[WirePacket]) -> None:
        if self.closed:
            return
        self._pending.extend(chunks)
        for chunk in chunks:
            self._buffered += len(chunk)
        self._wake_writer()

    def buffered(self) -> int:
        return self._buffered

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed:
            return
        self._pending.append(_Close(code, reason))
        self._wake_writer()
        self._finish("forced close")

    def abort(self) -> None:
        if self.closed:
            return
        self._pending.clear()
        self._buffered = 0
        self._finish("transport error")
        self._end()

    def _wake_writer(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _finish(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        callback = self.on_close
        self.on_close = ignore_close
        self.on_message = ignore_message
        callback(reason)

    def _end(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    # -- the ASGI side ------------------------------------------------------------------
    async def run(self, receive: Receive, send: Send) -> None:
        """Send and receive until the websocket ends."""
        writer = asyncio.ensure_future(self._write(send))
        reader = asyncio.ensure_future(self._read(receive))
        try:
            await self._done
        finally:
            # Aborted (a slow consumer) or the client left: what is unsent is dropped.
            writer.cancel()
            reader.cancel()

    async def _write(self, send: Send) -> None:
        pending = self._pending
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not pending:
                    self._wake = loop.create_future()
                    await self._wake
                chunk = pending.popleft()
                if isinstance(chunk, str):
                    self._buffered -= len(chunk)
                    await send({"type": "websocket.send", "text": chunk})
                elif isinstance(chunk, bytes):
                    self._buffered -= len(chunk)
                    await send({"type": "websocket.send", "bytes": chunk})
                elif chunk is _ACCEPT:
                    await send({"type": "websocket.accept"})
                else:
                    await send(
                        {"type": "websocket.close", "code": chunk.code, "reason": chunk.reason}
                    )
                    return
        except OSError:  # the client left (uvicorn's ClientDisconnected is one)
            self._finish("transport close")
        finally:
            self._end()

    async def _read(self, receive: Receive) -> None:
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    data: str | bytes = text if text is not None else message.get("bytes") or b""
                    self._stats.bytes_received += len(data)
                    if self._too_large(data):
                        # As salas' server does: close with 1009, "message too big".
                        logger.debug("closing a websocket: a message over max_payload")
                        self._pending.append(_Close(1009, "message too big"))
                        self._wake_writer()
                        self._finish("transport error")
                        return
                    self.on_message(data)
                elif kind == "websocket.disconnect":
                    code = message.get("code", 1005)
                    self._finish("transport error" if code == 1009 else "transport close")
                    self._end()
                    return
        except OSError:
            self._finish("transport close")
            self._end()

    def _too_large(self, data: str | bytes) -> bool:
        size = len(data)
        if isinstance(data, str) and size * 4 > self._max_size:
            size = len(data.encode())  # counted in bytes, as on the wire
        return size > self._max_size
