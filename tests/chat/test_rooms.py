"""Chat rooms on server rooms: the prefix mapping both ways."""

from __future__ import annotations

from salas.chat.rooms import chat_rooms, server_room


def test_server_room_is_prefixed() -> None:
    """Chat room R is the server room "room:R", never a bare socket id."""
    assert server_room("lobby") == "room:lobby"
    assert server_room("room:x") == "room:room:x"


def test_chat_rooms_keeps_only_chat_rooms() -> None:
    """A socket's own room (its id) is left out; chat rooms come back without the prefix."""
    sid = "AbC123"
    rooms = {sid, server_room("a"), server_room("room:b")}
    assert chat_rooms(rooms) == {"a", "room:b"}
    assert chat_rooms([sid]) == set()
