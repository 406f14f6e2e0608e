"""The official Socket.IO Admin UI (``@socket.io/admin-ui``) for a salas server.

``instrument(io, auth=...)`` adds the namespace the dashboard connects to (``/admin`` by
default) and speaks its protocol, as the Node package's ``instrument`` and python-socketio's
do: on connection the dashboard gets ``config`` (the features it may offer) and, in
development mode, ``all_sockets``; then ``server_stats`` every 2 seconds, and, in development
mode, ``socket_connected``, ``socket_updated`` (a polling socket that upgraded),
``socket_disconnected``, ``room_joined``, ``room_left``, ``event_received`` and
``event_sent`` as they happen. Unless ``read_only``, it may ask for the actions ``emit``,
``join``, ``leave`` and ``_disconnect``, on one socket or on every socket of a namespace or
room.

Login: the dashboard sends ``{"username", "password"}`` as its Socket.IO auth; a match gets a
session id (event ``session``) that the dashboard presents instead when it reconnects or is
reloaded (valid 24 hours, in this process). The password may be given in plain text
(compared in constant time) or, as the Node package requires, as a bcrypt hash
(``$2b$...``; needs the ``admin`` extra: ``pip install 'salas[admin]'``). Failed logins are
limited per client address (10 a minute); past that every attempt from the address is
refused until the minute is over.

Browsers: the dashboard is usually served from another origin (https://admin.socket.io, or
the package's ``ui/dist`` served anywhere), and its client sends credentials: the server's
``cors_origins`` must list that origin and ``cors_credentials`` be True (``salas serve
--admin-ui`` turns credentials on when ``--cors-origins`` lists origins; with ``*``, tick
the dashboard's "WebSocket only" option, which needs no CORS).

How it watches: through :meth:`Server.add_observer <salas.server.Server.add_observer>`
(connections, sockets, rooms) and each socket's ``on_any``/``on_any_outgoing``; nothing on the
broadcast path. Broadcasts (``io.to(room).emit``) are not listed as ``event_sent`` (as with
the Node server; they are encoded once, not per recipient). What the dashboard shows is this
process's sockets; with several processes, connect it to each (``server_stats`` names the
process by ``server_id``). The packet and byte counts of the Node server's histogram are not
sent (salas counts them for ``--metrics``, not per event).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import os
import secrets
import socket as socketlib
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from salas._extras import extra_needed
from salas.engine import EngineSession
from salas.protocol.outgoing import EncodedMessage
from salas.server.broadcast import event_packet
from salas.server.errors import ConnectionRefused
from salas.server.namespace import Namespace
from salas.server.observers import ServerObserver
from salas.server.server import Server
from salas.server.socket import Socket

__all__ = ["AdminAuth", "AdminUI", "instrument", "parse_credentials"]

logger = logging.getLogger("salas.admin")

# A callable deciding on the dashboard's auth object, or {"username", "password"}, or False.
AdminAuth = Literal[False] | Mapping[str, str] | Callable[[dict[str, Any]], bool | Awaitable[bool]]

INVALID_CREDENTIALS = "invalid credentials"  # the dashboard shows its own text for this one
TOO_MANY_ATTEMPTS = "too many failed logins, try again later"
STATS_INTERVAL = 2.0  # seconds between server_stats, as the Node server
SESSION_TTL = 24 * 3600.0  # a dashboard session id's lifetime
MAX_SESSIONS = 1000  # session ids kept; the oldest goes first
MAX_FAILURES = 10  # failed logins per address within FAILURE_WINDOW
FAILURE_WINDOW = 60.0
MAX_TRACKED_ADDRESSES = 10_000
MAX_CREDENTIAL_LENGTH = 1024  # characters of a username or password looked at
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
_HIDDEN_HEADERS = frozenset({"cookie", "authorization"})
_ALL_ACTIONS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]


def parse_credentials(text: str) -> dict[str, str]:
    """``"USER:PASSWORD"`` (the first ``:`` splits) as ``{"username", "password"}``.

    Raises:
        ValueError: No ``:``, or an empty user or password.
    """
    username, sep, password = text.partition(":")
    if not sep or not username or not password:
        raise ValueError("expected USER:PASSWORD")
    return {"username": username, "password": password}


def _timestamp() -> str:
    """Now, as JavaScript's ``new Date().toISOString()`` writes it (what the Node server sends)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_safe(data: Any) -> Any:
    """``data`` if it can be sent as JSON, else ``{}`` (the dashboard must not break on it)."""
    try:
        orjson.dumps(data)
    except TypeError:
        return {}
    return data


