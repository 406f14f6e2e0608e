"""Tables of what clients may send, and the error code each violation gets."""

from __future__ import annotations

import sys
import unicodedata
from typing import Any

import pytest

from salas.chat.errors import ChatError
from salas.chat.validation import (
    _TEXT_BANNED,
    HistoryRequest,
    MessageRequest,
    TypingRequest,
    check_name,
    check_room,
    check_text,
    parse_history,
    parse_message,
    parse_nick,
    parse_room,
    parse_typing,
)


def code_of(call: Any, *args: Any) -> str:
    with pytest.raises(ChatError) as info:
        call(*args)
    return info.value.code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("room1", "room1"),
        ("  room1 ", "room1"),
        ("x" * 64, "x" * 64),
        ("sala de estar", "sala de estar"),
        ("café ☕", "café ☕"),
        ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),  # ZWJ emoji sequence
        ("#general", "#general"),
    ],
)
def test_room_names_accepted(raw: str, expected: str) -> None:
    """Printable room names up to 64 characters are accepted, trimmed."""
    assert check_room(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "x" * 65,
        "a\x00b",
        "a\nb",
        "tab\there",
        "\x7f",
        "bidi\u202eevil",
        "line\u2028sep",
        "\ud800",
        5,
        None,
        ["room1"],
        {"channel": "room1"},
        True,
        b"room1",
    ],
)
def test_room_names_refused(raw: Any) -> None:
    """Empty, too long, control/format characters and non-strings are invalid_room."""
    assert code_of(check_room, raw) == "invalid_room"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hola", "hola"),
        ("  hi  \n", "hi"),
        ("line1\nline2\tx", "line1\nline2\tx"),
        ("é" * 4000, "é" * 4000),
    ],
)
def test_message_text_accepted(raw: str, expected: str) -> None:
    """Text of 1 to 4000 characters after trimming is accepted (newlines and tabs inside)."""
    assert check_text(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", " \n\t ", "x" * 4001, "nul\x00", "bell\x07", "\ud83d", 3, None, [], {}]
)
def test_message_text_refused(raw: Any) -> None:
    """Empty, over 4000, NUL/control characters, lone surrogates, non-strings: invalid_message."""
    assert code_of(check_text, raw) == "invalid_message"


def test_message_text_refuses_exactly_controls_and_surrogates() -> None:
    """Every code point inside a message: refused iff its category is Cc (bar tab, LF, CR)
    or Cs, as unicodedata says — the fast check's character class matches the rule."""
    allowed_controls = {"\t", "\n", "\r"}
    wrong = []
    for point in range(sys.maxunicode + 1):
        ch = chr(point)
        banned = ch not in allowed_controls and unicodedata.category(ch) in ("Cc", "Cs")
        if (_TEXT_BANNED.search(ch) is not None) != banned:
            wrong.append(hex(point))
    assert wrong == []
    assert code_of(check_text, "ok \x85 inside") == "invalid_message"  # C1 control (NEL)
    assert check_text("tab\tand \u2028 line separator") == "tab\tand \u2028 line separator"


@pytest.mark.parametrize("raw", ["caf\u00e9", "\u5ba2\u5385", "\U0001f468\u200d\U0001f469"])
def test_non_ascii_names_checked_per_character(raw: str) -> None:
    """Names outside ASCII take the per-character path and are accepted when printable."""
    assert check_name(raw) == raw


@pytest.mark.parametrize("raw", ["caf\u00e9\u202e", "\u00e9\x85x", "ok\x7fx"])
def test_labels_with_invisible_characters_refused(raw: str) -> None:
    """Bidi overrides, C1 controls and DEL are refused in names, in and outside ASCII."""
    assert code_of(check_name, raw) == "invalid_name"
    assert code_of(check_room, raw) == "invalid_room"


def test_message_length_counts_after_trimming() -> None:
    """4000 characters plus surrounding spaces is still within the limit."""
    assert len(check_text("  " + "x" * 4000 + "  ")) == 4000


@pytest.mark.parametrize("raw", ["", "x" * 33, "a\nb", "\u200bzero", 7, None, ["ana"]])
def test_names_refused(raw: Any) -> None:
    """Names must be 1 to 32 printable characters: invalid_name otherwise."""
    assert code_of(check_name, raw) == "invalid_name"


def test_names_accepted_and_trimmed() -> None:
    """A 32-character name is fine, and surrounding spaces are dropped."""
    assert check_name(" " + "n" * 32 + " ") == "n" * 32


