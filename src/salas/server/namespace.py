"""`Namespace`: a named channel of sockets with its own middleware, handlers and adapter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from salas.adapter.base import (
    Adapter,
    AdapterFactory,
    BroadcastOptions,
    OffsetLog,
    RemoteSocket,
)
from salas.protocol.outgoing import OFFSET_MODES
from salas.server.broadcast import BroadcastOperator, room_names
from salas.server.handlers import Handler

if TYPE_CHECKING:
    from salas.server.server import Server
    from salas.server.socket import Socket

__all__ = ["Middleware", "Namespace"]

# `async def mw(socket)`: raise ConnectionRefused to refuse the connection.
Middleware = Callable[["Socket"], Any]


class Namespace:
    """A named channel of sockets with its own middlewares, connection handlers and rooms.

    Made by :meth:`Server.of <salas.server.server.Server.of>` (``io.sockets`` is the main
    namespace ``"/"``), never directly. A client joins it by name; each joined client is
    one :class:`~salas.server.socket.Socket` here. Rooms, and so broadcasts, are kept
    apart per namespace.

    Args:
        server: The server it belongs to.
        name: Its name, such as ``"/"`` or ``"/admin"``.
        adapter_factory: Makes its adapter.

    Attributes:
        server: The server it belongs to.
        name: Its name.
        sockets: Its sockets connected to this process, by id.
        offset_modes: How many of them are in each offset mode
            (:mod:`salas.protocol.outgoing`), indexed by mode.
        middlewares: What :meth:`use` added, in order.
        connection_handlers: What :meth:`on` added, in order.
        event_handlers: What :meth:`on_event` added, by event.
        adapter: Its rooms, and how its broadcasts reach sockets.
        adapter_starting: While the adapter of a namespace made after ``Server.start``
            starts, that task (kept when it failed); None otherwise.
    """

    def __init__(self, server: Server, name: str, adapter_factory: AdapterFactory) -> None:
        self.server = server
        self.name = name
        self.sockets: dict[str, Socket] = {}
        # How many of `sockets` are in each offset mode: a broadcast derives another form
        # of its message only when some socket needs it.
        self.offset_modes = [0] * OFFSET_MODES
        self.middlewares: list[Middleware] = []
        self.connection_handlers: list[Handler] = []
        self.event_handlers: dict[str, Handler] = {}
        self.adapter: Adapter = adapter_factory(self)
        # Set by the server while the adapter of a namespace made after `Server.start` is
        # starting, and kept if that start failed.
        self.adapter_starting: asyncio.Task[None] | None = None

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register a connection handler: ``@nsp.on("connection")``.

        ``handler(socket)`` runs for each socket that joins, after the middlewares.

        Args:
            event: ``"connection"`` (or its alias ``"connect"``).
            handler: The handler, sync or async; omitted when used as a decorator.

        Returns:
            ``handler``, or a decorator when it is omitted.

        Raises:
            ValueError: ``event`` is another name.
        """
        if event not in ("connection", "connect"):
            raise ValueError(f"a namespace only emits 'connection', not {event!r}")
        if handler is not None:
            self.connection_handlers.append(handler)
            return handler

        def register(fn: Handler) -> Handler:
            self.connection_handlers.append(fn)
            return fn

        return register

    def on_event(self, event: str, handler: Handler | None = None) -> Any:
        """Register the handler of a client event for every socket of this namespace.

        ``handler(socket, *args)`` gets the socket the event came from, then the event's
        arguments; otherwise it is as a handler of :meth:`Socket.on
        <salas.server.socket.Socket.on>` (sync or async, its return value is the ack, one
        per event: registering another replaces it). ``disconnecting`` and ``disconnect``
        handlers get ``(socket, reason)``. A socket's own handler of the same event
        (``socket.on``) takes its place for that socket.

        One handler for all sockets, where ``socket.on`` in a connection handler makes one
        closure per socket and event: a server holding many connections keeps less memory
        per connection.

        Args:
            event: The event name; not ``"connection"`` or ``"connect"`` (see :meth:`on`).
            handler: The handler; omitted when used as a decorator.

        Returns:
            ``handler``, or a decorator when it is omitted.

        Raises:
            TypeError: ``event`` is not a string.
            ValueError: ``event`` is ``"connection"`` or ``"connect"``.
        """
        if not isinstance(event, str):
            raise TypeError(f"event name must be a string, not {type(event).__name__}")
        if event in ("connection", "connect"):
            raise ValueError(f"{event!r} is the namespace's own event: register it with on()")
        if handler is not None:
            self.event_handlers[event] = handler
            return handler

        def register(fn: Handler) -> Handler:
            self.event_handlers[event] = fn
            return fn

        return register

    def use(self, middleware: Middleware) -> Middleware:
        """Run ``middleware(socket)`` before each connection: ``@nsp.use``.

        Middlewares run in the order they were added, before the socket is connected.
        Raising :class:`~salas.server.errors.ConnectionRefused` refuses the connection
        with its message and data; any other exception refuses it and is logged.

        Args:
            middleware: ``middleware(socket)``, sync or async.

        Returns:
            ``middleware``, so that ``use`` also works as a decorator.
        """
        self.middlewares.append(middleware)
        return middleware

    # -- broadcasting -----------------------------------------------------------------
    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Select the sockets in any of these rooms.

        ``in_`` is the same method.

        Args:
            *rooms: Room names, each a string or an iterable of strings.

        Returns:
            A :class:`~salas.server.broadcast.BroadcastOperator` for those rooms.
        """
        return BroadcastOperator(self, BroadcastOptions(rooms=room_names(rooms)))

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Select every socket except those in these rooms.

        Args:
            *rooms: Room names, each a string or an iterable of strings.

        Returns:
            A :class:`~salas.server.broadcast.BroadcastOperator` leaving those rooms out.
        """
        return BroadcastOperator(self).except_(*rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        """Every socket; emits are dropped, not queued, on congested connections."""
        return BroadcastOperator(self).volatile

    @property
    def local(self) -> BroadcastOperator:
        """Every socket connected to this process, even with a cluster adapter."""
        return BroadcastOperator(self).local

    @property
    def offset_log(self) -> OffsetLog | None:
        """Connection state recovery as a cluster adapter sees it; None when it is off."""
        return self.server.recovery

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to every socket of this namespace.

        As :meth:`BroadcastOperator.emit <salas.server.broadcast.BroadcastOperator.emit>`:
        returns once it is queued, not delivered.

        Args:
            event: The event name.
            *args: The event's arguments: JSON-serialisable values or ``bytes``.

        Raises:
            TypeError: ``event`` is not a string.
            ValueError: ``event`` is a reserved event name.
        """
        await BroadcastOperator(self).emit(event, *args)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """Every socket of this namespace, here and (with a cluster adapter) elsewhere.

        With :class:`~salas.adapter.RedisAdapter` it waits for the other processes'
        answers, at most 5 seconds.

        Returns:
            This process's sockets as :class:`~salas.server.socket.Socket`, other
            processes' as :class:`~salas.adapter.RemoteSocket`.
        """
        return await BroadcastOperator(self).fetch_sockets()

    async def sockets_join(self, *rooms: str | Iterable[str]) -> None:
        """Make every socket of this namespace join ``rooms`` (Node's ``socketsJoin``).

        With a cluster adapter, other processes apply it after this returns.

        Args:
            *rooms: Room names, each a string or an iterable of strings.
        """
        await BroadcastOperator(self).sockets_join(*rooms)

    async def sockets_leave(self, *rooms: str | Iterable[str]) -> None:
        """Make every socket of this namespace leave ``rooms`` (Node's ``socketsLeave``).

        With a cluster adapter, other processes apply it after this returns.

        Args:
            *rooms: Room names, each a string or an iterable of strings.
        """
        await BroadcastOperator(self).sockets_leave(*rooms)

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of this namespace, in every process.

        Args:
            close: Also end each socket's whole connection (default False).
        """
        await BroadcastOperator(self).disconnect_sockets(close)

    async def adapter_ready(self) -> None:
        """Wait until this namespace's adapter has started.

        Only a namespace made by ``io.of(...)`` after ``Server.start`` has to wait: its
        adapter starts in the background. Broadcasts and bulk operations wait for it
        themselves; calling this first is only needed to be sure that this process
        receives what other processes publish (with a cluster adapter).

        Raises:
            Exception: What the adapter's ``init`` raised, such as a Redis connection
                error; raised again on each call.
        """
        starting = self.adapter_starting
        if starting is not None:
            # Shielded: a caller cancelled while waiting must not cancel the start.
            await asyncio.shield(starting)

    # -- called by the client layer -----------------------------------------------------
    def add_socket(self, socket: Socket) -> None:
        """Record a socket that has just connected, in the room named after its id.

        Called by the connection it arrived on, not by applications.

        Args:
            socket: The socket.
        """
        self.sockets[socket.id] = socket
        self.offset_modes[socket.offsets] += 1
        # Every socket is in a room named after its id, so `io.to(sid)` reaches it.
        self.adapter.add_all(socket.id, (socket.id,))

    def remove_socket(self, socket: Socket) -> None:
        """Forget a socket that is disconnecting, and take it out of every room.

        Called by the socket itself, not by applications.

        Args:
            socket: The socket.
        """
        self.adapter.remove_all(socket.id)
        if self.sockets.get(socket.id) is socket:
            del self.sockets[socket.id]
            self.offset_modes[socket.offsets] -= 1
