"""Room access rules: which rooms are private, and who may enter them.

A room is private when its name matches one of the configured patterns: shell-style globs
(``staff-*``, ``ops``), matched case-sensitively as room names are. A private room may be
entered by a user whose ``rooms`` claim matches it (exactly or as a glob) and by every
moderator and admin; without authentication (no claims) nobody may enter it.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from salas.auth.claims import Claims

__all__ = ["RoomRules", "matches_any"]


def matches_any(room: str, patterns: Iterable[str]) -> bool:
    """Whether ``room`` equals or matches (case-sensitive glob) one of ``patterns``.

    Equality is checked first so that a room whose name holds glob characters (``a[1]``)
    is still matched by its own name.
    """
    return any(room == pattern or fnmatchcase(room, pattern) for pattern in patterns)


class RoomRules:
    """Which rooms are private, and whether a user may enter a room.

    Args:
        private_patterns: Globs naming the private rooms (``"staff-*"``, ``"ops"``);
            blank ones are ignored. None or empty: no room is private.

    Attributes:
        private_patterns: The patterns, stripped, as a tuple.
    """

    __slots__ = ("private_patterns",)

    def __init__(self, private_patterns: Iterable[str] = ()) -> None:
        self.private_patterns: tuple[str, ...] = tuple(
            pattern.strip() for pattern in private_patterns if pattern.strip()
        )

    @classmethod
    def parse(cls, text: str) -> RoomRules:
        """Rules from a comma-separated list of patterns (``--private-rooms 'staff-*,ops'``)."""
        return cls(text.split(","))

    def __bool__(self) -> bool:
        """True when some room is private."""
        return bool(self.private_patterns)

    def __repr__(self) -> str:
        return f"RoomRules({list(self.private_patterns)!r})"

    def is_private(self, room: str) -> bool:
        """Whether ``room`` matches one of the private patterns."""
        return matches_any(room, self.private_patterns)

    def may_enter(self, claims: Claims | None, room: str) -> bool:
        """Whether a user may join, read, post and type in ``room``.

        Args:
            claims: The user's verified claims, or None without authentication (then
                private rooms can never be entered).
            room: The room's name.
        """
        if not self.is_private(room):
            return True
        return claims is not None and claims.may_enter(room, self.private_patterns)

    def visible(self, claims: Claims | None, rooms: Iterable[str]) -> list[str]:
        """The rooms of ``rooms`` that this user may enter, in their order (for room lists)."""
        return [room for room in rooms if self.may_enter(claims, room)]
