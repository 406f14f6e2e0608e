"""`Claims`: who a verified token says the user is, checked and bounded.

The claims salas reads from a token: ``sub`` (required: the stable user id), ``name`` (the
display name, ``sub`` when absent), ``rooms`` (private room names or globs the user may
enter), ``role`` (``member``, ``moderator`` or ``admin``) and ``exp``. Other claims are
ignored. A value of the wrong type or out of bounds refuses the whole token
(:class:`~salas.auth.errors.AuthError`): the issuer is trusted, so a bad claim is a bug or
a forgery, never something to repair silently.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from salas.auth.errors import AuthError
from salas.auth.rooms import matches_any

__all__ = [
    "MAX_NAME",
    "MAX_ROOM_PATTERN",
    "MAX_ROOM_PATTERNS",
    "MAX_SUB",
    "ROLES",
    "Claims",
]

ROLES = ("member", "moderator", "admin")
MAX_SUB = 256
# The chat's display-name bound (salas.chat.validation.MAX_NAME): a name from a token must
# be one the chat would accept from `nick`.
MAX_NAME = 32
MAX_ROOM_PATTERN = 128
MAX_ROOM_PATTERNS = 256

# Controls, format characters (bidi overrides make one name look like another), lone
# surrogates and line/paragraph separators, except the joiners and tag characters that
# emoji sequences are made of: the rule the chat applies to display names.
_BANNED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_EMOJI_FORMAT = frozenset({"\u200c", "\u200d"})


def _char_ok(ch: str) -> bool:
    if ch.isascii():
        return ch.isprintable()
    if ch in _EMOJI_FORMAT or "\U000e0020" <= ch <= "\U000e007f":
        return True
    return unicodedata.category(ch) not in _BANNED


def _label(value: object, limit: int, claim: str) -> str:
    """A printable string of 1 to ``limit`` characters, stripped; AuthError("bad <claim>")."""
    if not isinstance(value, str):
        raise AuthError(f"bad {claim}")
    text = value.strip()
    if not text or len(text) > limit or not all(map(_char_ok, text)):
        raise AuthError(f"bad {claim}")
    return text


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified user: what the token says, validated.

    Build one with :meth:`from_payload`, which checks every field; the constructor trusts
    its arguments.

    Attributes:
        sub: The stable user id (1 to 256 printable characters).
        name: The display name (1 to 32 printable characters; ``sub``, cut to 32, when the
            token has none).
        rooms: Private room names or globs this user may enter.
        role: ``"member"``, ``"moderator"`` or ``"admin"``.
        exp: When the token expires (seconds since the epoch), or None if it never does.
    """

    sub: str
    name: str
    rooms: tuple[str, ...] = ()
    role: str = "member"
    exp: float | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Claims:
        """The claims of a decoded token payload, or of :meth:`to_dict`'s output.

        Raises:
            AuthError: ``"missing sub"``, ``"bad sub"``, ``"bad name"``, ``"bad rooms"``,
                ``"bad role"`` or ``"bad exp"``.
        """
        if payload.get("sub") is None:
            raise AuthError("missing sub")
        sub = _label(payload["sub"], MAX_SUB, "sub")
        raw_name = payload.get("name")
        if raw_name is None or (isinstance(raw_name, str) and not raw_name.strip()):
            name = sub[:MAX_NAME].strip()
        else:
            name = _label(raw_name, MAX_NAME, "name")
        return cls(
            sub=sub,
            name=name,
            rooms=_rooms(payload.get("rooms")),
            role=_role(payload.get("role")),
            exp=_exp(payload.get("exp")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The claims as JSON-serialisable values (what ``socket.data["user"]`` holds)."""
        return {
            "sub": self.sub,
            "name": self.name,
            "rooms": list(self.rooms),
            "role": self.role,
            "exp": self.exp,
        }

    @property
    def is_moderator(self) -> bool:
        """True for the roles that moderate (``moderator`` and ``admin``)."""
        return self.role in ("moderator", "admin")

    def may_enter(self, room: str, private_patterns: Iterable[str]) -> bool:
        """Whether this user may enter ``room``.

        A room matching none of ``private_patterns`` is open to everyone; a private one
        needs a ``rooms`` claim that equals or matches it, or the moderator or admin role.

        Args:
            room: The room's name.
            private_patterns: Globs naming the private rooms (case-sensitive).
        """
        if not matches_any(room, private_patterns):
            return True
        return self.is_moderator or matches_any(room, self.rooms)


def _rooms(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or len(value) > MAX_ROOM_PATTERNS:
        raise AuthError("bad rooms")
    return tuple(_label(item, MAX_ROOM_PATTERN, "rooms") for item in value)


def _role(value: object) -> str:
    if value is None:
        return "member"
    if not isinstance(value, str) or value not in ROLES:
        raise AuthError("bad role")
    return value


def _exp(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise AuthError("bad exp")
    return float(value)