class _PasswordCheck:
    """The configured username and password: plain text, or a bcrypt hash."""

    def __init__(self, username: str, password: str) -> None:
        if not isinstance(username, str) or not isinstance(password, str):
            raise TypeError("auth: username and password must be strings")
        if not username or not password:
            raise ValueError("auth: username and password must not be empty")
        self._username = username.encode()
        self._password = password.encode()
        self._bcrypt: Any = None
        if password.startswith(_BCRYPT_PREFIXES):
            try:
                import bcrypt
            except ImportError:
                raise RuntimeError(extra_needed("a bcrypt-hashed password", "admin")) from None
            self._bcrypt = bcrypt
        # One bcrypt check at a time: each takes a CPU for a while, off the event loop.
        self._hashing = asyncio.Semaphore(1)

    async def __call__(self, auth: dict[str, Any]) -> bool:
        username, password = auth.get("username"), auth.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return False
        if len(username) > MAX_CREDENTIAL_LENGTH or len(password) > MAX_CREDENTIAL_LENGTH:
            return False
        user_ok = hmac.compare_digest(username.encode(), self._username)
        if self._bcrypt is None:
            return hmac.compare_digest(password.encode(), self._password) and user_ok
        async with self._hashing:
            try:
                password_ok = await asyncio.to_thread(
                    self._bcrypt.checkpw, password.encode(), self._password
                )
            except ValueError:  # bcrypt refuses passwords over 72 bytes
                return False
        return bool(password_ok) and user_ok


class _FailedLogins:
    """Failed logins per client address, within a sliding window; bounded in addresses."""

    def __init__(self) -> None:
        self._by_address: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._by_address.get(address)
        if times is not None:
            while times and times[0] <= now - FAILURE_WINDOW:
                times.popleft()
            if not times:
                del self._by_address[address]
                return None
        return times

    def blocked(self, address: str) -> bool:
        times = self._recent(address, time.monotonic())
        return times is not None and len(times) >= MAX_FAILURES

    def record(self, address: str) -> None:
        now = time.monotonic()
        times = self._recent(address, now)
        if times is None:
            times = self._by_address[address] = deque(maxlen=MAX_FAILURES)
            while len(self._by_address) > MAX_TRACKED_ADDRESSES:
                self._by_address.popitem(last=False)
        times.append(now)


