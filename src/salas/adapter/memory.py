"""The in-process adapter, home of the broadcast fast path.

A broadcast encodes its packet once (`EncodedMessage`) and hands that same object to every
recipient's Engine.IO session: websocket sessions append its pre-built frame bytes to their
per-iteration output, polling sessions append its packets to their payload. Per recipient
that is a dict lookup and a list append, nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable

from salas.adapter.base import BroadcastOptions, Member, MemberRegistry, RemoteSocket
from salas.protocol.outgoing import EncodedMessage

__all__ = ["MemoryAdapter"]


class MemoryAdapter:
    def __init__(self, nsp: MemberRegistry) -> None:
        self.nsp = nsp
        self.rooms: dict[str, set[str]] = {}
        self.sids: dict[str, set[str]] = {}

    async def init(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- membership -------------------------------------------------------------------
    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        joined = self.sids.get(sid)
        if joined is None:
            joined = self.sids[sid] = set()
        for room in rooms:
            joined.add(room)
            members = self.rooms.get(room)
            if members is None:
                self.rooms[room] = {sid}
            else:
                members.add(sid)

    def remove(self, sid: str, room: str) -> None:
        joined = self.sids.get(sid)
        if joined is not None:
            joined.discard(room)
        members = self.rooms.get(room)
        if members is not None:
            members.discard(sid)
            if not members:
                del self.rooms[room]  # rooms exist only while someone is in them

    def remove_all(self, sid: str) -> None:
        joined = self.sids.pop(sid, None)
        if not joined:
            return
        for room in joined:
            members = self.rooms.get(room)
            if members is not None:
                members.discard(sid)
                if not members:
                    del self.rooms[room]

    def socket_rooms(self, sid: str) -> set[str]:
        return set(self.sids.get(sid, ()))

    def room_members(self, room: str) -> set[str]:
        return set(self.rooms.get(room, ()))

    # -- recipients -------------------------------------------------------------------
    def recipients(self, opts: BroadcastOptions) -> Iterable[str]:
        """Socket ids matching `opts`, each once."""
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
        self.deliver(message, opts)

    def deliver(self, message: EncodedMessage, opts: BroadcastOptions) -> None:
        """Hand `message` to each local recipient (the per-recipient loop; keep it lean)."""
        sockets = self.nsp.sockets
        volatile = opts.volatile
        for sid in self.recipients(opts):
            socket = sockets.get(sid)
            if socket is not None:
                socket.session.send_encoded(message, volatile)

    def _matching(self, opts: BroadcastOptions) -> list[Member]:
        sockets = self.nsp.sockets
        return [sockets[sid] for sid in list(self.recipients(opts)) if sid in sockets]

    async def fetch_sockets(self, opts: BroadcastOptions) -> list[Member | RemoteSocket]:
        return list(self._matching(opts))

    async def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        for socket in self._matching(opts):
            self.add_all(socket.id, rooms)

    async def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        for socket in self._matching(opts):
            for room in rooms:
                self.remove(socket.id, room)

    async def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        for socket in self._matching(opts):
            await socket.disconnect(close)
