"""`RedisPresence` without Redis: two nodes' presences joined by an in-memory bus that hands
each published record to the other, as the cluster channel does."""

from __future__ import annotations

from typing import Any, cast

import orjson

from salas.cluster.node import ClusterNode, Write
from salas.cluster.presence import RedisPresence


class FakeNode:
    """What `RedisPresence` uses of a `ClusterNode`: keys, an id, handlers, `write`."""

    def __init__(self, node_id: str, bus: list[FakeNode]) -> None:
        self.node_id = node_id
        self.on_message: dict[str, Any] = {}
        self.on_dead: Any = None
        self.on_reconnect: Any = None
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.bus = bus
        bus.append(self)

    def key(self, *parts: str) -> str:
        return ":".join(("t", *parts))

    def write(self, write: Write) -> None:
        if write.hset is not None:
            key, field, value = write.hset
            self.hashes.setdefault(key, {})[field] = value
        if write.hdel is not None:
            self.hashes.get(write.hdel[0], {}).pop(write.hdel[1], None)
        if write.message is not None:
            for other in self.bus:
                if other is not self:
                    other.on_message[write.message["kind"]](self.node_id, write.message)


def two_nodes() -> tuple[RedisPresence, RedisPresence, FakeNode]:
    bus: list[FakeNode] = []
    a, b = FakeNode("a", bus), FakeNode("b", bus)
    return RedisPresence(cast(ClusterNode, a)), RedisPresence(cast(ClusterNode, b)), a


def test_members_counts_and_names_are_shared() -> None:
    """A join on one node is seen on the other; a second `ana` there becomes `ana#2`; the
    rooms list counts both; `connections` counts only the node's own sockets."""
    a, b, _ = two_nodes()
    a.connect("s1", "ana")
    assert a.join("s1", "lobby") == ("ana", True)
    b.connect("s2", "ana")
    assert b.join("s2", "lobby") == ("ana#2", True)
    for presence in (a, b):
        assert presence.members("lobby") == ["ana", "ana#2"]
        assert presence.room_list() == [{"name": "lobby", "count": 2}]
        assert presence.connections == 1


def test_one_user_on_two_nodes_is_one_member() -> None:
    """Two sockets of one user on two nodes: one member, who leaves with the last socket."""
    a, b, _ = two_nodes()
    a.connect("s1", "Uma", "u1")
    a.join("s1", "lobby")
    b.connect("s2", "Uma", "u1")
    assert b.join("s2", "lobby") == ("Uma", True)
    assert b.user_sockets("lobby", "u1") == ["s1", "s2"]
    assert a.count("lobby") == 1
    assert [d.last for d in a.disconnect("s1")] == [False]
    assert b.members("lobby") == ["Uma"]
    assert [d.last for d in b.disconnect("s2")] == [True]
    assert a.members("lobby") == [] and a.room_list() == []


def test_rename_and_leave_cross() -> None:
    """A rename and a leave on one node change the other's view."""
    a, b, _ = two_nodes()
    a.connect("s1", "ana")
    a.join("s1", "lobby")
    a.rename("s1", "anna")
    assert b.members("lobby") == ["anna"]
    a.leave("s1", "lobby")
    assert b.members("lobby") == [] and b.is_connected("s1")


def test_a_record_applied_twice_changes_nothing() -> None:
    """Records replace what a replica knew: the same one again leaves the view as it was."""
    a, b, node_a = two_nodes()
    a.connect("s1", "ana")
    a.join("s1", "lobby")
    record = orjson.loads(node_a.hashes["t:sockets:a"]["s1"])
    b._on_record("a", {"sid": "s1", "record": record})
    assert b.members("lobby") == ["ana"] and b.rooms_of("s1") == ["lobby"]


def test_hostile_records_are_ignored() -> None:
    """Records of the wrong shape from the channel change nothing and raise nothing."""
    _, b, _ = two_nodes()
    for bad in ({"sid": 5}, {"sid": "x", "record": {"name": 3}}, {"sid": "x", "record": "no"}):
        b._on_record("a", bad)
    b._on_record("a", {"sid": "y", "record": {"name": "n", "user": "u", "rooms": [[1, 2], "z"]}})
    assert b.room_list() == [] and not b.is_connected("x")


async def test_a_dead_nodes_sockets_leave_once() -> None:
    """The node cleaning up a dead node removes its sockets and reports their departures."""
    a, b, node_a = two_nodes()
    a.connect("s1", "ana")
    a.join("s1", "lobby")
    b.connect("s2", "bob")
    b.join("s2", "lobby")
    b_node = cast(FakeNode, b.node)
    departed: list[Any] = []
    b.on_departed = departed.extend

    class FakeRedis:
        async def hkeys(self, key: str) -> list[bytes]:
            return [sid.encode() for sid in node_a.hashes.get(key, {})]

        async def delete(self, key: str) -> None:
            node_a.hashes.pop(key, None)

    b_node.redis = FakeRedis()  # type: ignore[attr-defined]
    await b._on_dead("a")
    assert [(d.room, d.user, d.last) for d in departed] == [("lobby", "ana", True)]
    assert b.members("lobby") == ["bob"] and not b.is_connected("s1")
    assert "t:sockets:a" not in node_a.hashes
