"""`io.to(room).except_(other).emit(...)`: choosing recipients, then acting on them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from salas.adapter.base import BroadcastOptions, RemoteSocket
from salas.protocol import SocketPacket, SocketPacketType
from salas.protocol.outgoing import EncodedMessage
from salas.protocol.socketio import RESERVED_EVENTS

if TYPE_CHECKING:
    from salas.server.namespace import Namespace
    from salas.server.socket import Socket

__all__ = ["RESERVED_EVENTS", "BroadcastOperator", "event_packet", "room_names"]


def event_packet(
    nsp: str, event: str, args: tuple[Any, ...], ack_id: int | None = None
) -> SocketPacket:
    if not isinstance(event, str):
        raise TypeError(f"event name must be a string, not {type(event).__name__}")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")
    return SocketPacket(SocketPacketType.EVENT, nsp, [event, *args], ack_id)


def room_names(rooms: tuple[str | Iterable[str], ...]) -> frozenset[str]:
    if len(rooms) == 1 and type(rooms[0]) is str:
        return frozenset((rooms[0],))
    names: set[str] = set()
    for room in rooms:
        if isinstance(room, str):
            names.add(room)
        else:
            names.update(room)
    return frozenset(names)


class BroadcastOperator:
    """An immutable selection of recipients; each method returns a new one."""

    __slots__ = ("_nsp", "_opts")

    def __init__(self, nsp: Namespace, opts: BroadcastOptions | None = None) -> None:
        self._nsp = nsp
        self._opts = opts or BroadcastOptions()

    def _with(self, **changes: Any) -> BroadcastOperator:
        return BroadcastOperator(self._nsp, self._opts._replace(**changes))

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Add rooms: recipients are in at least one of them."""
        opts = self._opts
        # Built directly rather than with dataclasses.replace: `io.to(room)` runs for
        # every message a chat relays.
        return BroadcastOperator(
            self._nsp,
            BroadcastOptions(
                opts.rooms | room_names(rooms), opts.except_rooms, opts.volatile, opts.local
            ),
        )

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Exclude the sockets in these rooms (a socket id is a room of its own)."""
        return self._with(except_rooms=self._opts.except_rooms | room_names(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """Drop the packet for connections that are congested instead of queueing it."""
        return self._with(volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """Only sockets connected to this process (with a cluster adapter)."""
        return self._with(local=True)

    async def emit(self, event: str, *args: Any) -> None:
        """Send `event` with `args` to every selected socket."""
        nsp = self._nsp
        packet = event_packet(nsp.name, event, args)
        recovery = nsp.server.recovery
        if recovery is None:
            message = EncodedMessage.of_socket_packet(packet)
        else:
            # Once per broadcast: the offset, the encoding and the log entry are shared by
            # every recipient.
            message = recovery.on_broadcast(nsp.name, packet, self._opts)
        await nsp.adapter.broadcast(message, self._opts)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """The matching sockets: this process's as `Socket`, other processes' as `RemoteSocket`."""
        local = self._nsp.sockets
        found = await self._nsp.adapter.fetch_sockets(self._opts)
        return [
            m if isinstance(m, RemoteSocket) else local[m.id]
            for m in found
            if isinstance(m, RemoteSocket) or m.id in local
        ]

    async def sockets_join(self, *rooms: str | Iterable[str]) -> None:
        await self._nsp.adapter.add_sockets(self._opts, room_names(rooms))

    async def sockets_leave(self, *rooms: str | Iterable[str]) -> None:
        await self._nsp.adapter.del_sockets(self._opts, room_names(rooms))

    async def disconnect_sockets(self, close: bool = False) -> None:
        await self._nsp.adapter.disconnect_sockets(self._opts, close)
