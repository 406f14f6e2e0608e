"""The in-process adapter, home of the broadcast fast path.

A broadcast encodes its packet once (`EncodedMessage`) and hands that same object to every
recipient's Engine.IO session: websocket sessions append its pre-built frame bytes to their
per-iteration output, polling sessions append its packets to their payload. Per recipient
that is a dict lookup and a list append, nothing more.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from salas.adapter.base import (
    BroadcastOptions,
    Member,
    MemberRegistry,
    MembershipObserver,
    RemoteSocket,
)
from salas.protocol.outgoing import EncodedMessage

__all__ = ["MemoryAdapter"]


class MemoryAdapter:
    """The :class:`~salas.adapter.base.Adapter` of one process: rooms in two dicts of sets.

    The default of ``Server(adapter=...)``. Every operation concerns this process's
    sockets only; ``opts.local`` makes no difference.

    Args:
        nsp: The namespace whose rooms it keeps.

    Attributes:
        nsp: The namespace whose rooms it keeps.
        rooms: Room name to the ids of the sockets in it; a room exists while it is not
            empty.
        sids: Socket id to the names of the rooms it is in.
        membership_observer: Told of every room a socket joins or leaves, when set (the
            server sets it while it has observers; see :mod:`salas.server.observers`).
            None, the default, costs one test per membership change.
        broadcasts: Broadcasts delivered to this process's sockets (with a cluster
            adapter, those of other processes included), counted once each.
        deliveries: Recipients those broadcasts were queued for, counted once per
            broadcast (volatile packets dropped on congested connections included).
    """

    def __init__(self, nsp: MemberRegistry) -> None:
        self.nsp = nsp
        self.rooms: dict[str, set[str]] = {}
        self.sids: dict[str, set[str]] = {}
        self.membership_observer: MembershipObserver | None = None
        self.broadcasts = 0
        self.deliveries = 0

    async def init(self) -> None:
        """Nothing to start."""
        return None

    async def close(self) -> None:
        """Nothing to release."""
        return None

    # -- membership -------------------------------------------------------------------
    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        """Put socket ``sid`` in each of ``rooms``, creating the rooms that do not exist.

        Args:
            sid: The socket id.
            rooms: Room names.
        """
        joined = self.sids.get(sid)
        if joined is None:
            joined = self.sids[sid] = set()
        observer = self.membership_observer
        for room in rooms:
            new = observer is not None and room not in joined
            joined.add(room)
            members = self.rooms.get(room)
            if members is None:
                self.rooms[room] = {sid}
            else:
                members.add(sid)
            if new and observer is not None:
                observer.room_joined(self.nsp.name, room, sid)

    def remove(self, sid: str, room: str) -> None:
        """Take socket ``sid`` out of ``room`` (a room left empty is deleted).

        Args:
            sid: The socket id.
            room: The room's name; nothing happens if the socket is not in it.
        """
        joined = self.sids.get(sid)
        observer = self.membership_observer
        left = observer is not None and joined is not None and room in joined
        if joined is not None:
            joined.discard(room)
        members = self.rooms.get(room)
        if members is not None:
            members.discard(sid)
            if not members:
                del self.rooms[room]  # rooms exist only while someone is in them
        if left and observer is not None:
            observer.room_left(self.nsp.name, room, sid)

    def remove_all(self, sid: str) -> None:
        """Take socket ``sid`` out of every room it is in (rooms left empty are deleted)."""
        joined = self.sids.pop(sid, None)
        if not joined:
            return
        observer = self.membership_observer
        for room in joined:
            members = self.rooms.get(room)
            if members is not None:
                members.discard(sid)
                if not members:
                    del self.rooms[room]
            if observer is not None:
                observer.room_left(self.nsp.name, room, sid)

    def socket_rooms(self, sid: str) -> set[str]:
        """A copy of the rooms socket ``sid`` is in (empty for an unknown socket)."""
        return set(self.sids.get(sid, ()))

    def room_members(self, room: str) -> set[str]:
        """A copy of the ids of the sockets in ``room`` (empty if it does not exist)."""
        return set(self.rooms.get(room, ()))

    # -- recipients -------------------------------------------------------------------
    def recipients(self, opts: BroadcastOptions) -> Collection[str]:
        """The ids of the sockets matching ``opts``, each once, in no particular order."""
        if opts.rooms:
            if len(opts.rooms) == 1 and not opts.except_rooms:
                (room,) = opts.rooms
                # A snapshot: whatever a recipient's delivery sets off (a session closing and
                # leaving its rooms) must not change the set being walked. Copying a set of
                # a thousand ids costs a few microseconds once per broadcast.
                return tuple(self.rooms.get(room, ()))
            found: set[str] = set()
            for room in opts.rooms:
                found.update(self.rooms.get(room, ()))
        else:
            found = set(self.sids)
        for room in opts.except_rooms:
            found.difference_update(self.rooms.get(room, ()))
        return found

    # -- operations -------------------------------------------------------------------
    async def broadcast(self, message: EncodedMessage, opts: BroadcastOptions) -> None:
        """Queue ``message`` on every matching socket's connection; see :meth:`deliver`."""
        self.deliver(message, opts)

    def deliver(self, message: EncodedMessage, opts: BroadcastOptions) -> None:
        """Queue ``message`` on the connection of each local socket matching ``opts``.

        Synchronous: when it returns the message is queued everywhere (not yet written).
        With ``opts.volatile`` congested connections drop it. Each socket gets the form its
        offset mode takes (:meth:`EncodedMessage.for_mode`).
        """
        # The per-recipient loop of every broadcast: keep it lean.
        nsp = self.nsp
        sockets = nsp.sockets
        volatile = opts.volatile
        odd = message.odd_mode
        recipients = self.recipients(opts)
        # Counted once per broadcast, never per recipient (metrics read these).
        self.broadcasts += 1
        self.deliveries += len(recipients)
        if odd is not None and nsp.offset_modes[odd]:
            # Some sockets here take the other form of a recovery broadcast (with or
            # without its offset argument): chosen per recipient, built once if needed.
            for sid in recipients:
                socket = sockets.get(sid)
                if socket is not None:
                    socket.session.send_encoded(message.for_mode(socket.offsets), volatile)
            return
        for sid in recipients:
            socket = sockets.get(sid)
            if socket is not None:
                socket.session.send_encoded(message, volatile)

    def _matching(self, opts: BroadcastOptions) -> list[Member]:
        sockets = self.nsp.sockets
        return [sockets[sid] for sid in list(self.recipients(opts)) if sid in sockets]

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Member | RemoteSocket]:
        """The sockets matching ``opts`` (all of them local members)."""
        return list(self._matching(opts))

    async def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        """Put every socket matching ``opts`` in ``rooms``; done when it returns."""
        rooms = list(rooms)
        for socket in self._matching(opts):
            self.add_all(socket.id, rooms)

    async def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        """Take every socket matching ``opts`` out of ``rooms``; done when it returns."""
        rooms = list(rooms)
        for socket in self._matching(opts):
            for room in rooms:
                self.remove(socket.id, room)

    async def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        """Disconnect every socket matching ``opts``, one after another.

        Args:
            opts: Which sockets.
            close: Also end each socket's whole connection.
        """
        for socket in self._matching(opts):
            await socket.disconnect(close)
