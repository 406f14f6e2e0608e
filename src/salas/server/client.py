"""`Client`: the Socket.IO side of one Engine.IO session, holding its namespace sockets."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from salas.engine.logsafe import printable
from salas.engine.session import EngineSession
from salas.protocol import PacketDecoder, ProtocolError, SocketPacket, SocketPacketType
from salas.protocol.outgoing import OFFSETS_NONE, EncodedMessage
from salas.recovery import Recovery, RestoredSession
from salas.recovery.policy import offset_mode
from salas.server.errors import ConnectionRefused
from salas.server.handlers import call_handler
from salas.server.socket import Socket

if TYPE_CHECKING:
    from salas.server.namespace import Namespace
    from salas.server.server import Server

__all__ = ["Client"]

logger = logging.getLogger("salas.server")
# Enum members looked up once: attribute access on an Enum class is slow on hot paths.
_CONNECT = SocketPacketType.CONNECT
_CONNECT_ERROR = SocketPacketType.CONNECT_ERROR


class Client:
    __slots__ = ("_connect_timer", "_decoder", "_server", "session", "sockets")

    def __init__(self, server: Server, session: EngineSession) -> None:
        self._server = server
        self.session = session
        self.sockets: dict[str, Socket] = {}  # by namespace name
        self._decoder = PacketDecoder()
        session.on_message = self._on_message
        session.on_close = self._on_close
        # A connection that never joins a namespace is closed after connect_timeout.
        self._connect_timer: asyncio.TimerHandle | None = server.engine.loop.call_later(
            server.connect_timeout, self._connect_timed_out
        )

    def _connect_timed_out(self) -> None:
        self._connect_timer = None
        if not self.sockets:
            logger.info("closing session %s: no namespace joined in time", self.session.sid)
            self.session.close("forced close")

    def send(self, packet: SocketPacket) -> None:
        self.session.send_encoded(EncodedMessage.of_socket_packet(packet))

    # -- from the engine ----------------------------------------------------------------
    def _on_message(self, message: str | bytes) -> None:
        try:
            packet = self._decoder.feed(message)
        except ProtocolError as exc:
            logger.info("closing session %s: invalid packet (%s)", self.session.sid, printable(exc))
            self.session.close("parse error")
            return
        if packet is None:
            return
        socket = self.sockets.get(packet.nsp)
        kind = packet.type
        if socket is None and kind is _CONNECT:
            self._connect(packet.nsp, packet.data)
        elif socket is not None and kind is not _CONNECT:
            if kind is _CONNECT_ERROR:
                self._refuse(packet, "a client may not send CONNECT_ERROR")
            else:
                socket.on_packet(packet)
        else:
            # A second CONNECT, or a packet for a namespace not joined: the reference
            # server takes the client for broken and closes the connection.
            self._refuse(packet, "packet for a namespace in the wrong state")

    def _refuse(self, packet: SocketPacket, why: str) -> None:
        logger.info("closing session %s: %s (%s)", self.session.sid, why, printable(packet.nsp))
        self.session.close("parse error")

    def _on_close(self, reason: str) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        for socket in list(self.sockets.values()):
            socket.on_close(reason)
        observers = self._server.observers
        if observers:
            observers.connection_closed(self.session, reason)

    # -- joining a namespace --------------------------------------------------------------
    def _connect(self, name: str, auth: Any) -> None:
        nsp = self._server.namespace_for(name)
        if nsp is None:
            self.send(
                SocketPacket(SocketPacketType.CONNECT_ERROR, name, {"message": "Invalid namespace"})
            )
            return
        recovery = self._server.recovery
        # Decided on the raw payload: whether there was one at all is part of the choice.
        mode = (
            OFFSETS_NONE
            if recovery is None
            else offset_mode(auth, self.session.request.query_string)
        )
        auth = auth if isinstance(auth, dict) else None  # (None: `Socket.auth` makes {})
        if recovery is not None and auth is not None and "pid" in auth:
            self._in_background(self._recover(nsp, auth, recovery, mode))
            return
        socket = Socket(nsp, self, auth, secrets.token_urlsafe(15))
        socket.offsets = mode
        if nsp.middlewares:
            self._in_background(self._admit(nsp, socket))
        else:
            self._accept(nsp, socket)

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        self._server.tasks.spawn(coro)

    async def _recover(
        self, nsp: Namespace, auth: dict[str, Any], recovery: Recovery, mode: int
    ) -> None:
        """A client presenting a pid: give its session back, or connect it afresh."""
        restored = await recovery.restore(nsp.name, auth)
        if restored is None:
            socket = Socket(nsp, self, auth, secrets.token_urlsafe(15))
            socket.offsets = mode
            await self._admit(nsp, socket)
            return
        record = restored.record
        socket = Socket(nsp, self, auth, record.sid)
        socket.offsets = mode
        socket.pid = record.pid
        socket.recovered = True
        socket.base_offset = record.base_offset
        if isinstance(record.data, dict):
            socket.data = record.data
        try:
            if recovery.skip_middlewares:
                self._accept(nsp, socket, restored)
            else:
                await self._admit(nsp, socket, restored)
        finally:
            # Given back by `_accept`, or refused: either way it no longer collects.
            recovery.abandon(restored, resave=self.session.closed and not socket.connected)

    async def _admit(
        self, nsp: Namespace, socket: Socket, restored: RestoredSession | None = None
    ) -> None:
        """Run the namespace's middlewares, then accept the socket unless one refused."""
        for middleware in nsp.middlewares:
            try:
                result = middleware(socket)
                if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                    await result
            except ConnectionRefused as refused:
                self.send(
                    SocketPacket(SocketPacketType.CONNECT_ERROR, nsp.name, refused.to_payload())
                )
                return
            except Exception as exc:
                logger.exception("error in middleware of %s", nsp.name)
                self.send(
                    SocketPacket(SocketPacketType.CONNECT_ERROR, nsp.name, {"message": str(exc)})
                )
                return
        self._accept(nsp, socket, restored)

    def _accept(
        self, nsp: Namespace, socket: Socket, restored: RestoredSession | None = None
    ) -> None:
        if nsp.name in self.sockets or self.session.closed:
            return
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        self.sockets[nsp.name] = socket
        nsp.add_socket(socket)
        socket.connected = True
        reply: dict[str, Any] = {"sid": socket.id}
        recovery = self._server.recovery
        if recovery is not None:
            if socket.pid is None:
                socket.pid, socket.base_offset = recovery.new_session()
            reply["pid"] = socket.pid
            recovery.track(socket.pid, socket)
        # A write of its own, as Node makes it: a client may read one message per read of
        # its socket, and would miss what the connection handlers emit if it shared this one.
        connect = SocketPacket(SocketPacketType.CONNECT, nsp.name, reply)
        self.session.send_encoded_alone(EncodedMessage.of_socket_packet(connect))
        if restored is not None and recovery is not None:
            # Synchronously: what is broadcast from here on reaches the socket directly.
            missed = recovery.replay(restored)
            nsp.adapter.add_all(socket.id, restored.record.rooms)
            for message in missed:
                self.session.send_encoded(message)
        observers = self._server.observers
        if observers:
            observers.socket_connected(socket)
        for handler in nsp.connection_handlers:
            where = f"socket {socket.id}, connection to {nsp.name}"
            call_handler(self._server.tasks, handler, [socket], where)

    def disconnect_all(self) -> None:
        """Disconnect every namespace of this connection, then close it."""
        for socket in list(self.sockets.values()):
            self.send(SocketPacket(SocketPacketType.DISCONNECT, socket.nsp.name))
            socket.on_close("server namespace disconnect")
        self.session.close("forced close")

    def remove_socket(self, socket: Socket) -> None:
        if self.sockets.get(socket.nsp.name) is socket:
            del self.sockets[socket.nsp.name]
