"""`Namespace`: a named channel of sockets with its own middleware, handlers and adapter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from salas.adapter.base import Adapter, AdapterFactory, BroadcastOptions, RemoteSocket
from salas.server.broadcast import BroadcastOperator, room_names
from salas.server.handlers import Handler

if TYPE_CHECKING:
    from salas.server.server import Server
    from salas.server.socket import Socket

__all__ = ["Middleware", "Namespace"]

# `async def mw(socket)`: raise ConnectionRefused to refuse the connection.
Middleware = Callable[["Socket"], Any]


class Namespace:
    def __init__(self, server: Server, name: str, adapter_factory: AdapterFactory) -> None:
        self.server = server
        self.name = name
        self.sockets: dict[str, Socket] = {}
        self.middlewares: list[Middleware] = []
        self.connection_handlers: list[Handler] = []
        self.adapter: Adapter = adapter_factory(self)
        # Set by the server while the adapter of a namespace made after `Server.start` is
        # starting, and kept if that start failed.
        self.adapter_starting: asyncio.Task[None] | None = None

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """`@nsp.on("connection")`: `handler(socket)` runs for each new socket."""
        if event not in ("connection", "connect"):
            raise ValueError(f"a namespace only emits 'connection', not {event!r}")
        if handler is not None:
            self.connection_handlers.append(handler)
            return handler

        def register(fn: Handler) -> Handler:
            self.connection_handlers.append(fn)
            return fn

        return register

    def use(self, middleware: Middleware) -> Middleware:
        """Run `middleware(socket)` before each connection; usable as a decorator."""
        self.middlewares.append(middleware)
        return middleware

    # -- broadcasting -----------------------------------------------------------------
    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return BroadcastOperator(self, BroadcastOptions(rooms=room_names(rooms)))

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return BroadcastOperator(self).except_(*rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        return BroadcastOperator(self).volatile

    @property
    def local(self) -> BroadcastOperator:
        return BroadcastOperator(self).local

    async def emit(self, event: str, *args: Any) -> None:
        """Send to every socket of this namespace."""
        await BroadcastOperator(self).emit(event, *args)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        return await BroadcastOperator(self).fetch_sockets()

    async def sockets_join(self, *rooms: str | Iterable[str]) -> None:
        await BroadcastOperator(self).sockets_join(*rooms)

    async def sockets_leave(self, *rooms: str | Iterable[str]) -> None:
        await BroadcastOperator(self).sockets_leave(*rooms)

    async def disconnect_sockets(self, close: bool = False) -> None:
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
        self.sockets[socket.id] = socket
        # Every socket is in a room named after its id, so `io.to(sid)` reaches it.
        self.adapter.add_all(socket.id, (socket.id,))

    def remove_socket(self, socket: Socket) -> None:
        self.adapter.remove_all(socket.id)
        if self.sockets.get(socket.id) is socket:
            del self.sockets[socket.id]
