"""The chat's error codes, and the exception that carries one back to the client.

A handler raises :class:`ChatError`; the app turns it into the error ack
``{"ok": false, "error": {"code", "message"}}`` and an ``error`` event to that socket only
(docs/chat-protocol.md, "Validation and error codes").
"""

from __future__ import annotations

__all__ = [
    "BAD_REQUEST",
    "BANNED",
    "CODES",
    "FORBIDDEN",
    "INTERNAL",
    "INVALID_MESSAGE",
    "INVALID_NAME",
    "INVALID_ROOM",
    "NAME_TAKEN",
    "NOT_FOUND",
    "NOT_IN_ROOM",
    "RATE_LIMITED",
    "TOO_MANY_ROOMS",
    "UNAVAILABLE",
    "ChatError",
]

INVALID_ROOM = "invalid_room"
INVALID_MESSAGE = "invalid_message"
INVALID_NAME = "invalid_name"
NAME_TAKEN = "name_taken"
NOT_IN_ROOM = "not_in_room"
BAD_REQUEST = "bad_request"
RATE_LIMITED = "rate_limited"
TOO_MANY_ROOMS = "too_many_rooms"
UNAVAILABLE = "unavailable"
INTERNAL = "internal"
# Identity and moderation: not allowed (private room, someone else's message, not a
# moderator, `nick` with names from tokens), kept out of a room, no such message or member.
FORBIDDEN = "forbidden"
BANNED = "banned"
NOT_FOUND = "not_found"

CODES = frozenset(
    {
        INVALID_ROOM,
        INVALID_MESSAGE,
        INVALID_NAME,
        NAME_TAKEN,
        NOT_IN_ROOM,
        BAD_REQUEST,
        RATE_LIMITED,
        TOO_MANY_ROOMS,
        UNAVAILABLE,
        INTERNAL,
        FORBIDDEN,
        BANNED,
        NOT_FOUND,
    }
)


class ChatError(Exception):
    """A request the chat refuses, with the wire code and a message for humans."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CODES:  # a typo here would reach every client: fail loudly in tests
            raise ValueError(f"unknown chat error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
