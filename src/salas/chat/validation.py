"""Checking what clients send: room names, message text, display names, event arguments.

Pure functions, no I/O. Each raises :class:`~salas.chat.errors.ChatError` with the code of
docs/chat-protocol.md; the rule for codes is: an argument of the wrong shape (a number where
a room name or an object goes, a required field missing or null) is ``bad_request``; a field
that is there but wrong (a room name that is not a string or too long, empty text) gets the
field's own code (``invalid_room``, ``invalid_message``, ``invalid_name``).

Lengths count Unicode code points (Python's ``len``), after trimming surrounding whitespace;
the trimmed value is what the chat uses.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from salas.chat.errors import (
    BAD_REQUEST,
    INVALID_MESSAGE,
    INVALID_NAME,
    INVALID_ROOM,
    ChatError,
)

__all__ = [
    "HISTORY_LIMIT_DEFAULT",
    "HISTORY_LIMIT_MAX",
    "MAX_CLIENT_ID",
    "MAX_MESSAGE",
    "MAX_NAME",
    "MAX_ROOM",
    "HistoryRequest",
    "MessageRequest",
    "TypingRequest",
    "check_client_id",
    "check_name",
    "check_room",
    "check_text",
    "parse_history",
    "parse_message",
    "parse_nick",
    "parse_room",
    "parse_typing",
]

MAX_ROOM = 64
MAX_MESSAGE = 4000
MAX_NAME = 32
MAX_CLIENT_ID = 128
HISTORY_LIMIT_DEFAULT = 50
HISTORY_LIMIT_MAX = 200

# Categories no room or display name may contain: controls, line/paragraph separators and
# lone surrogates (which no store can keep). Format characters (Cf) are refused too, since
# bidi overrides make one name look like another — except the joiners and tag characters
# that emoji sequences (👨‍👩‍👧, subdivision flags) are made of.
_NAME_BANNED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_EMOJI_FORMAT = frozenset({"\u200c", "\u200d"})
# Message text may span lines and hold tabs; other controls (NUL above all, which SQLite and
# PostgreSQL treat differently) and lone surrogates are refused: Unicode's categories Cc
# (U+0000-U+001F, U+007F-U+009F; fixed by the standard) and Cs (U+D800-U+DFFF), less tab, LF
# and CR. One regular-expression search finds them in C (a loop over the characters cost ~10
# us per message; tests/chat/test_validation.py checks the class against unicodedata).
_TEXT_BANNED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _name_char_ok(ch: str) -> bool:
    if ch.isascii():  # the common case, without a Unicode database lookup
        return ch.isprintable()
    if ch in _EMOJI_FORMAT or "\U000e0020" <= ch <= "\U000e007f":
        return True
    return unicodedata.category(ch) not in _NAME_BANNED


def _check_label(value: object, what: str, code: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ChatError(code, f"{what} must be a string, not {_kind(value)}")
    text = value.strip()
    if not text:
        raise ChatError(code, f"{what} must not be empty")
    if len(text) > limit:
        raise ChatError(code, f"{what} is longer than {limit} characters")
    # ASCII (the common case) is checked in C at once; other text character by character.
    if not (text.isprintable() if text.isascii() else all(map(_name_char_ok, text))):
        raise ChatError(code, f"{what} contains control or invisible formatting characters")
    return text


def check_room(value: object) -> str:
    """A room name: 1 to 64 printable characters after trimming; ``invalid_room`` otherwise."""
    return _check_label(value, "room name", INVALID_ROOM, MAX_ROOM)


def check_name(value: object) -> str:
    """A display name: 1 to 32 printable characters after trimming; ``invalid_name`` otherwise."""
    return _check_label(value, "name", INVALID_NAME, MAX_NAME)


def check_text(value: object) -> str:
    """Message text: 1 to 4000 characters after trimming; ``invalid_message`` otherwise."""
    if not isinstance(value, str):
        raise ChatError(INVALID_MESSAGE, f"message must be a string, not {_kind(value)}")
    text = value.strip()
    if not text:
        raise ChatError(INVALID_MESSAGE, "message must not be empty")
    if len(text) > MAX_MESSAGE:
        raise ChatError(INVALID_MESSAGE, f"message is longer than {MAX_MESSAGE} characters")
    if _TEXT_BANNED.search(text) is not None:
        raise ChatError(INVALID_MESSAGE, "message contains control characters")
    return text


def check_client_id(value: object) -> str | None:
    """A message's optional client_id: None, or 1 to 128 printable characters;
    ``bad_request`` otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ChatError(BAD_REQUEST, f"client_id must be a string, not {_kind(value)}")
    if not 1 <= len(value) <= MAX_CLIENT_ID or not value.isprintable():
        raise ChatError(BAD_REQUEST, f"client_id must be 1 to {MAX_CLIENT_ID} printable characters")
    return value


