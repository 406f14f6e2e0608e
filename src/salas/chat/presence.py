"""Who is connected, which rooms each socket is in, and the name it shows in each.

`PresenceBackend` is what the chat needs of presence; `LocalPresence` keeps it for the
sockets of this process (a backend shared by a cluster's processes can come beside it).

Pure bookkeeping (no I/O): the app updates it synchronously in its handlers, so what a
handler sees cannot change under it between two awaits of another handler. Rooms with no
members do not exist here (their history lives on in the store).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from salas.chat.errors import NAME_TAKEN, ChatError
from salas.chat.identity import display_name, name_key

__all__ = ["Departure", "LocalPresence", "PresenceBackend", "Rename"]


@dataclass(frozen=True, slots=True)
class Departure:
    """A socket left `room`, where its user (`user_id`) was shown as `user`; `last`: it was
    that user's last socket there, so the user has left the room."""

    room: str
    user: str
    user_id: str
    last: bool = True


@dataclass(frozen=True, slots=True)
class Rename:
    """In `room`, the socket shown as `previous` is now shown as `user`."""

    room: str
    previous: str
    user: str


class PresenceBackend(Protocol):
    """The chat's view of connected sockets, room membership and the names shown.

    Every method is synchronous and changes the state before it returns: the chat's
    handlers rely on that to see no change between two of their awaits. Each socket belongs
    to a user (`user_id`); the sockets of one user in a room are one member there, shown
    under one name, unique in the room (case-insensitively) among the users; `join` picks
    it. Members and counts are by user."""

    @property
    def connections(self) -> int:
        """How many sockets are connected."""
        ...

    def connect(self, sid: str, name: str, user_id: str | None = None) -> None:
        """A socket of user `user_id` (None: a user of its own, `sid`) connected, having
        chosen `name`; ValueError if `sid` is connected."""
        ...

    def disconnect(self, sid: str) -> list[Departure]:
        """Forget the socket; the rooms it left, in join order (empty if unknown)."""
        ...

    def is_connected(self, sid: str) -> bool:
        """Whether the socket is connected."""
        ...

    def name(self, sid: str) -> str:
        """The name the connected socket chose (KeyError if it is not connected)."""
        ...

    def name_in_use(self, name: str) -> bool:
        """Whether a connected socket chose this name (to pick guest names nobody has)."""
        ...

    def user_id(self, sid: str) -> str | None:
        """The user of a connected socket (None if it is not connected)."""
        ...

    def user_sockets(self, room: str, user_id: str) -> list[str]:
        """The sockets of user `user_id` in `room` (sorted; empty if the user is not there)."""
        ...

    def join(self, sid: str, room: str, prefer: str | None = None) -> tuple[str, bool]:
        """Add the socket to `room`: (the name it shows there, whether the socket is new
        there). Its user is new there when this is its only socket there
        (`user_sockets`)."""
        ...

    def leave(self, sid: str, room: str) -> str | None:
        """Remove the socket from `room`: the name it showed there, None if not a member.
        Its user has left the room when no other socket of it is there."""
        ...

    def rooms_of(self, sid: str) -> list[str]:
        """The socket's rooms in join order: the last one is its current room."""
        ...

    def current(self, sid: str) -> str | None:
        """The room the socket joined last (None if it is in none)."""
        ...

    def in_room(self, sid: str, room: str) -> bool:
        """Whether the socket is a member of `room`."""
        ...

    def shown_as(self, sid: str, room: str) -> str | None:
        """The name the socket shows in `room`, None if it is not a member."""
        ...

    def members(self, room: str) -> list[str]:
        """Names shown in `room` (one per user), sorted case-insensitively."""
        ...

    def users(self, room: str) -> list[dict[str, str]]:
        """``[{"id", "name"}]`` of the users in `room`, in the order of `members`."""
        ...

    def count(self, room: str) -> int:
        """How many users are in `room`."""
        ...

    def room_list(
        self, limit: int | None = None, where: Callable[[str], bool] | None = None
    ) -> list[dict[str, object]]:
        """``[{"name", "count"}]`` of the rooms with members (for which `where` holds), by
        name (with `limit`, the most populated); counts are users."""
        ...

    def rename(self, sid: str, new: str) -> list[Rename]:
        """Show `new` in every room of the socket; ``name_taken`` (changing nothing) if
        another member of one of them shows it. The rooms where the shown name changed."""
        ...


