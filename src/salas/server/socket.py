"""`Socket`: one client connected to one namespace."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from salas.adapter.base import BroadcastOptions
from salas.engine.session import EngineSession
from salas.protocol import SocketPacket, SocketPacketType
from salas.protocol.outgoing import EncodedMessage
from salas.server.broadcast import BroadcastOperator, event_packet
from salas.server.errors import AckTimeout, Disconnected
from salas.server.handlers import Handler, call_handler

if TYPE_CHECKING:
    from salas.server.client import Client
    from salas.server.namespace import Namespace

__all__ = ["Socket"]

logger = logging.getLogger("salas.server")


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

    `data` is yours: whatever the application wants to remember about this socket.
    """

    def __init__(self, nsp: Namespace, client: Client, auth: dict[str, Any], sid: str) -> None:
        self.nsp = nsp
        self.client = client
        self.id = sid
        self.data: dict[str, Any] = {}
        self.connected = False
        # Connection state recovery: the private id the client presents to get this socket
        # back, whether this socket is such a comeback, and the log head when it connected.
        self.pid: str | None = None
        self.recovered = False
        self.base_offset = 0
        request = client.session.request
        self.handshake: dict[str, Any] = {
            "auth": auth,
            "headers": dict(request.headers),
            "query": dict(request.query),
            "address": request.remote_address,
            "time": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
            "issued": int(time.time() * 1000),
            "url": request.path + ("?" + request.query_string if request.query_string else ""),
            "secure": False,
            "xdomain": "origin" in request.headers,
        }
        self._handlers: dict[str, Handler] = {}
        self._any_handlers: list[Handler] = []
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._next_ack = 0

    # -- identity and transport -------------------------------------------------------
    @property
    def session(self) -> EngineSession:
        return self.client.session

    @property
    def conn(self) -> EngineSession:
        """The Engine.IO connection under this socket (`conn.close()`, `conn.transport`)."""
        return self.client.session

    @property
    def rooms(self) -> set[str]:
        return self.nsp.adapter.socket_rooms(self.id)

    # -- handlers ---------------------------------------------------------------------
    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register a handler: `socket.on("ev", fn)` or as a decorator `@socket.on("ev")`."""
        if handler is not None:
            self._handlers[event] = handler
            return handler

        def register(fn: Handler) -> Handler:
            self._handlers[event] = fn
            return fn

        return register

    def on_any(self, handler: Handler) -> Handler:
        """Call `handler(event, *args)` for every event from the client."""
        self._any_handlers.append(handler)
        return handler

    # -- emitting ---------------------------------------------------------------------
    def _send_packet(self, packet: SocketPacket, volatile: bool = False) -> None:
        if self.connected:
            self.client.session.send_encoded(EncodedMessage.of_socket_packet(packet), volatile)

    async def emit(self, event: str, *args: Any) -> None:
        """Send `event` with `args` to this client."""
        self._send_packet(event_packet(self.nsp.name, event, args))

    async def emit_with_ack(self, event: str, *args: Any, timeout: float = 10.0) -> Any:
        """Send `event` and wait for the client's acknowledgement.

        Returns the ack's argument (a tuple if several, None if none). Raises AckTimeout
        after `timeout` seconds, Disconnected if the socket goes away first.
        """
        if not self.connected:
            raise Disconnected(f"socket {self.id} is not connected")
        ack_id = self._next_ack
        self._next_ack += 1
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        self._send_packet(event_packet(self.nsp.name, event, args, ack_id))
        try:
            return _ack_value(await asyncio.wait_for(future, timeout))
        except TimeoutError:
            raise AckTimeout(f"no ack for {event!r} from {self.id} within {timeout}s") from None
        finally:
            self._acks.pop(ack_id, None)

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Everyone in these rooms except this socket."""
        return BroadcastOperator(self.nsp, BroadcastOptions(except_rooms=frozenset({self.id}))).to(
            *rooms
        )

    in_ = to

    @property
    def broadcast(self) -> BroadcastOperator:
        """Everyone in the namespace except this socket."""
        return BroadcastOperator(self.nsp, BroadcastOptions(except_rooms=frozenset({self.id})))

    @property
    def volatile(self) -> _VolatileSelf:
        return _VolatileSelf(self)

    # -- rooms ------------------------------------------------------------------------
    async def join(self, *rooms: str | Iterable[str]) -> None:
        if not self.connected:
            return  # a socket that is gone must not reappear in rooms
        names = [r for group in rooms for r in ([group] if isinstance(group, str) else group)]
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"room name must be a string, not {type(name).__name__}")
        self.nsp.adapter.add_all(self.id, names)

    async def leave(self, room: str) -> None:
        self.nsp.adapter.remove(self.id, room)

    # -- disconnecting ------------------------------------------------------------------
    async def disconnect(self, close: bool = False) -> None:
        """Disconnect from this namespace; with `close`, end the whole connection."""
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
        kind = packet.type
        if kind is SocketPacketType.EVENT or kind is SocketPacketType.BINARY_EVENT:
            self._on_event(packet)
        elif kind is SocketPacketType.ACK or kind is SocketPacketType.BINARY_ACK:
            assert packet.id is not None
            future = self._acks.pop(packet.id, None)
            if future is not None and not future.done():
                future.set_result(packet.data)
        elif kind is SocketPacketType.DISCONNECT:
            self.on_close("client namespace disconnect")

    def _on_event(self, packet: SocketPacket) -> None:
        event, *args = packet.data
        event = str(event)
        where = f"socket {self.id}, event {event!r}"
        for any_handler in self._any_handlers:
            call_handler(self.nsp.server.tasks, any_handler, [event, *args], where)
        handler = self._handlers.get(event)
        if handler is None:
            return
        ack_id = packet.id
        on_result: Callable[[Any], None] | None = None
        if ack_id is not None:

            def on_result(result: Any) -> None:
                self._send_packet(
                    SocketPacket(SocketPacketType.ACK, self.nsp.name, _ack_args(result), ack_id)
                )

        call_handler(self.nsp.server.tasks, handler, args, where, on_result)

    def on_close(self, reason: str) -> None:
        """Leave every room and tell the application (once)."""
        if not self.connected:
            return
        where = f"socket {self.id}, disconnect"
        disconnecting = self._handlers.get("disconnecting")
        if disconnecting is not None:
            call_handler(self.nsp.server.tasks, disconnecting, [reason], where)
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
        for future in self._acks.values():
            if not future.done():
                future.set_exception(Disconnected(f"socket {self.id} disconnected: {reason}"))
        self._acks.clear()
        handler = self._handlers.get("disconnect")
        if handler is not None:
            call_handler(self.nsp.server.tasks, handler, [reason], where)


class _VolatileSelf:
    """`socket.volatile.emit(...)`: dropped rather than queued on a congested connection."""

    __slots__ = ("_socket",)

    def __init__(self, socket: Socket) -> None:
        self._socket = socket

    async def emit(self, event: str, *args: Any) -> None:
        socket = self._socket
        socket._send_packet(event_packet(socket.nsp.name, event, args), volatile=True)
