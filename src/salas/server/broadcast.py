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

_EVENT = SocketPacketType.EVENT  # (an Enum class attribute costs a lookup on every use)


def event_packet(
    nsp: str, event: str, args: tuple[Any, ...], ack_id: int | None = None
) -> SocketPacket:
    """The EVENT packet of ``event`` with ``args`` in namespace ``nsp``.

    Args:
        nsp: The namespace's name.
        event: The event name.
        args: The event's arguments.
        ack_id: The acknowledgement id, when an ack is awaited.

    Raises:
        TypeError: ``event`` is not a string.
        ValueError: ``event`` is reserved (:data:`RESERVED_EVENTS`).
    """
    if not isinstance(event, str):
        raise TypeError(f"event name must be a string, not {type(event).__name__}")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")
    return SocketPacket(_EVENT, nsp, [event, *args], ack_id)


def room_names(rooms: tuple[str | Iterable[str], ...]) -> frozenset[str]:
    """The room names of ``to(*rooms)``-style arguments: strings or iterables of strings."""
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
    """An immutable selection of recipients, and the operations on them.

    Made by ``io.to(...)``, ``io.except_(...)``, ``socket.to(...)``, ``socket.broadcast``
    and the like. The selecting methods (``to``, ``except_``, ``volatile``, ``local``)
    return a new operator and leave this one unchanged, so one can be kept and reused.
    With no room selected, every socket of the namespace is a recipient.
    """

    __slots__ = ("_nsp", "_opts")

    def __init__(self, nsp: Namespace, opts: BroadcastOptions | None = None) -> None:
        self._nsp = nsp
        self._opts = opts or BroadcastOptions()

    def _with(self, **changes: Any) -> BroadcastOperator:
        return BroadcastOperator(self._nsp, self._opts._replace(**changes))

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Add rooms: recipients are in at least one of the selected rooms.

        ``in_`` is the same method.

        Args:
            *rooms: Room names, each a string or an iterable of strings.

        Returns:
            A new operator.
        """
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
        """Exclude the sockets in these rooms (a socket id is a room of its own).

        Args:
            *rooms: Room names, each a string or an iterable of strings.

        Returns:
            A new operator.
        """
        return self._with(except_rooms=self._opts.except_rooms | room_names(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """A new operator whose emits are dropped, not queued, on congested connections.

        Volatile broadcasts are also not logged for connection state recovery.
        """
        return self._with(volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """A new operator limited to sockets connected to this process.

        It only makes a difference with a cluster adapter (:class:`~salas.adapter.RedisAdapter`).
        """
        return self._with(local=True)

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to every selected socket.

        The packet is encoded once for all recipients. Returns once it is queued on
        every local recipient's connection (and, with a cluster adapter, published to
        the other processes), not when it is delivered. With connection state recovery,
        a non-volatile broadcast carries its offset as an extra last argument and is
        logged.

        Args:
            event: The event name.
            *args: The event's arguments: JSON-serialisable values or ``bytes``.

        Raises:
            TypeError: ``event`` is not a string.
            ValueError: ``event`` is a reserved event name.
        """
        nsp = self._nsp
        packet = event_packet(nsp.name, event, args)
        recovery = nsp.server.recovery
        # Checked here rather than by always awaiting adapter_ready: emit runs for every
        # message a chat relays, and the adapter has almost always started long before.
        if nsp.adapter_starting is not None:
            await nsp.adapter_ready()
        adapter = nsp.adapter
        if recovery is None:
            message = EncodedMessage.of_socket_packet(packet)
        elif not self._opts.volatile and getattr(adapter, "sequences_offsets", False):
            # A cluster adapter numbers it cluster-wide (salas.cluster.offsets), and logs it
            # through `recovery` as this process reads it back.
            await adapter.broadcast_sequenced(  # type: ignore[attr-defined]
                EncodedMessage.of_broadcast(packet, ""), self._opts
            )
            return
        else:
            # Once per broadcast: the offset, the encoding and the log entry are shared by
            # every recipient.
            message = recovery.on_broadcast(nsp.name, packet, self._opts)
        await adapter.broadcast(message, self._opts)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """The selected sockets, in this process and (with a cluster adapter) others.

        With :class:`~salas.adapter.RedisAdapter` this waits for every other process's
        answer, at most 5 seconds; then it returns what came in time.

        Returns:
            This process's sockets as :class:`Socket`, other processes' as
            :class:`~salas.adapter.RemoteSocket` (a snapshot of id, rooms and ``data``).
        """
        nsp = self._nsp
        if nsp.adapter_starting is not None:
            await nsp.adapter_ready()
        local = nsp.sockets
        found = await nsp.adapter.fetch_sockets(self._opts)
        return [
            m if isinstance(m, RemoteSocket) else local[m.id]
            for m in found
            if isinstance(m, RemoteSocket) or m.id in local
        ]

    async def sockets_join(self, *rooms: str | Iterable[str]) -> None:
        """Put every selected socket in these rooms.

        Sockets of this process have joined when it returns. With a cluster adapter the
        request is published to the other processes, which apply it when they receive
        it: it returns without waiting for them.

        Args:
            *rooms: Room names, each a string or an iterable of strings.
        """
        await self._nsp.adapter_ready()
        await self._nsp.adapter.add_sockets(self._opts, room_names(rooms))

    async def sockets_leave(self, *rooms: str | Iterable[str]) -> None:
        """Take every selected socket out of these rooms.

        As :meth:`sockets_join`, other processes apply it after this returns.

        Args:
            *rooms: Room names, each a string or an iterable of strings.
        """
        await self._nsp.adapter_ready()
        await self._nsp.adapter.del_sockets(self._opts, room_names(rooms))

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every selected socket, as :meth:`Socket.disconnect` does.

        As :meth:`sockets_join`, other processes apply it after this returns.

        Args:
            close: Also end each socket's whole connection (default False).
        """
        await self._nsp.adapter_ready()
        await self._nsp.adapter.disconnect_sockets(self._opts, close)
