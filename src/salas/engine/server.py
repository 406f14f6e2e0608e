"""The Engine.IO server: routes HTTP requests under its path to sessions.

Usable on its own like Node's `engine.io` package: give it `on_connection` and read each
session's `on_message` / `on_close`. Requests outside its path go to `fallback` (any
callable taking the request: `salas.http.Router` serves static files, health checks and the
application's pages). `allow_request` checks each handshake before a session is opened.

A connection accepted by another process (the parent of `salas serve --workers`, which
passes the socket over) is served through `adopt`, with the bytes already read from it.
Sids then start with `sid_prefix` (the worker's own), so that the parent knows where each
request carrying one belongs; `misrouted` gets a request whose sid is unknown here, before
the standard "Session ID unknown" answer.

Before any of that: connections over the limits (`salas.engine.limits`) are refused at
accept, requests under the path whose `Origin` is not allowed (`salas.engine.cors`) get 403,
and each request's `client_address` is set (`salas.engine.forwarded`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Callable

import orjson

from salas.engine.budget import InboundStats
from salas.engine.config import EngineConfig
from salas.engine.cors import cors_headers, origin_allowed, preflight_headers
from salas.engine.errors import EngineErrorCode, error_body
from salas.engine.forwarded import TrustedProxies
from salas.engine.http import (
    DEFAULT_MAX_BODY,
    HttpConnection,
    HttpRequest,
    HttpTimeouts,
    RequestHandler,
)
from salas.engine.limits import ConnectionLimits
from salas.engine.logsafe import printable
from salas.engine.scheduler import FlushScheduler
from salas.engine.session import EngineSession
from salas.engine.stats import EngineStats
from salas.engine.timers import TimerWheel
from salas.engine.transport import Connection

__all__ = ["EngineServer", "HandshakeCheck"]

logger = logging.getLogger("salas.engine")

# Seconds between two log lines about refused connections.
_REFUSAL_LOG_INTERVAL = 10.0


# `check(request, verdict)`: decide, now or later, whether a handshake may open a session by
# calling `verdict(True, None)`, or `verdict(False, message)` to refuse it with 403
# (`message`, or None for the standard "Forbidden").
HandshakeCheck = Callable[[HttpRequest, Callable[[bool, str | None], None]], None]


def _not_found(request: HttpRequest) -> None:
    request.respond(404, b"Not Found")


class EngineServer:
    """Engine.IO sessions over asyncio, on the path `config.path`."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        on_connection: Callable[[EngineSession], None] | None = None,
        fallback: RequestHandler = _not_found,
        allow_request: HandshakeCheck | None = None,
        sid_prefix: str = "",
    ) -> None:
        self.config = config or EngineConfig()
        # Every sid this server makes starts with it (see the module).
        self.sid_prefix = sid_prefix
        # Called with a request whose sid names no session here; True: it took the request
        # over (answered it, or handed the connection on), else the standard error follows.
        self.misrouted: Callable[[HttpRequest], bool] | None = None
        self._adopting: set[asyncio.Task[object]] = set()
        self.on_connection = on_connection or (lambda session: None)
        self.fallback = fallback
        self.allow_request = allow_request
        self.sessions: dict[str, EngineSession] = {}
        self.inbound_stats = InboundStats()  # what the sessions' inbound budgets refused
        self.stats = EngineStats()  # packets and bytes each way, slow consumers, Origin refusals
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: FlushScheduler | None = None
        self._heartbeats: tuple[TimerWheel[EngineSession], TimerWheel[EngineSession]] | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[HttpConnection] = set()
        self._callbacks: (
            tuple[
                RequestHandler,
                Callable[[HttpRequest], int],
                Callable[[HttpConnection], None],
            ]
            | None
        ) = None
        self._closed = False
        config = self.config
        self._timeouts = HttpTimeouts(
            config.head_timeout, config.body_timeout, config.keep_alive_timeout
        )
        self.limits = ConnectionLimits(config.max_connections, config.max_connections_per_ip)
        self.proxies = TrustedProxies(config.forwarded_allow_ips)
        self._refused = 0  # refusals since the last one logged
        self._refusal_logged_at = float("-inf")
        self._handshake_template = {
            "pingInterval": round(self.config.ping_interval * 1000),
            "pingTimeout": round(self.config.ping_timeout * 1000),
            "maxPayload": self.config.max_payload,
        }

    # -- loop-bound state -------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def scheduler(self) -> FlushScheduler:
        if self._scheduler is None:
            self._scheduler = FlushScheduler(self.loop, self.config.write_interval)
        return self._scheduler

    @property
    def heartbeats(self) -> tuple[TimerWheel[EngineSession], TimerWheel[EngineSession]]:
        """The sessions' heartbeat timeouts: next ping due, and answer to a ping due."""
        if self._heartbeats is None:
            loop = self.loop
            config = self.config
            self._heartbeats = (
                TimerWheel(loop, config.ping_interval, EngineSession.ping),
                TimerWheel(loop, config.ping_timeout, EngineSession.ping_timed_out),
            )
        return self._heartbeats

    # -- listening --------------------------------------------------------------------
    def protocol_factory(self) -> HttpConnection:
        callbacks = self._callbacks
        if callbacks is None:
            # Bound once, not per connection: a connection keeps them for life (~200 bytes).
            callbacks = self._callbacks = (
                self.handle_request,
                self.head_parsed,
                self._connections.discard,
            )
        handle, head_parsed, lost = callbacks
        connection = HttpConnection(handle, head_parsed, lost, self._timeouts, self)
        self._connections.add(connection)
        return connection

    async def listen(self, host: str, port: int) -> int:
        """Start accepting connections; returns the bound port (useful with port 0)."""
        loop = self.loop
        self._server = await loop.create_server(
            self.protocol_factory, host, port, backlog=4096, reuse_address=True
        )
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else port

    def adopt(self, sock: socket.socket, initial: bytes = b"") -> None:
        """Serve `sock`, a connection accepted elsewhere, as if accepted here; `initial`: the
        bytes already read from it, parsed before anything the socket still holds.

        Admission (connection limits) applies as at accept. Closes `sock` when closed."""
        if self._closed:
            sock.close()
            return
        sock.setblocking(False)

        def factory() -> HttpConnection:
            connection = self.protocol_factory()
            connection.prefill = initial
            return connection

        task: asyncio.Task[object] = self.loop.create_task(
            self.loop.connect_accepted_socket(factory, sock)
        )
        self._adopting.add(task)
        task.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Task[object]) -> None:
        self._adopting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("could not serve a connection handed over: %s", task.exception())

    async def close(self) -> None:
        """Stop accepting, close every session and connection, then the listening socket."""
        self._closed = True
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions.values()):
            session.close("server shutting down")
        # Keep-alive connections would otherwise go on serving requests (and opening new
        # sessions) on a server that has stopped.
        for connection in list(self._connections):
            connection.close()
        self._connections.clear()
        if self._heartbeats is not None:
            for wheel in self._heartbeats:
                wheel.close()
        if self._scheduler is not None:
            self._scheduler.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- admission (salas.engine.http.Admission) ---------------------------------------
    def admit(self, connection: Connection) -> tuple[int, bytes] | None:
        """Count a new connection, or the answer that refuses it (503 full, 429 address)."""
        peer = connection.peer_address
        # A trusted proxy's connections carry many clients: they count in the total only,
        # and each is attributed to its client once a request names it (`_head_parsed`).
        address = None if self.proxies and self.proxies.trusts(peer) else peer
        status = self.limits.acquire(address)
        if status is None:
            connection.counted_as = address
            return None
        if status == 503:
            self._log_refusal("%d connections open (max_connections)", self.limits.total)
            return status, b"Server full: too many open connections\n"
        self._log_refusal(
            "%d connections open from %s (max_connections_per_ip)",
            self.limits.count(peer),
            printable(peer),
        )
        return status, b"Too many open connections from this address\n"

    def _log_refusal(self, why: str, *args: object) -> None:
        """Log a refused connection, at most once per `_REFUSAL_LOG_INTERVAL` (a flood of
        refusals must not become a flood of log lines)."""
        self._refused += 1
        now = self.loop.time()
        if now - self._refusal_logged_at < _REFUSAL_LOG_INTERVAL:
            return
        logger.warning("refusing connections: " + why + " (%d refused)", *args, self._refused)
        self._refusal_logged_at = now
        self._refused = 0

    def release(self, connection: Connection) -> None:
        """An admitted connection has closed."""
        self.limits.release(connection.counted_as)

    # -- routing ----------------------------------------------------------------------
    def head_parsed(self, request: HttpRequest) -> int:
        """A request's head is in: its body limit (it may be answered at once: a second
        concurrent POST of a session, a forwarded client over its connection limit).

        Sets `request.client_address` when the peer is a trusted proxy."""
        connection = request.connection
        if self.proxies and self.proxies.trusts(connection.peer_address):
            client = self.proxies.client_address(
                connection.peer_address, request.headers.get("x-forwarded-for")
            )
            request.client_address = client
            if connection.admitted and not self.limits.reattribute(connection.counted_as, client):
                self._log_refusal(
                    "%d connections open from %s, forwarded (max_connections_per_ip)",
                    self.limits.count(client),
                    printable(client),
                )
                request.keep_alive = False
                request.respond(429, b"Too many open connections from this address\n")
                return DEFAULT_MAX_BODY
            connection.counted_as = client
        if not self._is_engine_path(request.path):
            return DEFAULT_MAX_BODY
        if request.method == "POST":
            session = self.sessions.get(request.query.get("sid", ""))
            if session is not None and not session.begin_post(request):
                # The spec: a POST while another is in progress gets 400 and ends the session.
                request.respond(400, b"", self.cors(request))
                session.close("transport error")
        return self.config.max_payload

    def _is_engine_path(self, path: str) -> bool:
        engine_path = self.config.path
        return path == engine_path or path == engine_path[:-1]

    def cors(self, request: HttpRequest) -> list[tuple[str, str]]:
        return cors_headers(self.config.cors, request)

    def handle_request(self, request: HttpRequest) -> None:
        if self._closed:
            request.respond(503, b"Service Unavailable", [("Connection", "close")])
            request.connection.close()
            return
        if not self._is_engine_path(request.path):
            self.fallback(request)
            return
        if request.method == "OPTIONS":
            request.respond(204, b"", preflight_headers(self.config.cors, request))
            return
        if not origin_allowed(self.config.cors, request, self._forwarded_host(request)):
            # A page of another site must not drive a visitor's browser into a session
            # (cross-site websocket hijacking; polling too).
            logger.debug(
                "refusing a request from origin %s (not allowed; see cors_origins)",
                printable(request.headers.get("origin", "")),
            )
            self.stats.origin_refused += 1
            self._error(request, EngineErrorCode.FORBIDDEN, "Origin not allowed")
            return
        query = request.query
        if query.get("EIO") != "4":
            self._error(request, EngineErrorCode.UNSUPPORTED_PROTOCOL_VERSION)
            return
        transport = query.get("transport")
        if transport not in self.config.transports:
            self._error(request, EngineErrorCode.UNKNOWN_TRANSPORT)
            return
        sid = query.get("sid")
        if sid is None:
            self._handshake(request, transport)
            return
        session = self.sessions.get(sid)
        if session is None:
            misrouted = self.misrouted
            if misrouted is None or not misrouted(request):
                self._error(request, EngineErrorCode.UNKNOWN_SID)
            return
        if transport == "websocket":
            if not request.upgrade:
                self._error(request, EngineErrorCode.BAD_REQUEST)
                return
            ws = request.connection.accept_websocket(
                request, self.config.max_payload, self.config.volatile_buffer, self.stats
            )
            if ws is None:
                return
            if session.transport != "polling" or session.is_upgrading():
                # The spec: "A client MUST NOT open more than one WebSocket connection per
                # session. Should it happen, the server MUST close the WebSocket connection."
                # Opened, then closed (as Node does): the session keeps its own websocket.
                ws.close()
                return
            session.probe_websocket(ws)
            ws.start()
            return
        if session.transport != "polling":
            self._error(request, EngineErrorCode.BAD_REQUEST)
            return
        if request.method == "GET":
            session.handle_poll(request)
        elif request.method == "POST":
            session.handle_post(request)
        else:
            self._error(request, EngineErrorCode.BAD_REQUEST)

    def _handshake(self, request: HttpRequest, transport: str) -> None:
        if request.method != "GET":
            self._error(request, EngineErrorCode.BAD_HANDSHAKE_METHOD)
            return
        if transport == "websocket" and not request.upgrade:
            self._error(request, EngineErrorCode.BAD_REQUEST)
            return
        check = self.allow_request
        if check is None:
            self._open(request, transport)
            return

        def verdict(allowed: bool, message: str | None) -> None:
            if allowed:
                self._open(request, transport)
            else:
                self._error(request, EngineErrorCode.FORBIDDEN, message)

        check(request, verdict)

    def _open(self, request: HttpRequest, transport: str) -> None:
        """Open a session for a handshake that passed every check."""
        if request.responded or request.connection.gone:
            return  # the client left while the check ran
        if self._closed:
            request.respond(503, b"Service Unavailable", [("Connection", "close")])
            request.connection.close()
            return
        sid = self.sid_prefix + secrets.token_urlsafe(15)
        session = EngineSession(self, sid, request)
        upgrades = (
            ["websocket"]
            if transport == "polling" and "websocket" in self.config.transports
            else []
        )
        open_packet = (
            "0"
            + orjson.dumps({"sid": sid, "upgrades": upgrades, **self._handshake_template}).decode()
        )
        if transport == "websocket":
            ws = request.connection.accept_websocket(
                request, self.config.max_payload, self.config.volatile_buffer, self.stats
            )
            if ws is None:
                return
            self.sessions[sid] = session
            session.attach_websocket(ws)
            session.send(open_packet)
        else:
            self.sessions[sid] = session
            request.respond(200, open_packet.encode(), self.cors(request))
        session.start_heartbeat()
        try:
            self.on_connection(session)
        except Exception:
            logger.exception("error in connection callback for session %s", sid)
            session.close("server error")
            return
        if transport == "websocket":
            session.start_transport()

    def _forwarded_host(self, request: HttpRequest) -> str | None:
        """The `X-Forwarded-Host` a trusted proxy sent (the Host the browser used), if any."""
        if not self.proxies or not self.proxies.trusts(request.connection.peer_address):
            return None
        forwarded = request.headers.get("x-forwarded-host")
        return forwarded.split(",")[0].strip() if forwarded else None

    def _error(
        self, request: HttpRequest, code: EngineErrorCode, message: str | None = None
    ) -> None:
        status, body = error_body(code, message)
        request.respond(status, body, self.cors(request), "application/json")
        if request.upgrade:
            request.connection.close()

    def forget(self, session: EngineSession) -> None:
        """Called by a session when it closes."""
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]
