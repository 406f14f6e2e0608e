"""RoomRules (salas.auth.rooms): private patterns, access with and without claims, lists."""

from __future__ import annotations

from salas.auth import Claims, RoomRules, matches_any


def test_parse_and_is_private() -> None:
    """Comma-separated globs, blanks ignored; matching is fnmatch-style and case-sensitive."""
    rules = RoomRules.parse(" staff-*, ops ,, ")
    assert rules.private_patterns == ("staff-*", "ops")
    assert rules.is_private("staff-") and rules.is_private("staff-eu") and rules.is_private("ops")
    assert not rules.is_private("Staff-eu") and not rules.is_private("ops2")
    assert not rules.is_private("lobby")
    assert rules and not RoomRules() and not RoomRules.parse("")


def test_room_named_with_glob_characters_matches_itself() -> None:
    """A literal room name holding [ ] still matches a pattern equal to it."""
    assert matches_any("a[1]", ["a[1]"])
    assert not matches_any("a[1]", ["b*"])
    assert matches_any("a1", ["a[1]"])


def test_without_claims_private_rooms_are_closed() -> None:
    """No auth: open rooms can be entered, private ones never."""
    rules = RoomRules(["ops"])
    assert rules.may_enter(None, "lobby")
    assert not rules.may_enter(None, "ops")


def test_with_claims() -> None:
    """A rooms claim or a moderating role opens private rooms; a plain member stays out."""
    rules = RoomRules(["staff-*", "ops"])
    alice = Claims("alice", "Alice", rooms=("staff-*",))
    bob = Claims("bob", "Bob")
    mod = Claims("mod", "Mod", role="moderator")
    assert rules.may_enter(alice, "staff-eu") and not rules.may_enter(alice, "ops")
    assert rules.may_enter(bob, "lobby") and not rules.may_enter(bob, "staff-eu")
    assert rules.may_enter(mod, "ops") and rules.may_enter(mod, "staff-eu")


def test_no_private_patterns_opens_everything() -> None:
    """With no patterns, every room is open, with or without claims."""
    assert RoomRules().may_enter(None, "ops")


def test_visible_filters_in_order() -> None:
    """visible keeps the rooms the user may enter, in the given order."""
    rules = RoomRules(["staff-*", "ops"])
    rooms = ["ops", "lobby", "staff-eu", "random"]
    assert rules.visible(None, rooms) == ["lobby", "random"]
    assert rules.visible(Claims("a", "a", rooms=("ops",)), rooms) == ["ops", "lobby", "random"]
    assert rules.visible(Claims("m", "m", role="admin"), rooms) == rooms
