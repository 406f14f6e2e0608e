"""`Socket`: one client connected to one namespace."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from salas.adapter.base import BroadcastOptions
from salas.engine.session import EngineSession
from salas.protocol import SocketPacket, SocketPacketType
from salas.protocol.outgoing import OFFSETS_NONE, OFFSETS_TAGGED, EncodedMessage
from salas.server.broadcast import BroadcastOperator, event_packet
from salas.server.errors import AckTimeout, Disconnected
from salas.server.handlers import Handler, call_handler

if TYPE_CHECKING:
    from salas.server.client import Client
    from salas.server.namespace import Namespace

__all__ = ["Socket"]

logger = logging.getLogger("salas.server")
# Enum members looked up once: attribute access on an Enum class is slow on hot paths.
_EVENT = SocketPacketType.EVENT
_BINARY_EVENT = SocketPacketType.BINARY_EVENT
_ACK = SocketPacketType.ACK
_BINARY_ACK = SocketPacketType.BINARY_ACK
_DISCONNECT = SocketPacketType.DISCONNECT
# The handler table of every socket that has none of its own: an application whose handlers
# are its namespace's (`Namespace.on_event`) keeps no table per socket. Never written to:
# `Socket._register` gives a socket a table of its own first. (A plain dict rather than a
# read-only proxy: it is read for every event, and a proxy's `get` costs a method call.)
_NO_HANDLERS: dict[str, Handler] = {}


def _ack_args(result: Any) -> list[Any]:
    """A handler's return value as the ack's arguments."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


