"""Display names: guest names, the #2 suffix rule and names from the auth payload."""

from __future__ import annotations

import re
from collections.abc import Iterator

from salas.chat.identity import display_name, guest_name, name_from_auth, name_key


def test_free_name_is_kept() -> None:
    """A name nobody in the room shows is shown as is."""
    assert display_name("ana", {"bob"}) == "ana"


def test_clash_gets_first_free_suffix() -> None:
    """A taken name becomes name#2, or the first free #n; comparison ignores case."""
    assert display_name("ana", {"ana"}) == "ana#2"
    assert display_name("Ana", {"ana", "ana#2"}) == "Ana#3"
    assert display_name("ana", {"ana", "ana#3"}) == "ana#2"


def test_suffix_keeps_name_within_32_characters() -> None:
    """A 32-character name loses its tail to make room for the suffix."""
    long = "n" * 32
    shown = display_name(long, {name_key(long)})
    assert shown == "n" * 30 + "#2"
    assert len(shown) == 32


def test_guest_name_format() -> None:
    """Guest names are guest- and 4 hex digits."""
    assert re.fullmatch(r"guest-[0-9a-f]{4}", guest_name(lambda name: False))


def test_guest_name_retries_taken_ones() -> None:
    """A guest name already in use is not handed out again."""
    tokens: Iterator[str] = iter(["aaaa", "aaaa", "bbbb"])
    assert guest_name(lambda n: n == "guest-aaaa", lambda: next(tokens)) == "guest-bbbb"


def test_guest_name_gives_up_with_a_longer_name() -> None:
    """When every short name tried is taken, a longer random one is used (bounded search)."""
    name = guest_name(lambda n: len(n) == 10, lambda: "abcd")
    assert re.fullmatch(r"guest-[0-9a-f]{8}", name)


def test_name_from_auth() -> None:
    """auth.name is checked: valid → the name; absent → none; invalid → an invalid_name error."""
    assert name_from_auth({"name": "  ana "}) == ("ana", None)
    assert name_from_auth({}) == (None, None)
    name, error = name_from_auth({"name": 12})
    assert name is None and error is not None and error.code == "invalid_name"
    assert name_from_auth({"name": "x" * 33})[1] is not None


def test_guest_user_ids_are_long_and_random() -> None:
    """A guest user id is guest- and 12 hex digits, a new one each time."""
    from salas.chat.identity import guest_user_id

    ids = {guest_user_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"guest-[0-9a-f]{12}", i) for i in ids)


def test_check_user_id() -> None:
    """A user id from a client is a printable string of 1 to 256 characters, else bad_request."""
    import pytest

    from salas.chat.errors import ChatError
    from salas.chat.identity import check_user_id

    assert check_user_id("u-1") == "u-1"
    for bad in ("", "x" * 257, 5, None, "a\nb"):
        with pytest.raises(ChatError) as info:
            check_user_id(bad)
        assert info.value.code == "bad_request"


def test_name_key_is_the_name_itself_when_already_folded() -> None:
    """A name that folding does not change is its own key (one string kept, not two);
    others fold."""
    name = "".join(["guest-", "0a1b"])
    assert name_key(name) is name
    assert name_key("Ana") == "ana"
    assert name_key("STRASSE") == name_key("straße") == "strasse"