@pytest.mark.parametrize(
    ("args", "expected"),
    [(("room1",), "room1"), (({"channel": "room1"},), "room1"), (("room1", "extra"), "room1")],
)
def test_parse_room(args: tuple[Any, ...], expected: str) -> None:
    """channel_join/leave take a room name or {channel}; extra arguments are ignored."""
    assert parse_room(args, "channel_join") == expected


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((), "bad_request"),
        ((None,), "bad_request"),
        ((5,), "bad_request"),
        ((["room1"],), "bad_request"),
        ((True,), "bad_request"),
        (({},), "bad_request"),
        (({"channel": None},), "bad_request"),
        (({"room": "room1"},), "bad_request"),
        (({"channel": 5},), "invalid_room"),
        (({"channel": {"nested": "x"}},), "invalid_room"),
        (({"channel": ""},), "invalid_room"),
        (("x" * 100_000,), "invalid_room"),
    ],
)
def test_parse_room_refused(args: tuple[Any, ...], code: str) -> None:
    """Wrong shapes are bad_request; a present but wrong room name is invalid_room."""
    assert code_of(parse_room, args, "channel_join") == code


def test_parse_message_forms() -> None:
    """A plain string targets the current room; an object names the room and a client_id."""
    assert parse_message(("hi",)) == MessageRequest(None, "hi")
    assert parse_message(({"channel": "r", "message": " hey ", "client_id": "c-1"},)) == (
        MessageRequest("r", "hey", "c-1")
    )
    assert parse_message(({"channel": "r", "message": "x", "extra": [1]},)).client_id is None


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((), "bad_request"),
        ((None,), "bad_request"),
        ((42,), "bad_request"),
        ((["hi"],), "bad_request"),
        (({"message": "hi"},), "bad_request"),
        (({"channel": "r"},), "bad_request"),
        (({"channel": "r", "message": None},), "bad_request"),
        (({"channel": 1, "message": "hi"},), "invalid_room"),
        (({"channel": "r", "message": 1},), "invalid_message"),
        (({"channel": "r", "message": {"text": "hi"}},), "invalid_message"),
        (({"channel": "r", "message": "   "},), "invalid_message"),
        (({"channel": "r", "message": "x" * 100_000},), "invalid_message"),
        (({"channel": "r", "message": "hi", "client_id": 7},), "bad_request"),
        (({"channel": "r", "message": "hi", "client_id": ""},), "bad_request"),
        (({"channel": "r", "message": "hi", "client_id": "x" * 129},), "bad_request"),
        (({"channel": "r", "message": "hi", "client_id": ["a"]},), "bad_request"),
        (("",), "invalid_message"),
    ],
)
def test_parse_message_refused(args: tuple[Any, ...], code: str) -> None:
    """Each malformed message gets its exact code."""
    assert code_of(parse_message, args) == code


def test_parse_typing_forms() -> None:
    """typing takes {channel, typing} (default true) or a room name meaning true."""
    assert parse_typing(("r",)) == TypingRequest("r", True)
    assert parse_typing(({"channel": "r"},)) == TypingRequest("r", True)
    assert parse_typing(({"channel": "r", "typing": False},)) == TypingRequest("r", False)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((), "bad_request"),
        ((1,), "bad_request"),
        (({"typing": True},), "bad_request"),
        (({"channel": "r", "typing": "yes"},), "bad_request"),
        (({"channel": "r", "typing": 1},), "bad_request"),
        (({"channel": [], "typing": True},), "invalid_room"),
    ],
)
def test_parse_typing_refused(args: tuple[Any, ...], code: str) -> None:
    """A typing flag that is not a boolean, or a missing room, is refused."""
    assert code_of(parse_typing, args) == code


def test_parse_history_forms() -> None:
    """history takes a room name or {channel, before, after, limit} with limit 50 by default."""
    assert parse_history(("r",)) == HistoryRequest("r", None, None, 50)
    assert parse_history(({"channel": "r", "before": 10, "after": 2, "limit": 200},)) == (
        HistoryRequest("r", 10, 2, 200)
    )
    assert parse_history(({"channel": "r", "before": None, "limit": None},)).limit == 50


@pytest.mark.parametrize(
    "arg",
    [
        {"channel": "r", "limit": 0},
        {"channel": "r", "limit": 201},
        {"channel": "r", "limit": "10"},
        {"channel": "r", "limit": 2.5},
        {"channel": "r", "limit": True},
        {"channel": "r", "before": "5"},
        {"channel": "r", "before": 1.5},
        {"channel": "r", "after": False},
        {"channel": "r", "after": [1]},
        {"before": 5},
        7,
        ["r"],
    ],
)
def test_parse_history_refused(arg: Any) -> None:
    """Ids that are not whole numbers and limits outside 1..200 are bad_request."""
    assert code_of(parse_history, (arg,)) == "bad_request"


def test_parse_nick() -> None:
    """nick takes a name or {name}; a bad name is invalid_name, a bad shape bad_request."""
    assert parse_nick(("  bea ",)) == "bea"
    assert parse_nick(({"name": "bea"},)) == "bea"
    assert code_of(parse_nick, ("",)) == "invalid_name"
    assert code_of(parse_nick, ({"name": 3},)) == "invalid_name"
    assert code_of(parse_nick, (3,)) == "bad_request"
    assert code_of(parse_nick, ({},)) == "bad_request"
    assert code_of(parse_nick, ()) == "bad_request"
