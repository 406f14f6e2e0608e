"""What a logged broadcast reaches (salas.recovery.types.LoggedPacket.reaches)."""

from __future__ import annotations

import pytest

from salas.recovery import LoggedPacket


def logged(rooms: tuple[str, ...], except_rooms: tuple[str, ...] = ()) -> LoggedPacket:
    return LoggedPacket(1, "/", rooms, except_rooms, ('42["m"]',), 0)


@pytest.mark.parametrize(
    ("rooms", "except_rooms", "socket_rooms", "reached"),
    [
        ((), (), {"sid"}, True),  # to the whole namespace
        (("a",), (), {"sid", "a"}, True),
        (("a",), (), {"sid", "b"}, False),
        (("a", "b"), (), {"sid", "b"}, True),
        (("a",), ("sid",), {"sid", "a"}, False),  # socket.to(room): not the sender
        ((), ("x",), {"sid", "x"}, False),
    ],
)
def test_reaches_follows_rooms_and_except_rooms(
    rooms: tuple[str, ...], except_rooms: tuple[str, ...], socket_rooms: set[str], reached: bool
) -> None:
    """A socket is a recipient when in one of the rooms (or none given) and in no excluded one."""
    assert logged(rooms, except_rooms).reaches(frozenset(socket_rooms)) is reached