def _kind(value: object) -> str:
    """How a JSON value's type reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bytes | bytearray):
        return "binary data"
    return type(value).__name__


def _first(args: tuple[Any, ...], event: str, expected: str) -> Any:
    if not args or args[0] is None:
        raise ChatError(BAD_REQUEST, f"{event} needs {expected}")
    return args[0]


def _required(obj: dict[str, Any], key: str, event: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise ChatError(BAD_REQUEST, f"{event} needs the field {key!r}")
    return value


def _room_of(arg: Any, event: str) -> str:
    """``"room"`` or ``{"channel": "room"}``."""
    if isinstance(arg, str):
        return check_room(arg)
    if isinstance(arg, dict):
        return check_room(_required(arg, "channel", event))
    raise ChatError(BAD_REQUEST, f"{event} takes a room name or {{channel}}, not {_kind(arg)}")


def parse_room(args: tuple[Any, ...], event: str) -> str:
    """``channel_join`` / ``channel_leave``: the room named by ``"room"`` or ``{channel}``."""
    return _room_of(_first(args, event, "a room name"), event)


@dataclass(frozen=True, slots=True)
class MessageRequest:
    channel: str | None  # None: the socket's current room (a plain string, as in the seed)
    text: str
    client_id: str | None = None


def parse_message(args: tuple[Any, ...]) -> MessageRequest:
    """``message``: ``"text"`` or ``{"channel", "message", "client_id"?}``."""
    arg = _first(args, "message", "the text or {channel, message}")
    if isinstance(arg, str):
        return MessageRequest(None, check_text(arg))
    if not isinstance(arg, dict):
        raise ChatError(
            BAD_REQUEST, f"message takes a string or {{channel, message}}, not {_kind(arg)}"
        )
    channel = check_room(_required(arg, "channel", "message"))
    text = check_text(_required(arg, "message", "message"))
    return MessageRequest(channel, text, check_client_id(arg.get("client_id")))


@dataclass(frozen=True, slots=True)
class TypingRequest:
    channel: str
    typing: bool


def parse_typing(args: tuple[Any, ...]) -> TypingRequest:
    """``typing``: ``{"channel", "typing": bool}`` (default true) or a room name (true)."""
    arg = _first(args, "typing", "{channel, typing}")
    if isinstance(arg, str):
        return TypingRequest(check_room(arg), True)
    if not isinstance(arg, dict):
        raise ChatError(BAD_REQUEST, f"typing takes {{channel, typing}}, not {_kind(arg)}")
    channel = check_room(_required(arg, "channel", "typing"))
    flag = arg.get("typing", True)
    if not isinstance(flag, bool):
        raise ChatError(BAD_REQUEST, f"typing.typing must be a boolean, not {_kind(flag)}")
    return TypingRequest(channel, flag)


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    channel: str
    before: int | None = None
    after: int | None = None
    limit: int = HISTORY_LIMIT_DEFAULT


def _message_id(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    # bool is an int in Python, never an id on the wire.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ChatError(BAD_REQUEST, f"history.{key} must be a message id, not {_kind(value)}")
    return value


def parse_history(args: tuple[Any, ...]) -> HistoryRequest:
    """``history``: ``{"channel", "before"?, "after"?, "limit"?: 1..200}`` or a room name."""
    arg = _first(args, "history", "{channel, before?, after?, limit?}")
    if isinstance(arg, str):
        return HistoryRequest(check_room(arg))
    if not isinstance(arg, dict):
        raise ChatError(
            BAD_REQUEST, f"history takes {{channel, before?, after?, limit?}}, not {_kind(arg)}"
        )
    channel = check_room(_required(arg, "channel", "history"))
    limit = arg.get("limit")
    if limit is None:
        limit = HISTORY_LIMIT_DEFAULT
    elif (
        not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= HISTORY_LIMIT_MAX
    ):
        raise ChatError(
            BAD_REQUEST, f"history.limit must be a whole number from 1 to {HISTORY_LIMIT_MAX}"
        )
    return HistoryRequest(channel, _message_id(arg, "before"), _message_id(arg, "after"), limit)


def parse_nick(args: tuple[Any, ...]) -> str:
    """``nick``: ``"new name"`` or ``{"name": "new name"}``."""
    arg = _first(args, "nick", "a name")
    if isinstance(arg, dict):
        return check_name(_required(arg, "name", "nick"))
    if isinstance(arg, str):
        return check_name(arg)
    raise ChatError(BAD_REQUEST, f"nick takes a name, not {_kind(arg)}")