class _Room:
    __slots__ = ("display", "keys", "sockets")

    def __init__(self) -> None:
        self.display: dict[str, str] = {}  # user id -> name shown in this room
        self.keys: dict[str, str] = {}  # name_key(shown name) -> user id
        self.sockets: dict[str, set[str]] = {}  # user id -> its sockets in this room


class LocalPresence:
    """`PresenceBackend` for the sockets of this process, in memory."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}  # sid -> the name the socket chose
        self._users: dict[str, str] = {}  # sid -> its user id
        self._name_keys: dict[str, int] = {}  # name_key(chosen name) -> sockets using it
        # sid -> rooms, in join order; made by the first join, dropped when the last room
        # is left (most of the time, most connected sockets are in no room).
        self._joined: dict[str, list[str]] = {}
        self._rooms: dict[str, _Room] = {}

    # -- connections -------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """How many sockets are connected."""
        return len(self._names)

    def connect(self, sid: str, name: str, user_id: str | None = None) -> None:
        """A socket of user `user_id` (None: a user of its own, `sid`) connected, having
        chosen `name`; ValueError if `sid` is connected."""
        if sid in self._names:
            raise ValueError(f"socket {sid} is already connected")
        self._names[sid] = name
        self._users[sid] = user_id if user_id is not None else sid
        self._count_name(name, +1)

    def disconnect(self, sid: str) -> list[Departure]:
        """Forget the socket; the rooms it left, in join order (empty if unknown)."""
        user_id = self._users.get(sid, sid)
        departures = [
            Departure(room, user, user_id, not self.user_sockets(room, user_id))
            for room in list(self._joined.get(sid, ()))
            if (user := self.leave(sid, room)) is not None
        ]
        name = self._names.pop(sid, None)
        if name is not None:
            self._count_name(name, -1)
        self._users.pop(sid, None)
        self._joined.pop(sid, None)
        return departures

    def is_connected(self, sid: str) -> bool:
        """Whether the socket is connected."""
        return sid in self._names

    def name(self, sid: str) -> str:
        """The name the connected socket chose (KeyError if it is not connected)."""
        return self._names[sid]

    def name_in_use(self, name: str) -> bool:
        """Whether a connected socket chose this name (to pick guest names nobody has)."""
        return name_key(name) in self._name_keys

    def user_id(self, sid: str) -> str | None:
        """The user of a connected socket (None if it is not connected)."""
        return self._users.get(sid)

    def user_sockets(self, room: str, user_id: str) -> list[str]:
        """The sockets of user `user_id` in `room` (sorted; empty if the user is not there)."""
        state = self._rooms.get(room)
        return [] if state is None else sorted(state.sockets.get(user_id, ()))

    def _count_name(self, name: str, delta: int) -> None:
        key = name_key(name)
        count = self._name_keys.get(key, 0) + delta
        if count > 0:
            self._name_keys[key] = count
        else:
            self._name_keys.pop(key, None)

    # -- rooms ---------------------------------------------------------------------------
    def join(self, sid: str, room: str, prefer: str | None = None) -> tuple[str, bool]:
        """Add the socket to `room`: (the name it shows there, whether the socket is new
        there).

        Re-joining a room makes it the socket's current room again. A socket whose user is
        there already (another of its sockets) shows the user's name there. `prefer`: the
        name to show if no member shows it (a recovered socket's name there before it
        dropped)."""
        user_id = self._users[sid]  # (KeyError: not connected)
        joined = self._joined.get(sid)
        if joined is None:
            joined = self._joined[sid] = []
        state = self._rooms.get(room)
        if state is not None and sid in state.sockets.get(user_id, ()):
            joined.remove(room)
            joined.append(room)
            return state.display[user_id], False
        if state is None:
            state = self._rooms[room] = _Room()
        shown = state.display.get(user_id)
        if shown is None:
            if prefer is not None and name_key(prefer) not in state.keys:
                shown = prefer
            else:
                shown = display_name(self._names[sid], state.keys)
            state.display[user_id] = shown
            state.keys[name_key(shown)] = user_id
        state.sockets.setdefault(user_id, set()).add(sid)
        joined.append(room)
        return shown, True

    def leave(self, sid: str, room: str) -> str | None:
        """Remove the socket from `room`: the name it showed there, None if not a member.
        Its user has left the room when no other socket of it is there."""
        state = self._rooms.get(room)
        user_id = self._users.get(sid)
        if state is None or user_id is None or sid not in state.sockets.get(user_id, ()):
            return None
        shown = state.display[user_id]
        sockets = state.sockets[user_id]
        sockets.discard(sid)
        if not sockets:
            del state.sockets[user_id]
            del state.display[user_id]
            del state.keys[name_key(shown)]
        if not state.display:
            del self._rooms[room]
        joined = self._joined[sid]
        joined.remove(room)
        if not joined:
            del self._joined[sid]
        return shown

    def rooms_of(self, sid: str) -> list[str]:
        """The socket's rooms in join order: the last one is its current room."""
        return list(self._joined.get(sid, ()))

    def current(self, sid: str) -> str | None:
        """The room the socket joined last (None if it is in none)."""
        joined = self._joined.get(sid)
        return joined[-1] if joined else None

    def in_room(self, sid: str, room: str) -> bool:
        """Whether the socket is a member of `room`."""
        return self.shown_as(sid, room) is not None

    def shown_as(self, sid: str, room: str) -> str | None:
        """The name the socket shows in `room`, None if it is not a member."""
        state = self._rooms.get(room)
        user_id = self._users.get(sid)
        if state is None or user_id is None or sid not in state.sockets.get(user_id, ()):
            return None
        return state.display[user_id]

    def members(self, room: str) -> list[str]:
        """Names shown in `room` (one per user), sorted case-insensitively (a stable order
        for pages)."""
        return [user["name"] for user in self.users(room)]

    def users(self, room: str) -> list[dict[str, str]]:
        """``[{"id", "name"}]`` of the users in `room`, in the order of `members`."""
        state = self._rooms.get(room)
        if state is None:
            return []
        pairs = sorted(state.display.items(), key=lambda item: (name_key(item[1]), item[1]))
        return [{"id": user_id, "name": shown} for user_id, shown in pairs]

    def count(self, room: str) -> int:
        """How many users are in `room`."""
        state = self._rooms.get(room)
        return 0 if state is None else len(state.display)

    def room_list(
        self, limit: int | None = None, where: Callable[[str], bool] | None = None
    ) -> list[dict[str, object]]:
        """``[{"name", "count"}]`` of the rooms with members for which `where` holds (all
        without it), by name; with `limit`, only that many: the most populated (ties: by
        name). Counts are users."""
        rooms: Iterable[tuple[str, _Room]] = self._rooms.items()
        if where is not None:
            rooms = [(room, state) for room, state in rooms if where(room)]
        else:
            rooms = list(rooms)
        if limit is not None and len(rooms) > limit:
            rooms = heapq.nsmallest(limit, rooms, key=lambda item: (-len(item[1].display), item[0]))
        return [{"name": room, "count": len(state.display)} for room, state in sorted(rooms)]

    # -- names -------------------------------------------------------------------------
    def rename(self, sid: str, new: str) -> list[Rename]:
        """Choose a new name, shown as is in every room of the socket (for its user there).

        Raises ``name_taken`` (changing nothing) if another user in one of those rooms
        shows it; returns the rooms where the shown name changed."""
        key = name_key(new)
        user_id = self._users[sid]
        for room in self._joined.get(sid, ()):
            holder = self._rooms[room].keys.get(key)
            if holder is not None and holder != user_id:
                raise ChatError(NAME_TAKEN, f"the name {new!r} is taken in room {room!r}")
        self._count_name(self._names[sid], -1)
        self._names[sid] = new
        self._count_name(new, +1)
        renames: list[Rename] = []
        for room in self._joined.get(sid, ()):
            state = self._rooms[room]
            previous = state.display[user_id]
            if previous == new:
                continue
            del state.keys[name_key(previous)]
            state.display[user_id] = new
            state.keys[key] = user_id
            renames.append(Rename(room, previous, new))
        return renames
