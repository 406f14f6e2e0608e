"""Who a socket is: its user id and display name (from a token, the auth payload or a guest
name), and display names unique within a room.

User ids: with token auth, the token's ``sub``; without, ``guest-`` and 12 random hex digits,
one per connection (kept across connection state recovery).

Rule (docs/chat-protocol.md, "Names"): names compare case-insensitively (``casefold``).
Joining a room where another member already shows your name shows you there as
``name#2`` (``#3``, ...: the first free one); ``nick`` to a name another member of one of
your rooms shows is refused with ``name_taken``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Mapping
from typing import Any

from salas.chat.errors import BAD_REQUEST, ChatError
from salas.chat.validation import MAX_NAME, check_name

__all__ = [
    "GUEST_PREFIX",
    "MAX_USER_ID",
    "check_user_id",
    "display_name",
    "guest_name",
    "guest_user_id",
    "name_from_auth",
    "name_key",
]

GUEST_PREFIX = "guest-"
# As a token's sub (salas.auth.claims.MAX_SUB).
MAX_USER_ID = 256


def name_key(name: str) -> str:
    """What two names must differ in to be told apart ("Ana" and "ana" are the same)."""
    key = name.casefold()
    # `name` itself when folding changes nothing (most names): presence keeps a key per
    # connected socket beside its name, one string then does for both.
    return name if key == name else key


def display_name(name: str, taken: Collection[str]) -> str:
    """`name`, or `name#2`, `name#3`... — the first whose `name_key` is not in `taken`."""
    if name_key(name) not in taken:
        return name
    # Bounded: each of the len(taken) keys rules out at most one candidate.
    for n in range(2, len(taken) + 3):
        suffix = f"#{n}"
        candidate = name[: MAX_NAME - len(suffix)] + suffix  # stays a valid name
        if name_key(candidate) not in taken:
            return candidate
    raise AssertionError("unreachable: more candidates than taken names")


def guest_name(is_taken: Callable[[str], bool], token: Callable[[], str] | None = None) -> str:
    """``guest-xxxx`` (4 hex digits) not taken yet, if one is found in a few tries."""
    make = token or (lambda: secrets.token_hex(2))
    name = f"guest-{make()}"
    for _ in range(16):
        if not is_taken(name):
            return name
        name = f"guest-{make()}"
    # Thousands of guests online: a longer name rather than an unbounded search.
    return f"guest-{secrets.token_hex(4)}"


def name_from_auth(auth: Mapping[str, Any]) -> tuple[str | None, ChatError | None]:
    """The name asked for in ``io({auth: {name}})``: (name, None), (None, None) if none was
    given, or (None, error) if the one given is invalid (the client then gets a guest name)."""
    raw = auth.get("name")
    if raw is None:
        return None, None
    try:
        return check_name(raw), None
    except ChatError as error:
        return None, error


def guest_user_id() -> str:
    """A new anonymous user id: ``guest-`` and 12 random hex digits (48 bits: never
    guessed, so nobody can act as another guest)."""
    return GUEST_PREFIX + secrets.token_hex(6)


def check_user_id(value: object, field: str = "user_id") -> str:
    """A user id sent by a client (`kick`, `ban`...): 1 to 256 printable characters, as
    sent; ``bad_request`` otherwise."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_USER_ID:
        raise ChatError(BAD_REQUEST, f"{field} must be a string of 1 to {MAX_USER_ID} characters")
    if not value.isprintable():
        raise ChatError(BAD_REQUEST, f"{field} must be printable")
    return value
