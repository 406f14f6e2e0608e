"""HTTP/1.1 connections parsed by `httptools`, with deferred responses and upgrades.

A connection handles one request at a time (requests that arrive meanwhile wait in order),
because a long-polling GET may stay unanswered for up to a ping interval. A request asking
for a websocket upgrade hands the connection over to `salas.engine.websocket`.

Timeouts (`HttpTimeouts`): the client's turn is bounded, the server's is not. A request head
must be complete within `head` seconds of its first byte (of the connection's opening, for
the first request), a body must progress at least every `body` seconds, and a connection
with nothing in flight closes after `keep_alive` idle seconds. While the server holds a
request (a long-polling GET waits up to a ping interval) no timeout runs, nor after an
upgrade: the websocket's heartbeat takes over. One timer handle per connection, re-armed
lazily: a state change only records a deadline, and a timer that fires early re-arms.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import MappingProxyType
from typing import Protocol as TypingProtocol
from typing import cast
from urllib.parse import parse_qsl, unquote

import httptools

from salas.engine.logsafe import printable
from salas.engine.stats import EngineStats
from salas.engine.transport import Connection
from salas.engine.websocket import WebSocket

__all__ = [
    "Admission",
    "HttpConnection",
    "HttpRequest",
    "HttpTimeouts",
    "RequestHandler",
    "StreamHandler",
    "header_value",
    "parse_query",
]

logger = logging.getLogger("salas.engine")

# Bodies above this size are refused for routes that don't set their own bound.
DEFAULT_MAX_BODY = 1_000_000
_MAX_HEADER_BYTES = 64 * 1024
# Header names as sent, to their lower-case form: the same few names come with every
# request, and a session keeps its handshake's headers for life, so one string each is
# shared. Bounded: names a client makes up beyond it are decoded every time.
_HEADER_NAMES: dict[bytes, str] = {}
_HEADER_NAMES_KEPT = 512
# The same for the values of headers whose values repeat from one client to the next (the
# browser, the host, the upgrade), not those unique per request (keys, cookies, tokens).
_SHARED_VALUE_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "host",
        "origin",
        "pragma",
        "sec-ch-ua",
        "sec-ch-ua-mobile",
        "sec-ch-ua-platform",
        "sec-fetch-dest",
        "sec-fetch-mode",
        "sec-fetch-site",
        "sec-websocket-extensions",
        "sec-websocket-version",
        "upgrade",
        "user-agent",
        "x-forwarded-proto",
    }
)
_HEADER_VALUES: dict[bytes, str] = {}
_HEADER_VALUES_KEPT = 1024
_HEADER_VALUE_MAX = 512
# Request targets and query strings longer than this are parsed every time rather than
# remembered.
_QUERY_CACHED_MAX = 256
_URL_CACHED_MAX = 256
# The methods' names as sent, to one string each.
_METHODS = {
    name.encode(): name
    for name in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE")
}
# The path parameters of a request no route with parameters matched: read-only, shared.
_NO_PARAMS: Mapping[str, str] = MappingProxyType({})


def header_value(name: str, value: bytes) -> str:
    """A header's value as text (latin-1), shared with earlier requests where it repeats.

    `name` is the lower-case header name. Bounded like the header names: values past the
    table's size, or long ones, are decoded every time.
    """
    if name not in _SHARED_VALUE_HEADERS or len(value) > _HEADER_VALUE_MAX:
        return value.decode("latin-1")
    text = _HEADER_VALUES.get(value)
    if text is None:
        text = value.decode("latin-1")
        if len(_HEADER_VALUES) < _HEADER_VALUES_KEPT:
            _HEADER_VALUES[bytes(value)] = text
    return text


def parse_query(query_string: str) -> dict[str, str]:
    """The query's parameters (the last of a repeated name wins; blank values kept).

    Each request gets a dict of its own; the strings in it are shared with earlier requests
    that sent the same query (every websocket client of the official library sends
    ``EIO=4&transport=websocket``), and a session keeps its handshake's for life.
    """
    if not query_string:
        return {}
    if len(query_string) > _QUERY_CACHED_MAX:
        return dict(parse_qsl(query_string, keep_blank_values=True))
    return dict(_query_pairs(query_string))


@functools.lru_cache(maxsize=256)
def _query_pairs(query_string: str) -> tuple[tuple[str, str], ...]:
    return tuple(parse_qsl(query_string, keep_blank_values=True))


def _split_target(target: str) -> tuple[str, str, str]:
    """(raw path, percent-decoded path, query string) of a request target, the strings
    shared with earlier requests for the same target when it is short."""
    if len(target) > _URL_CACHED_MAX:
        return _split_target_now(target)
    return _split_target_cached(target)


def _split_target_now(target: str) -> tuple[str, str, str]:
    parsed = httptools.parse_url(target.encode("latin-1"))
    raw_path = (parsed.path or b"/").decode("latin-1")
    # Percent-decoded, so that static files with spaces or non-ASCII names are found;
    # static lookups resolve the result and refuse anything outside their folder.
    path = unquote(raw_path, errors="replace")
    return raw_path, path, (parsed.query or b"").decode("latin-1")


_split_target_cached = functools.lru_cache(maxsize=256)(_split_target_now)


# A refused connection reads (and drops) what its client sends for this long after the
# answer, so that closing with unread data does not reset the answer away before it is read.
_LINGER = 1.0


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    """Seconds the client has for a request head, for each step of a body, and between
    requests on a kept-alive connection (see the module)."""

    head: float = 10.0
    body: float = 10.0
    keep_alive: float = 5.0


class Admission(TypingProtocol):
    """Decides, when a connection is accepted, whether it may stay.

    `admit` returns None to accept, or (status, body) to answer and close it; `release` is
    called when an admitted connection closes."""

    def admit(self, connection: HttpConnection) -> tuple[int, bytes] | None: ...
    def release(self, connection: HttpConnection) -> None: ...


class StreamHandler(TypingProtocol):
    """What takes over a connection after an upgrade (a websocket)."""

    def data_received(self, data: bytes) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...


class HttpRequest:
    """One parsed request; answer it with `respond` (now or later)."""

    __slots__ = (
        "_on_abort",
        "_raw_headers",
        "body",
        "client_address",
        "connection",
        "headers",
        "keep_alive",
        "method",
        "path",
        "path_params",
        "query",
        "query_string",
        "raw_path",
        "responded",
        "upgrade",
        "upgrade_tail",
    )

    def __init__(self, connection: Connection) -> None:
        # salas' own HTTP/1.1 connection, or an ASGI request (`salas.engine.asgi`).
        self.connection = connection
        self.method = ""
        self.path = ""
        # The path as sent, before percent-decoding (a router splits it into segments
        # before decoding them, so that "%2F" stays inside one).
        self.raw_path = ""
        # What a route's "{name}" segments matched (set by the router).
        self.path_params: Mapping[str, str] = _NO_PARAMS
        self.query_string = ""
        self.query: dict[str, str] = {}
        self.headers: dict[str, str] = {}
        # The headers as sent, kept only once a name repeats: until then they are
        # `headers`' items (see `raw_headers`). A session keeps its handshake request.
        self._raw_headers: list[tuple[str, str]] | None = None
        self.body = b""
        self.upgrade = False
        self.keep_alive = True
        self.upgrade_tail = b""
        self.responded = False
        self._on_abort: Callable[[], None] | None = None
        # The client's address: the peer's, or the one a trusted proxy forwarded (set by the
        # server once the head is in; see salas.engine.forwarded).
        self.client_address = connection.peer_address

    @property
    def raw_headers(self) -> list[tuple[str, str]]:
        """Every header as sent, in order, as (lower-case name, value) pairs.

        Unlike `headers`, a repeated header is one pair per line. A copy: changing it
        changes nothing.
        """
        raw = self._raw_headers
        return list(self.headers.items()) if raw is None else list(raw)

    def add_header(self, name: str, value: str) -> None:
        """Record a header line of the request (called by the parser).

        Args:
            name: The header's name, lower-case.
            value: Its value.
        """
        headers = self.headers
        raw = self._raw_headers
        if name in headers:
            if raw is None:
                # The first repeat: until now the lines were exactly `headers`, in order.
                raw = self._raw_headers = list(headers.items())
            headers[name] = f"{headers[name]}, {value}"
        else:
            headers[name] = value
        if raw is not None:
            raw.append((name, value))

    @property
    def remote_address(self) -> str:
        """The peer's IP address: the client's, or a proxy's ("" if unknown)."""
        return self.connection.peer_address

    def on_abort(self, callback: Callable[[], None] | None) -> None:
        """Call `callback` if the client goes away before this request is answered."""
        self._on_abort = callback

    def aborted(self) -> None:
        """The client went away before the answer: run the `on_abort` callback, once."""
        abort = self._on_abort
        self._on_abort = None
        if abort is not None and not self.responded:
            abort()

    def respond(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        content_type: str = "text/plain; charset=UTF-8",
    ) -> None:
        """Send the response; only the first call counts, later ones do nothing.

        Args:
            status: The HTTP status code.
            body: The body (default empty; not sent to a HEAD request).
            headers: Extra headers as (name, value) pairs.
            content_type: The ``Content-Type`` (default plain UTF-8 text).
        """
        if self.responded:
            return
        self.responded = True
        self._on_abort = None
        self.connection.write_response(self, status, body, headers or [], content_type)


