"""Presence bookkeeping: rooms per socket, the current room, names shown, renames, counts."""

from __future__ import annotations

import inspect

import pytest

from salas.chat.errors import ChatError
from salas.chat.presence import Departure, LocalPresence, PresenceBackend, Rename


def make(*names: str) -> LocalPresence:
    presence = LocalPresence()
    for i, name in enumerate(names):
        presence.connect(f"s{i}", name)
    return presence


def test_join_and_members() -> None:
    """Joining adds the socket under its name; members are sorted case-insensitively."""
    p = make("bob", "Ana")
    assert p.join("s0", "r") == ("bob", True)
    assert p.join("s1", "r") == ("Ana", True)
    assert p.members("r") == ["Ana", "bob"]
    assert p.count("r") == 2


def test_socket_in_no_room_keeps_no_room_list() -> None:
    """A connected socket keeps a list of rooms only while it is in one (memory per idle
    connection); leaving its last room drops it; joining and renaming still work, and an
    unknown socket still cannot join."""
    p = make("ana", "bob")
    assert p._joined == {}
    p.join("s0", "r")
    p.join("s0", "q")
    assert p.rooms_of("s0") == ["r", "q"]
    p.leave("s0", "r")
    p.leave("s0", "q")
    assert p._joined == {} and p.rooms_of("s0") == [] and p.current("s0") is None
    assert p.rename("s0", "ana2") == []
    assert p.join("s0", "r") == ("ana2", True)
    with pytest.raises(KeyError):
        p.join("nobody", "r")


def test_rejoin_is_not_new_and_becomes_current() -> None:
    """Joining a room one is in again is not a new join, but makes it the current room."""
    p = make("ana")
    p.join("s0", "a")
    p.join("s0", "b")
    assert p.current("s0") == "b"
    assert p.join("s0", "a") == ("ana", False)
    assert p.current("s0") == "a"
    assert p.rooms_of("s0") == ["b", "a"]


def test_leave_falls_back_to_previous_room() -> None:
    """After leaving the current room, the room joined before it is current."""
    p = make("ana")
    p.join("s0", "a")
    p.join("s0", "b")
    assert p.leave("s0", "b") == "ana"
    assert p.current("s0") == "a"
    assert p.leave("s0", "a") == "ana"
    assert p.current("s0") is None
    assert p.leave("s0", "a") is None


def test_empty_rooms_disappear() -> None:
    """A room without members is not listed; room_list counts members by room name."""
    p = make("ana", "bob")
    p.join("s0", "b")
    p.join("s1", "b")
    p.join("s1", "a")
    assert p.room_list() == [{"name": "a", "count": 1}, {"name": "b", "count": 2}]
    p.leave("s1", "a")
    assert p.room_list() == [{"name": "b", "count": 2}]
    assert p.members("a") == []


def test_clash_shows_suffix_in_that_room_only() -> None:
    """A second 'ana' is ana#2 where the first is, and plain ana elsewhere."""
    p = make("ana", "ANA")
    p.join("s0", "r")
    assert p.join("s1", "r") == ("ANA#2", True)
    assert p.join("s1", "other") == ("ANA", True)
    assert p.shown_as("s1", "r") == "ANA#2"
    assert p.shown_as("s1", "other") == "ANA"


def test_freed_name_can_be_shown_again() -> None:
    """Once the first ana leaves, the next ana to join is shown as plain ana."""
    p = make("ana", "ana", "ana")
    p.join("s0", "r")
    p.join("s1", "r")
    p.leave("s0", "r")
    assert p.join("s2", "r") == ("ana", True)


def test_rename_everywhere() -> None:
    """A rename shows the new name in every room of the socket, suffixes gone."""
    p = make("ana", "ana")
    p.join("s0", "r1")
    p.join("s1", "r1")
    p.join("s1", "r2")
    renames = p.rename("s1", "bea")
    assert renames == [Rename("r1", "ana#2", "bea"), Rename("r2", "ana", "bea")]
    assert p.members("r1") == ["ana", "bea"]
    assert p.name("s1") == "bea"


def test_rename_to_taken_name_changes_nothing() -> None:
    """nick to a name another member of one of your rooms shows: name_taken, nothing changed."""
    p = make("ana", "bob")
    p.join("s0", "r1")
    p.join("s1", "r1")
    p.join("s1", "r2")
    with pytest.raises(ChatError) as info:
        p.rename("s1", "ANA")
    assert info.value.code == "name_taken"
    assert p.members("r1") == ["ana", "bob"]
    assert p.name("s1") == "bob"


def test_rename_case_change_of_own_name() -> None:
    """Changing the case of one's own name is not a clash with oneself."""
    p = make("ana")
    p.join("s0", "r")
    assert p.rename("s0", "Ana") == [Rename("r", "ana", "Ana")]


def test_rename_to_name_used_outside_your_rooms() -> None:
    """A name shown only in rooms you are not in is free for you."""
    p = make("ana", "bob")
    p.join("s0", "elsewhere")
    p.join("s1", "r")
    assert p.rename("s1", "ana") == [Rename("r", "bob", "ana")]


