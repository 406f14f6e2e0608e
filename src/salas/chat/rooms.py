"""Chat rooms on the server's rooms: chat room R is the server room ``"room:R"``.

Every socket is also alone in a server room named after its id; the prefix keeps a chat
room from ever being one of those (a client joining "room" <someone's id> would otherwise
receive what is sent to that socket alone).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["chat_rooms", "server_room"]

_PREFIX = "room:"


def server_room(room: str) -> str:
    """The server room that holds the members of chat room `room`."""
    return _PREFIX + room


def chat_rooms(server_rooms: Iterable[str]) -> set[str]:
    """The chat rooms among `server_rooms` (a socket's rooms, say)."""
    size = len(_PREFIX)
    return {room[size:] for room in server_rooms if room.startswith(_PREFIX)}
