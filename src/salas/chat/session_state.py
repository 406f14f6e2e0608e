"""What the chat keeps in `socket.data`, so that a recovered socket gets its place back.

With connection state recovery the server saves a disconnected socket's `data` (as JSON in
the durable stores, so it survives a restart of `salas serve`) and hands it back when the
client recovers the session. The chat mirrors there, after every change, the part of its
bookkeeping that a comeback needs::

    socket.data["chat"] = {"name": "ana", "rooms": [["room1", "ana"], ["room2", "ana#2"]],
                           "user_id": "guest-0123456789ab"}

`name` is the name the socket chose, `rooms` its rooms in join order (the current room
last) with the name it showed in each, `user_id` its user id (an anonymous socket's guest
id is kept only here; with token auth the id is the token's, in ``socket.data["user"]``).
A state without `user_id` (saved before ids existed) reads back with None. Only JSON types.
What comes back from a store is checked as strictly as a client's input: anything else is
no saved state at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from salas.chat.errors import ChatError
from salas.chat.identity import check_user_id
from salas.chat.validation import check_name, check_room

__all__ = ["DATA_KEY", "SavedState", "load_state"]

DATA_KEY = "chat"
# More rooms than any socket may be in (ChatConfig.max_rooms_per_socket defaults to 100):
# a bound on what is read back, not a policy.
_MAX_ROOMS = 10_000


@dataclass(frozen=True, slots=True)
class SavedState:
    """A socket's name and its rooms (join order, current last) with the name shown there,
    and its user id."""

    name: str
    rooms: tuple[tuple[str, str], ...] = ()
    user_id: str | None = None

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "rooms": [[room, shown] for room, shown in self.rooms],
        }
        if self.user_id is not None:
            data["user_id"] = self.user_id
        return data


def _exact(check: Any, value: object) -> str | None:
    """`value` if it is already what `check` makes of it (valid and trimmed), else None."""
    try:
        checked: str = check(value)
    except ChatError:
        return None
    return checked if checked == value else None


def load_state(value: object) -> SavedState | None:
    """The state `SavedState.to_data` wrote, or None if `value` is not such a thing."""
    if not isinstance(value, dict):
        return None
    name = _exact(check_name, value.get("name"))
    rooms = value.get("rooms")
    user_id = value.get("user_id")
    if user_id is not None and _exact(check_user_id, user_id) is None:
        return None
    if name is None or not isinstance(rooms, list) or len(rooms) > _MAX_ROOMS:
        return None
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in rooms:
        if not isinstance(item, list) or len(item) != 2:
            return None
        room, shown = _exact(check_room, item[0]), _exact(check_name, item[1])
        if room is None or shown is None or room in seen:
            return None
        seen.add(room)
        pairs.append((room, shown))
    return SavedState(name, tuple(pairs), user_id)