def test_disconnect_reports_departures() -> None:
    """Disconnecting leaves every room, in join order, with the name shown in each."""
    p = make("ana", "ana")
    p.join("s0", "x")
    p.join("s1", "x")
    p.join("s1", "y")
    assert p.disconnect("s1") == [Departure("x", "ana#2", "s1"), Departure("y", "ana", "s1")]
    assert not p.is_connected("s1")
    assert p.room_list() == [{"name": "x", "count": 1}]
    assert p.connections == 1
    assert p.disconnect("s1") == []


def test_name_in_use_counts_sockets() -> None:
    """name_in_use holds while any connected socket chose that name (case-insensitively)."""
    p = make("guest-0001", "Guest-0001")
    assert p.name_in_use("GUEST-0001")
    p.disconnect("s0")
    assert p.name_in_use("guest-0001")
    p.disconnect("s1")
    assert not p.name_in_use("guest-0001")


def test_connect_twice_is_a_bug() -> None:
    """The same socket id cannot connect twice."""
    p = make("ana")
    with pytest.raises(ValueError):
        p.connect("s0", "ana")


def test_room_list_limit_keeps_the_most_populated() -> None:
    """With a limit, room_list names the most populated rooms (ties by name), sorted by name."""
    p = make("a", "b", "c")
    for sid, rooms in (("s0", "xyz"), ("s1", "yz"), ("s2", "zw")):
        for room in rooms:
            p.join(sid, room)
    assert p.room_list(2) == [{"name": "y", "count": 2}, {"name": "z", "count": 3}]
    assert p.room_list(3) == [
        {"name": "w", "count": 1},
        {"name": "y", "count": 2},
        {"name": "z", "count": 3},
    ]
    assert len(p.room_list(10)) == 4


def test_join_prefers_a_given_name_if_nobody_shows_it() -> None:
    """`prefer` (a recovered socket's old name there) is shown if free, else the usual rule."""
    p = make("ana", "ana", "bob")
    assert p.join("s0", "r", prefer="ana#2") == ("ana#2", True)
    assert p.join("s1", "r") == ("ana", True)
    assert p.join("s2", "r", prefer="ana") == ("bob", True)


def _members(cls: type) -> dict[str, inspect.Signature]:
    """Public methods and properties of `cls` with their signatures (a property's getter)."""
    found = {}
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        function = value.fget if isinstance(value, property) else value
        found[name] = inspect.signature(function)
    return found


def test_local_presence_implements_the_protocol() -> None:
    """LocalPresence has every member of PresenceBackend, with the same signature."""
    wanted = _members(PresenceBackend)
    have = _members(LocalPresence)
    assert wanted.keys() <= have.keys(), wanted.keys() - have.keys()
    for name, signature in wanted.items():
        assert have[name] == signature, name
        kind = type(vars(PresenceBackend)[name])
        assert isinstance(vars(LocalPresence)[name], kind), name


def test_sockets_of_one_user_are_one_member() -> None:
    """Two sockets of one user show one name and count once; the user stays until the last
    socket leaves; another user with the same name gets #2."""
    p = LocalPresence()
    p.connect("t1", "ana", "u-ana")
    p.connect("t2", "ana", "u-ana")
    p.connect("x", "ana", "u-other")
    assert p.join("t1", "r") == ("ana", True)
    assert p.join("t2", "r") == ("ana", True)
    assert p.user_sockets("r", "u-ana") == ["t1", "t2"]
    assert p.join("x", "r") == ("ana#2", True)
    assert p.count("r") == 2 and p.members("r") == ["ana", "ana#2"]
    assert p.users("r") == [{"id": "u-ana", "name": "ana"}, {"id": "u-other", "name": "ana#2"}]
    assert p.room_list() == [{"name": "r", "count": 2}]
    assert p.leave("t1", "r") == "ana"
    assert p.user_sockets("r", "u-ana") == ["t2"] and p.count("r") == 2
    assert p.disconnect("t2") == [Departure("r", "ana", "u-ana", True)]
    assert p.members("r") == ["ana#2"] and p.user_id("x") == "u-other"


def test_disconnect_of_one_socket_of_a_user_is_not_the_last() -> None:
    """A departure says whether the user's last socket left the room."""
    p = LocalPresence()
    p.connect("t1", "ana", "u-ana")
    p.connect("t2", "ana", "u-ana")
    p.join("t1", "r")
    p.join("t2", "r")
    assert p.disconnect("t1") == [Departure("r", "ana", "u-ana", False)]


def test_room_list_filter() -> None:
    """room_list(where=...) lists only the rooms the predicate keeps, before the limit."""
    p = make("ana", "bob")
    p.join("s0", "staff")
    p.join("s1", "staff")
    p.join("s0", "lobby")
    public = p.room_list(1, lambda room: room != "staff")
    assert public == [{"name": "lobby", "count": 1}]