def _ack_value(args: list[Any]) -> Any:
    """The client's ack arguments as one value: none → None, one → it, several → tuple."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


class Socket:
    """The server side of a client's connection to one namespace.

    The server makes one for each client that connects to a namespace and hands it to
    the namespace's ``connection`` handler; applications do not construct it.

    Attributes:
        nsp: The namespace this socket is connected to.
        client: The connection-level client (one per Engine.IO session) it belongs to.
        session: The Engine.IO session under this socket (what the adapter delivers to).
        id: The socket id, unique per connection to a namespace; also the name of a room
            that only this socket is in, so ``io.to(socket.id)`` reaches it.
        data: Yours: whatever the application wants to remember about this socket. With
            connection state recovery it is saved with the session (durable stores keep
            it as JSON; data that is not JSON-serialisable is saved as ``{}``).
        connected: True from the connection until the socket disconnects.
        pid: With connection state recovery, the private id its client presents to get
            this socket back; None without recovery.
        recovered: True when this socket is a recovered session (same id, rooms and
            ``data`` as before the client's transport dropped).
        base_offset: With recovery, the broadcast log's head when the socket first
            connected: where the replay starts for a client that never got a broadcast.
        offsets: With recovery, the offset mode its client chose or was given when it
            connected (:func:`salas.recovery.policy.offset_mode`): whether and how its
            events carry an offset as a last, extra argument.
        handshake: What the client sent when it connected: ``auth``, ``headers``,
            ``query``, ``address``, ``time``, ``issued`` (ms since the epoch), ``url``,
            ``secure`` and ``xdomain``.
    """

    def __init__(
        self, nsp: Namespace, client: Client, auth: dict[str, Any] | None, sid: str
    ) -> None:
        self.nsp = nsp
        self.client = client
        # An attribute, not a property: the adapter reads it for every recipient of every
        # broadcast. A client keeps its session for life.
        self.session: EngineSession = client.session
        self.id = sid
        self.data: dict[str, Any] = {}
        self.connected = False
        # Connection state recovery: the private id the client presents to get this socket
        # back, whether this socket is such a comeback, and the log head when it connected.
        self.pid: str | None = None
        self.recovered = False
        self.base_offset = 0
        # Which offset argument its events carry (salas.protocol.outgoing.OFFSETS_*),
        # chosen at connect time by salas.recovery.policy.offset_mode.
        self.offsets = OFFSETS_NONE
        # The handshake dict is built on first use (see `handshake`), the auth dict of a
        # client that sent none too (`auth`): many applications never read them, and a
        # server holds one socket per connected client.
        self._auth = auth
        self._issued = int(time.time() * 1000)
        self._handshake: dict[str, Any] | None = None
        self._handlers = _NO_HANDLERS
        # Shared empty tuples until a handler is added, a dict once an ack is awaited.
        self._any_handlers: Sequence[Handler] = ()
        self._any_outgoing: Sequence[Handler] = ()
        self._acks: dict[int, asyncio.Future[list[Any]]] | None = None
        self._next_ack = 0

    # -- identity and transport -------------------------------------------------------
    @property
    def handshake(self) -> dict[str, Any]:
        """What the client sent when it connected (see the class's attributes).

        Its ``headers`` and ``query`` are those of the Engine.IO handshake request itself,
        not copies (as on Node's server).
        """
        handshake = self._handshake
        if handshake is None:
            request = self.session.request
            issued = self._issued
            handshake = self._handshake = {
                "auth": self.auth,
                "headers": request.headers,
                "query": request.query,
                "address": request.client_address,
                "time": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(issued / 1000)),
                "issued": issued,
                "url": request.path + ("?" + request.query_string if request.query_string else ""),
                "secure": False,
                "xdomain": "origin" in request.headers,
            }
        return handshake

    @handshake.setter
    def handshake(self, value: dict[str, Any]) -> None:
        self._handshake = value

    @property
    def auth(self) -> dict[str, Any]:
        """What the client sent in its CONNECT packet (``{}`` if nothing, or not an object).

        The same dict as ``handshake["auth"]``; reading it here does not build the rest of
        the handshake.
        """
        auth = self._auth
        if auth is None:
            auth = self._auth = {}
        return auth

    @property
    def conn(self) -> EngineSession:
        """The Engine.IO connection under this socket (``conn.close()``, ``conn.transport``).

        The same object as :attr:`session`, under the name the Node server uses.
        """
        return self.client.session

    @property
    def rooms(self) -> set[str]:
        """A copy of the names of the rooms this socket is in, its own id among them."""
        return self.nsp.adapter.socket_rooms(self.id)

    # -- handlers ---------------------------------------------------------------------
    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register the handler of a client event.

        Use it as ``socket.on("ev", fn)`` or as a decorator, ``@socket.on("ev")``. One
        handler per event: registering another replaces it. The handler, sync or async,
        gets the event's arguments; when the client asked for an acknowledgement, what it
        returns is sent back (a tuple as several arguments, None as none). The
        ``disconnecting`` and ``disconnect`` events get the reason, a string. For this
        socket it takes the place of its namespace's handler of the same event
        (:meth:`Namespace.on_event <salas.server.namespace.Namespace.on_event>`).

        Args:
            event: The event name.
            handler: The handler; omit it to use ``on`` as a decorator.

        Returns:
            ``handler`` itself, or, without it, a decorator that registers and returns
            the function it decorates.
        """
        if handler is not None:
            self._register(event, handler)
            return handler

        def register(fn: Handler) -> Handler:
            self._register(event, fn)
            return fn

        return register

    def _register(self, event: str, handler: Handler) -> None:
        handlers = self._handlers
        if handlers is _NO_HANDLERS:
            handlers = self._handlers = {}
        handlers[event] = handler

    def _handler(self, event: str, args: list[Any]) -> tuple[Handler | None, list[Any]]:
        """The handler of `event` for this socket and the arguments to call it with: its
        own (`on`) with `args`, else its namespace's with the socket before them."""
        handler = self._handlers.get(event)
        if handler is not None:
            return handler, args
        handler = self.nsp.event_handlers.get(event)
        if handler is not None:
            return handler, [self, *args]
        return None, args

    def on_any(self, handler: Handler) -> Handler:
        """Call ``handler(event, *args)`` for every event from the client.

        Catch-all handlers run, in the order they were added, before the event's own
        handler, also for events that have none; what they return is ignored.

        Args:
            handler: The catch-all handler, sync or async.

        Returns:
            ``handler``, so that ``on_any`` also works as a decorator.
        """
        self._any_handlers = [*self._any_handlers, handler]
        return handler

    def on_any_outgoing(self, handler: Handler) -> Handler:
        """Call ``handler(event, *args)`` for every event emitted to this socket by itself.

        As Node's ``socket.onAnyOutgoing``: :meth:`emit`, :meth:`emit_with_ack` and
        ``socket.volatile.emit`` are reported, before the packet is queued; broadcasts
        (``io.to(room).emit``), which are encoded once for all recipients, are not. What
        ``handler`` returns is ignored; what it raises is logged.

        Args:
            handler: The handler, sync or async.

        Returns:
            ``handler``, so that ``on_any_outgoing`` also works as a decorator.
        """
        self._any_outgoing = [*self._any_outgoing, handler]
        return handler

    def _tell_outgoing(self, event: str, args: tuple[Any, ...]) -> None:
        where = f"socket {self.id}, outgoing {event!r}"
        for handler in self._any_outgoing:
            call_handler(self.nsp.server.tasks, handler, [event, *args], where)

    # -- emitting ---------------------------------------------------------------------
    def _send_packet(self, packet: SocketPacket, volatile: bool = False) -> None:
        if self.connected:
            self.client.session.send_encoded(self._encoded(packet), volatile)

    def _encoded(self, packet: SocketPacket) -> EncodedMessage:
        if self.offsets == OFFSETS_TAGGED and packet.type is _EVENT:
            # Its client reads every event's last argument as an offset: none here.
            packet.data.append("")
        return EncodedMessage.of_socket_packet(packet)

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to this client.

        The packet is queued on the connection and the call returns without waiting for
        it to be written. Nothing is sent once the socket has disconnected.

        Args:
            event: The event name.
            *args: The event's arguments: JSON-serialisable values or ``bytes``.

        Raises:
            TypeError: ``event`` is not a string.
            ValueError: ``event`` is a reserved event name (such as ``connect`` or
                ``disconnect``).
        """
        packet = event_packet(self.nsp.name, event, args)
        if self._any_outgoing:
            self._tell_outgoing(event, args)
        self._send_packet(packet)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float = 10.0) -> Any:
        """Send ``event`` and wait for the client's acknowledgement.

        Args:
            event: The event name.
            *args: The event's arguments: JSON-serialisable values or ``bytes``.
            timeout: Seconds to wait for the acknowledgement (default 10.0).

        Returns:
            What the client acknowledged with: None for no argument, the value for one,
            a tuple for several.

        Raises:
            Disconnected: The socket is not connected, or disconnects before the
                acknowledgement arrives.
            AckTimeout: No acknowledgement within ``timeout`` seconds.
            TypeError: ``event`` is not a string, or an argument is not
                JSON-serialisable.
            ValueError: ``event`` is a reserved event name.
        """
        if not self.connected:
            raise Disconnected(f"socket {self.id} is not connected")
        ack_id = self._next_ack
        self._next_ack += 1
        # Encoded before the ack is registered: a bad event name or argument raises here
        # and leaves no pending ack behind (whose future would fail unawaited at disconnect).
        message = self._encoded(event_packet(self.nsp.name, event, args, ack_id))
        if self._any_outgoing:
            self._tell_outgoing(event, args)
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        acks = self._acks
        if acks is None:
            acks = self._acks = {}
        acks[ack_id] = future
        self.client.session.send_encoded(message)
        try:
            return _ack_value(await asyncio.wait_for(future, timeout))
        except TimeoutError:
            raise AckTimeout(f"no ack for {event!r} from {self.id} within {timeout}s") from None
        finally:
            acks.pop(ack_id, None)

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Select everyone in these rooms except this socket.

        ``in_`` is the same method.

        Args:
            *rooms: Room names, each a string or an iterable of strings.

        Returns:
            A :class:`BroadcastOperator` for those rooms, excluding this socket.
        """
        return BroadcastOperator(self.nsp, BroadcastOptions(except_rooms=frozenset({self.id}))).to(
            *rooms
        )

    in_ = to

    @property
    def broadcast(self) -> BroadcastOperator:
        """A :class:`BroadcastOperator` for everyone in the namespace except this socket."""
        return BroadcastOperator(self.nsp, BroadcastOptions(except_rooms=frozenset({self.id})))

    @property
    def volatile(self) -> _VolatileSelf:
        """This socket, for ``socket.volatile.emit(...)``: dropped, not queued, if congested.

        A volatile packet is dropped, never retried, when the connection cannot take it
        now: on a websocket, more than ``volatile_buffer`` bytes (256 KiB by default) are
        still unsent; on long-polling, no GET is waiting or packets are already queued.
        """
        return _VolatileSelf(self)

    # -- rooms ------------------------------------------------------------------------
    async def join(self, *rooms: str | Iterable[str]) -> None:
        """Put this socket in rooms (a room exists while someone is in it).

        Joining a room the socket is already in does nothing; a socket that has
        disconnected joins nothing.

        Args:
            *rooms: Room names, each a string or an iterable of strings.

        Raises:
            TypeError: A room name is not a string (then no room is joined).
        """
        if not self.connected:
            return  # a socket that is gone must not reappear in rooms
        names = [r for group in rooms for r in ([group] if isinstance(group, str) else group)]
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"room name must be a string, not {type(name).__name__}")
        self.nsp.adapter.add_all(self.id, names)

    async def leave(self, room: str) -> None:
        """Take this socket out of ``room``; nothing happens if it is not in it.

        Args:
            room: The room's name.
        """
        self.nsp.adapter.remove(self.id, room)

    # -- disconnecting ------------------------------------------------------------------
    async def disconnect(self, close: bool = False) -> None:
        """Disconnect this socket from its namespace; nothing happens if it already is.

        The client is told, and the ``disconnecting`` and ``disconnect`` handlers run with
        the reason ``"server namespace disconnect"``. A server-initiated disconnection
        leaves no session for connection state recovery.

        Args:
            close: Also end the whole connection, disconnecting the client's sockets in
                every namespace (default False).
        """
        if not self.connected:
            return
        if close:
            # As Node's client._disconnect(): every namespace of the connection is told.
            self.client.disconnect_all()
            return
        self._send_packet(SocketPacket(SocketPacketType.DISCONNECT, self.nsp.name))
        self.on_close("server namespace disconnect")

    # -- called by the client layer -----------------------------------------------------
    def on_packet(self, packet: SocketPacket) -> None:
        """Handle a packet the client sent to this namespace (called by the client layer).

        Args:
            packet: An EVENT, ACK or DISCONNECT packet (binary ones already reassembled).
        """
        kind = packet.type
        if kind is _EVENT or kind is _BINARY_EVENT:
            self._on_event(packet)
        elif kind is _ACK or kind is _BINARY_ACK:
            assert packet.id is not None
            future = self._acks.pop(packet.id, None) if self._acks else None
            if future is not None and not future.done():
                future.set_result(packet.data)
        elif kind is _DISCONNECT:
            self.on_close("client namespace disconnect")

    def _on_event(self, packet: SocketPacket) -> None:
        event, *args = packet.data
        event = str(event)
        where = f"socket {self.id}, event {event!r}"
        for any_handler in self._any_handlers:
            call_handler(self.nsp.server.tasks, any_handler, [event, *args], where)
        # (`_handler`, inlined: this runs for every event)
        handler = self._handlers.get(event)
        if handler is None:
            handler = self.nsp.event_handlers.get(event)
            if handler is None:
                return
            args = [self, *args]
        ack_id = packet.id
        on_result: Callable[[Any], None] | None = None
        if ack_id is not None:

            def on_result(result: Any) -> None:
                self._send_packet(
                    SocketPacket(SocketPacketType.ACK, self.nsp.name, _ack_args(result), ack_id)
                )

        metrics = self.nsp.server.metrics
        if metrics is None:
            call_handler(self.nsp.server.tasks, handler, args, where, on_result)
        else:
            # Timed only with metrics on: the timer starts here, the handler's end stops it.
            timer = metrics.time_handler(self.nsp.name, event)
            call_handler(self.nsp.server.tasks, handler, args, where, on_result, timer)

    def on_close(self, reason: str) -> None:
        """Close this socket: leave every room and tell the application (only once).

        Called by the client layer when the connection ends, and by :meth:`disconnect`.
        Runs the ``disconnecting`` handler (still in its rooms), saves the session for
        connection state recovery when ``reason`` is one the client did not ask for,
        leaves every room, fails pending :meth:`emit_with_ack` calls with
        :class:`Disconnected`, then runs the ``disconnect`` handler.

        Args:
            reason: Why, as the Node server words it (e.g. ``"transport close"``,
                ``"client namespace disconnect"``).
        """
        if not self.connected:
            return
        where = f"socket {self.id}, disconnect"
        disconnecting, args = self._handler("disconnecting", [reason])
        if disconnecting is not None:
            call_handler(self.nsp.server.tasks, disconnecting, args, where)
        recovery = self.nsp.server.recovery
        if recovery is not None and self.pid is not None:
            recovery.on_disconnect(
                reason,
                pid=self.pid,
                sid=self.id,
                nsp=self.nsp.name,
                rooms=self.rooms,
                data=self.data,
                base_offset=self.base_offset,
            )
        self.connected = False
        self.nsp.remove_socket(self)
        self.client.remove_socket(self)
        acks = self._acks
        if acks:
            for future in acks.values():
                if not future.done():
                    future.set_exception(Disconnected(f"socket {self.id} disconnected: {reason}"))
            acks.clear()
        handler, args = self._handler("disconnect", [reason])
        if handler is not None:
            call_handler(self.nsp.server.tasks, handler, args, where)
        observers = self.nsp.server.observers
        if observers:
            observers.socket_disconnected(self, reason)


class _VolatileSelf:
    """`socket.volatile.emit(...)`: dropped rather than queued on a congested connection."""

    __slots__ = ("_socket",)

    def __init__(self, socket: Socket) -> None:
        self._socket = socket

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` unless the connection is congested; as :meth:`Socket.emit`."""
        socket = self._socket
        packet = event_packet(socket.nsp.name, event, args)
        if socket._any_outgoing:
            socket._tell_outgoing(event, args)
        socket._send_packet(packet, volatile=True)