class AdminUI(ServerObserver):
    """The dashboard's side of a server: made by :func:`instrument`, which documents it.

    Attributes:
        io: The instrumented server.
        namespace: The dashboard's namespace.
        mode: ``"development"`` (every event) or ``"production"`` (statistics only).
        read_only: Whether the dashboard's actions are refused.
        server_id: The name ``server_stats`` gives this process.
        features: What the dashboard is told it may offer (``supportedFeatures``).
    """

    def __init__(
        self,
        io: Server,
        *,
        auth: AdminAuth,
        namespace: str = "/admin",
        mode: Literal["development", "production"] = "development",
        read_only: bool = False,
        server_id: str | None = None,
        stats_interval: float = STATS_INTERVAL,
    ) -> None:
        if mode not in ("development", "production"):
            raise ValueError(f"mode must be 'development' or 'production', not {mode!r}")
        if stats_interval <= 0:
            raise ValueError("stats_interval must be positive")
        self.io = io
        self.mode = mode
        self.read_only = read_only
        self.server_id = server_id or socketlib.gethostname()
        self._stats_interval = stats_interval
        self._check = self._make_check(auth)
        self.features = [] if read_only else list(_ALL_ACTIONS)
        self.features.append("AGGREGATED_EVENTS")
        self._verbose = mode == "development"
        if self._verbose:
            self.features.append("ALL_EVENTS")
        self._started = time.monotonic()
        self._sessions: OrderedDict[str, float] = OrderedDict()  # session id -> expiry
        self._failures = _FailedLogins()
        # Sockets that just logged in, and the session id to hand them once connected.
        self._new_sessions: weakref.WeakKeyDictionary[Socket, str] = weakref.WeakKeyDictionary()
        # Sockets last reported on long-polling: reported again when they upgrade.
        self._polling: dict[Socket, None] = {}
        # (second, type, subType) -> count, for server_stats' aggregatedEvents.
        self._aggregated: dict[tuple[int, str, str | None], int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.namespace: Namespace = io.of(namespace)
        self.namespace.use(self._login)
        self.namespace.on("connection", self._on_admin_connection)
        io.add_observer(self)

    # -- login ------------------------------------------------------------------------
    @staticmethod
    def _make_check(auth: AdminAuth) -> Callable[[dict[str, Any]], Any] | None:
        if auth is False:
            logger.warning("the admin namespace has no authentication: anyone may connect")
            return None
        if isinstance(auth, Mapping):
            return _PasswordCheck(auth.get("username", ""), auth.get("password", ""))
        if callable(auth):
            return auth
        raise TypeError("auth must be False, {'username', 'password'} or a callable")

    async def _login(self, socket: Socket) -> None:
        if self._check is None:
            return
        auth = socket.handshake["auth"]
        session_id = auth.get("sessionId")
        if isinstance(session_id, str) and self._session_valid(session_id):
            return
        address = str(socket.handshake["address"])
        if self._failures.blocked(address):
            raise ConnectionRefused(TOO_MANY_ATTEMPTS)
        verdict = self._check(auth)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict is not True:
            self._failures.record(address)
            logger.warning("admin login refused from %s", address)
            raise ConnectionRefused(INVALID_CREDENTIALS)
        self._new_sessions[socket] = self._new_session()

    def _new_session(self) -> str:
        session_id = secrets.token_hex(16)
        self._sessions[session_id] = time.monotonic() + SESSION_TTL
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session_id

    def _session_valid(self, session_id: str) -> bool:
        expiry = self._sessions.get(session_id)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._sessions[session_id]
            return False
        return True

    # -- the dashboard's connection -----------------------------------------------------
    def _on_admin_connection(self, socket: Socket) -> None:
        session_id = self._new_sessions.pop(socket, None)
        if session_id is not None:
            self._send_to(socket, "session", session_id)
        if not self.read_only:
            socket.on("emit", self._action_emit)
            socket.on("join", self._action_join)
            socket.on("leave", self._action_leave)
            socket.on("_disconnect", self._action_disconnect)
        self._send_to(socket, "config", {"supportedFeatures": self.features})
        if self._verbose:
            self._send_to(socket, "all_sockets", self.all_sockets())
        self._send_to(socket, "server_stats", self.server_stats(clear=False))
        if self._timer is None:
            self._timer = self.io.engine.loop.call_later(self._stats_interval, self._tick)

    def _target(self, nsp_name: Any, room_filter: Any) -> Any:
        """The namespace (or its room ``room_filter``) an action is for; None if invalid."""
        if not isinstance(nsp_name, str):
            return None
        nsp = self.io.namespace_for(nsp_name)
        if nsp is None:
            return None
        if room_filter is None or room_filter == "":
            return nsp
        if not isinstance(room_filter, str):
            return None
        return nsp.to(room_filter)

    async def _action_emit(self, nsp: Any, room_filter: Any, event: Any, *args: Any) -> None:
        target = self._target(nsp, room_filter)
        if target is None or not isinstance(event, str):
            return
        try:
            await target.emit(event, *args)
        except (TypeError, ValueError) as exc:
            logger.info("admin emit refused: %s", exc)

    async def _action_join(self, nsp: Any, room: Any, room_filter: Any = None) -> None:
        target = self._target(nsp, room_filter)
        if target is not None and isinstance(room, str):
            await target.sockets_join(room)

    async def _action_leave(self, nsp: Any, room: Any, room_filter: Any = None) -> None:
        target = self._target(nsp, room_filter)
        if target is not None and isinstance(room, str):
            await target.sockets_leave(room)

    async def _action_disconnect(self, nsp: Any, close: Any, room_filter: Any = None) -> None:
        target = self._target(nsp, room_filter)
        if target is not None:
            await target.disconnect_sockets(close is True)

    # -- what the dashboard is sent -------------------------------------------------------
    def _send_to(self, socket: Socket, event: str, *args: Any) -> None:
        socket.session.send_encoded(
            EncodedMessage.of_socket_packet(event_packet(self.namespace.name, event, args))
        )

    def _emit(self, event: str, *args: Any) -> None:
        """Send to every connected dashboard of this process, encoded once.

        Straight to their connections rather than as a broadcast: no recovery offset or log
        entry for these, and the observers calling this are synchronous.
        """
        sockets = [s for s in self.namespace.sockets.values() if s.connected]
        if not sockets:
            return
        message = EncodedMessage.of_socket_packet(event_packet(self.namespace.name, event, args))
        for socket in sockets:
            socket.session.send_encoded(message)

    def serialize(self, socket: Socket) -> dict[str, Any]:
        """``socket`` as the dashboard expects it (its ``SerializedSocket``)."""
        handshake = socket.handshake
        headers = {k: v for k, v in handshake["headers"].items() if k not in _HIDDEN_HEADERS}
        return {
            "id": socket.id,
            # The start of the Engine.IO id only: the whole one would let a reader take
            # over a long-polling session.
            "clientId": socket.client.session.sid[:12],
            "transport": socket.session.transport,
            "nsp": socket.nsp.name,
            "data": _json_safe(socket.data),
            "handshake": {
                "address": handshake["address"],
                "headers": headers,
                "query": handshake["query"],
                "issued": handshake["issued"],
                "secure": handshake["secure"],
                "time": handshake["time"],
                "url": handshake["url"],
                "xdomain": handshake["xdomain"],
            },
            "rooms": sorted(socket.rooms),
        }

    def all_sockets(self) -> list[dict[str, Any]]:
        """Every socket of this process, in every namespace, serialized."""
        return [
            self.serialize(socket)
            for nsp in self.io.namespaces.values()
            for socket in list(nsp.sockets.values())
            if socket.connected
        ]

    def server_stats(self, clear: bool = True) -> dict[str, Any]:
        """The ``server_stats`` payload; ``clear`` empties the aggregated events after."""
        sessions = self.io.engine.sessions.values()
        aggregated = [
            {"timestamp": second * 1000, "type": kind, "subType": sub, "count": count}
            for (second, kind, sub), count in self._aggregated.items()
        ]
        if clear:
            self._aggregated = {}
        return {
            "serverId": self.server_id,
            "hostname": socketlib.gethostname(),
            "pid": os.getpid(),
            "uptime": time.monotonic() - self._started,
            "clientsCount": len(sessions),
            "pollingClientsCount": sum(1 for s in sessions if s.transport == "polling"),
            "aggregatedEvents": aggregated,
            "namespaces": [
                {"name": nsp.name, "socketsCount": len(nsp.sockets)}
                for nsp in self.io.namespaces.values()
            ],
        }

    def _tick(self) -> None:
        """Every ``stats_interval`` while a dashboard is connected: stats and upgrades."""
        self._timer = None
        if not self.namespace.sockets:
            self._aggregated = {}
            return  # started again by the next dashboard
        for socket in list(self._polling):
            if socket.session.transport != "polling":
                del self._polling[socket]
                self._emit(
                    "socket_updated",
                    {
                        "id": socket.id,
                        "nsp": socket.nsp.name,
                        "transport": socket.session.transport,
                    },
                )
        self._emit("server_stats", self.server_stats())
        self._timer = self.io.engine.loop.call_later(self._stats_interval, self._tick)

    def _count(self, kind: str, sub: str | None = None) -> None:
        if not self.namespace.sockets or len(self._aggregated) > 10_000:
            return
        key = (int(time.time()), kind, sub)
        self._aggregated[key] = self._aggregated.get(key, 0) + 1

    # -- observer -----------------------------------------------------------------------
    def connection_opened(self, session: EngineSession) -> None:
        """Counted as ``rawConnection``."""
        self._count("rawConnection")

    def connection_closed(self, session: EngineSession, reason: str) -> None:
        """Counted as ``rawDisconnection`` with the reason."""
        self._count("rawDisconnection", reason)

    def socket_connected(self, socket: Socket) -> None:
        """``socket_connected``; in development mode its events are reported from now on."""
        if not self._verbose:
            return
        if socket.session.transport == "polling":
            self._polling[socket] = None
        if socket.nsp is not self.namespace:
            nsp, sid = socket.nsp.name, socket.id

            def received(event: str, *args: Any) -> None:
                self._emit("event_received", nsp, sid, [event, *args], _timestamp())

            def sent(event: str, *args: Any) -> None:
                self._emit("event_sent", nsp, sid, [event, *args], _timestamp())

            socket.on_any(received)
            socket.on_any_outgoing(sent)
        self._emit("socket_connected", self.serialize(socket), _timestamp())

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        """``socket_disconnected`` with the reason."""
        self._polling.pop(socket, None)
        if self._verbose:
            self._emit("socket_disconnected", socket.nsp.name, socket.id, reason, _timestamp())

    def room_joined(self, nsp: str, room: str, sid: str) -> None:
        """``room_joined``."""
        if self._verbose:
            self._emit("room_joined", nsp, room, sid, _timestamp())

    def room_left(self, nsp: str, room: str, sid: str) -> None:
        """``room_left``."""
        if self._verbose:
            self._emit("room_left", nsp, room, sid, _timestamp())


def instrument(
    io: Server,
    *,
    auth: AdminAuth,
    namespace: str = "/admin",
    mode: Literal["development", "production"] = "development",
    read_only: bool = False,
    server_id: str | None = None,
    stats_interval: float = STATS_INTERVAL,
) -> AdminUI:
    """Let the official Socket.IO Admin UI watch and act on ``io`` (see :mod:`salas.admin`).

    Args:
        io: The server.
        auth: Who may connect: ``{"username": ..., "password": ...}`` (the password in
            plain text or as a bcrypt hash), a callable taking the dashboard's auth object
            and returning (or awaiting to) True to let it in, or ``False`` for anyone
            (only for a local try). Required, as with the Node package.
        namespace: The dashboard's namespace (default ``"/admin"``).
        mode: ``"development"`` (default) sends every socket, room change and event;
            ``"production"`` only the periodic statistics.
        read_only: Refuse the dashboard's actions (emit, join, leave, disconnect).
        server_id: This process's name in ``server_stats`` (default: the host name).
        stats_interval: Seconds between ``server_stats`` (default 2).

    Returns:
        The :class:`AdminUI`.

    Raises:
        TypeError: ``auth`` is none of the above.
        ValueError: An unknown ``mode``, an empty username or password, or a
            ``stats_interval`` that is not positive.
        RuntimeError: A bcrypt hash without the ``bcrypt`` package.
    """
    return AdminUI(
        io,
        auth=auth,
        namespace=namespace,
        mode=mode,
        read_only=read_only,
        server_id=server_id,
        stats_interval=stats_interval,
    )