class RequestHandler(TypingProtocol):
    def __call__(self, request: HttpRequest) -> None: ...


class HttpConnection(asyncio.Protocol):
    """asyncio protocol for one TCP connection speaking HTTP/1.1."""

    # Slots: a websocket keeps its connection object for life, thousands of them at once.
    __slots__ = (
        "_admission",
        "_body_limit",
        "_body_parts",
        "_body_size",
        "_closing",
        "_current",
        "_handler",
        "_head_parsed",
        "_head_since",
        "_header_bytes",
        "_idle_since",
        "_in_body",
        "_loop",
        "_on_lost",
        "_parser",
        "_paused_reading",
        "_progress",
        "_refused",
        "_request",
        "_served",
        "_stream",
        "_timeouts",
        "_timer",
        "_timer_at",
        "_waiting",
        "admitted",
        "counted_as",
        "peer_address",
        "prefill",
        "transport",
    )

    def __init__(
        self,
        handler: RequestHandler,
        head_parsed: Callable[[HttpRequest], int],
        on_lost: Callable[[HttpConnection], None] | None = None,
        timeouts: HttpTimeouts | None = None,
        admission: Admission | None = None,
    ) -> None:
        self._handler = handler
        self._on_lost = on_lost
        self._timeouts = timeouts or HttpTimeouts()
        self._admission = admission
        # Set by the admission: the address this connection is counted under, if any.
        self.counted_as: str | None = None
        self.admitted = False
        self.peer_address = ""
        # Called once a request's head is parsed, before its body: returns the body's size
        # limit, and may answer the request at once (it is then not handled again).
        self._head_parsed = head_parsed
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._request: HttpRequest | None = None  # being parsed
        # Parsed, not yet handled (a list: more than one only when requests are pipelined).
        self._waiting: list[HttpRequest] = []
        self._current: HttpRequest | None = None  # handled, not yet answered
        self._header_bytes = 0
        self._body_limit = DEFAULT_MAX_BODY
        # The body's parts so far: made by its first part (most requests have none).
        self._body_parts: list[bytes] | None = None
        self._body_size = 0
        self._stream: StreamHandler | None = None
        self._closing = False
        self._paused_reading = False
        self._refused = False
        # Timeouts: one timer handle, armed at `_timer_at`; the deadline itself is computed
        # from the state below whenever the timer fires (see `_deadline`).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._idle_since = 0.0  # when the connection last had nothing in flight
        self._head_since = 0.0  # when the head being parsed began (see on_message_begin)
        self._progress = 0.0  # when the body being parsed last grew
        self._in_body = False
        self._served = False  # a request of this connection was complete
        # Bytes read from the socket before it came here (`EngineServer.adopt`), parsed
        # first, once the connection is made.
        self.prefill = b""

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        # Interned: one string for the many connections from one address (a proxy, a NAT).
        self.peer_address = sys.intern(str(peer[0])) if peer else ""
        self._loop = asyncio.get_running_loop()
        self._idle_since = self._loop.time()
        if self._admission is not None:
            refusal = self._admission.admit(self)
            if refusal is not None:
                self._refuse(*refusal)
                return
            self.admitted = True
        self._rearm()
        if self.prefill:
            prefill, self.prefill = self.prefill, b""
            self.data_received(prefill)

    def data_received(self, data: bytes) -> None:
        if self._stream is not None:
            self._stream.data_received(data)
            return
        if self._refused or self._parser is None:
            return  # dropped: the answer has been sent
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0]
            if self._waiting and self._waiting[-1].upgrade:
                self._waiting[-1].upgrade_tail = data[offset:]
        except (httptools.HttpParserError, _BodyTooLarge) as exc:
            # httptools re-raises a callback's exception as HttpParserCallbackError with the
            # original as its context.
            if isinstance(exc, _BodyTooLarge) or isinstance(exc.__context__, _BodyTooLarge):
                self._reject(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"Payload Too Large")
            else:
                self._reject(HTTPStatus.BAD_REQUEST, b"Bad Request")
            return
        self._handle_next()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._cancel_timer()
        if self.admitted:
            self.admitted = False
            assert self._admission is not None
            self._admission.release(self)
        if self._on_lost is not None:
            self._on_lost(self)
        if self._stream is not None:
            self._stream.connection_lost(exc)
            return
        current = self._current
        if current is not None and not current.responded:
            abort = current._on_abort
            current._on_abort = None
            if abort is not None:
                abort()

    def pause_writing(self) -> None:
        if self._stream is not None:
            self._stream.pause_writing()

    def resume_writing(self) -> None:
        if self._stream is not None:
            self._stream.resume_writing()

    # -- httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        self._request = HttpRequest(self)
        self._in_body = False
        # The first request's head is timed from the connection's opening: a client that
        # connects and waits gains nothing by sending its first byte late.
        if self._served or self._current is not None or self._waiting:
            assert self._loop is not None
            self._head_since = self._loop.time()
        else:
            self._head_since = self._idle_since
        self._header_bytes = 0
        self._body_parts = None
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        assert self._request is not None
        self._header_bytes += len(url)
        if self._header_bytes > _MAX_HEADER_BYTES:
            raise httptools.HttpParserError("request line too long")
        self._request.path += url.decode("latin-1")  # may arrive in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._request is not None
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > _MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")
        key = _HEADER_NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_HEADER_NAMES) < _HEADER_NAMES_KEPT:
                _HEADER_NAMES[bytes(name)] = key
        self._request.add_header(key, header_value(key, value))

    def on_headers_complete(self) -> None:
        request = self._request
        parser = self._parser
        assert request is not None and parser is not None
        method = parser.get_method()
        request.method = _METHODS.get(method) or method.decode("ascii", "replace")
        # (`path` holds the request target as sent until here.)
        request.raw_path, request.path, request.query_string = _split_target(request.path)
        request.query = parse_query(request.query_string)
        request.upgrade = bool(parser.should_upgrade())
        # Read now: llhttp resets this flag once the message is complete.
        request.keep_alive = bool(parser.should_keep_alive())
        self._body_limit = self._head_parsed(request)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._body_limit:
            raise _BodyTooLarge
        self._in_body = True
        assert self._loop is not None
        self._progress = self._loop.time()

    def on_body(self, body: bytes) -> None:
        assert self._loop is not None
        self._progress = self._loop.time()
        self._body_size += len(body)
        if self._body_size > self._body_limit:
            raise _BodyTooLarge
        parts = self._body_parts
        if parts is None:
            parts = self._body_parts = []
        parts.append(body)

    def on_message_complete(self) -> None:
        request = self._request
        assert request is not None
        parts = self._body_parts
        if parts is not None:
            request.body = b"".join(parts)
            self._body_parts = None
        self._request = None
        self._in_body = False
        self._served = True
        self._waiting.append(request)
        # Stop reading from a client that sends requests faster than we answer them.
        if len(self._waiting) > 8 and self.transport is not None and not self._paused_reading:
            self._paused_reading = True
            self.transport.pause_reading()

    # -- handling and answering -------------------------------------------------------
    def _handle_next(self) -> None:
        while self._current is None and self._waiting and not self._closing:
            request = self._waiting.pop(0)
            if request.responded:
                continue  # answered when its head arrived
            self._current = request
            if self._paused_reading and len(self._waiting) <= 8 and self.transport is not None:
                self._paused_reading = False
                self.transport.resume_reading()
            try:
                self._handler(request)
            except Exception:
                logger.exception(
                    "error handling %s %s", printable(request.method), printable(request.path)
                )
                request.respond(HTTPStatus.INTERNAL_SERVER_ERROR, b"Internal Server Error")
            if request.upgrade and self._stream is not None:
                return
        self._rearm()

    def write_response(
        self,
        request: HttpRequest,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]],
        content_type: str,
    ) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        keep_alive = request.keep_alive and not request.upgrade
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        lines = [f"HTTP/1.1 {status} {reason}"]
        if status != HTTPStatus.NO_CONTENT:
            lines.append(f"Content-Type: {content_type}")
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{k}: {v}" for k, v in headers)
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        transport.write(head + body if request.method != "HEAD" else head)
        if request is self._current:
            self._current = None
        if not keep_alive:
            self._closing = True
            transport.close()
            return
        if self._waiting:
            # Answering may happen inside another connection's callback; handle the next
            # request of this one on its own turn of the loop.
            asyncio.get_running_loop().call_soon(self._handle_next)
        elif self._current is None and self._loop is not None:
            self._idle_since = self._loop.time()
            self._rearm()

    def close(self) -> None:
        """Close the connection once what was written has gone out."""
        self._closing = True
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    @property
    def gone(self) -> bool:
        """Whether the connection is closed or closing."""
        return self.transport is None or self.transport.is_closing()

    def accept_websocket(
        self, request: HttpRequest, max_size: int, high_water: int, stats: EngineStats
    ) -> WebSocket | None:
        """Answer the upgrade `request`: the websocket, or None (invalid, connection closed)."""
        ws = WebSocket(request, max_size, high_water, stats)
        return ws if ws.accept(request) else None

    def take_over(self, stream: StreamHandler) -> None:
        """Hand every further byte of this connection to `stream` (after an upgrade)."""
        self._stream = stream
        self._current = None
        self._waiting.clear()
        self._cancel_timer()
        # No more HTTP on this connection: the parser (and the reference cycle it makes
        # with this object) goes now rather than when the connection ends, and the times
        # its timeouts were computed from (a float object each) with it.
        self._parser = None
        self._request = None
        self._idle_since = self._head_since = self._progress = self._timer_at = 0.0

    # -- timeouts ---------------------------------------------------------------------
    def _deadline(self) -> float | None:
        """When the client's current turn runs out; None while it is the server's turn."""
        if self._stream is not None or self._closing:
            return None
        timeouts = self._timeouts
        if self._request is not None:
            if self._in_body:
                return self._progress + timeouts.body
            return self._head_since + timeouts.head
        if self._current is not None or self._waiting:
            return None  # the server holds a request (a long poll): no limit here
        return self._idle_since + (timeouts.keep_alive if self._served else timeouts.head)

    def _rearm(self) -> None:
        """Make sure the timer fires no later than the current deadline."""
        deadline = self._deadline()
        if deadline is None:
            return  # a timer still armed finds nothing due and lapses
        timer = self._timer
        if timer is not None:
            if self._timer_at <= deadline:
                return  # it fires first and re-arms for the rest
            timer.cancel()
        assert self._loop is not None
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline()
        if deadline is None:
            return
        assert self._loop is not None
        if self._loop.time() < deadline:
            self._rearm()
            return
        if self._request is not None:
            logger.debug(
                "closing HTTP connection from %s: request %s timed out",
                printable(self.peer_address),
                "body" if self._in_body else "head",
            )
            self._reject(HTTPStatus.REQUEST_TIMEOUT, b"Request Timeout")
        else:
            self.close()  # idle: nothing to answer

    # -- refusals ---------------------------------------------------------------------
    def _refuse(self, status: int, body: bytes) -> None:
        """Answer a connection refused at accept, then close it after a short linger."""
        transport = self.transport
        assert transport is not None and self._loop is not None
        self._refused = True
        self._closing = True
        reason = HTTPStatus(status).phrase
        transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
            + body
        )
        if transport.can_write_eof():
            # The answer and a FIN now; what the client still sends is read and dropped
            # until it closes or the linger ends.
            transport.write_eof()
            self._timer = self._loop.call_later(_LINGER, transport.close)
        else:
            transport.close()

    def _reject(self, status: int, body: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        reason = HTTPStatus(status).phrase
        transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
            + body
        )
        self._closing = True
        transport.close()
        current = self._current
        if current is not None and current._on_abort is not None:
            abort = current._on_abort
            current._on_abort = None
            abort()


class _BodyTooLarge(Exception):
    pass
