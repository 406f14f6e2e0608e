"""The in-process adapter: rooms, recipients and the broadcast fast path
(salas.adapter.memory), with fake members that record what they are handed."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from salas.adapter import BroadcastOptions, MemoryAdapter
from salas.protocol import SocketPacket, SocketPacketType
from salas.protocol.outgoing import EncodedMessage


@dataclass
class FakeSession:
    """Records every send_encoded call: the message object itself and the volatile flag."""

    received: list[tuple[EncodedMessage, bool]] = field(default_factory=list)
    accept: bool = True

    def send_encoded(self, message: EncodedMessage, volatile: bool = False) -> bool:
        self.received.append((message, volatile))
        return self.accept


@dataclass
class FakeMember:
    id: str
    session: FakeSession = field(default_factory=FakeSession)
    disconnects: list[bool] = field(default_factory=list)
    registry: FakeRegistry | None = None

    async def disconnect(self, close: bool = False) -> None:
        self.disconnects.append(close)
        if self.registry is not None:  # as a real socket does: leave everything
            self.registry.adapter.remove_all(self.id)
            del self.registry.sockets[self.id]


@dataclass
class FakeRegistry:
    name: str = "/"
    sockets: dict[str, FakeMember] = field(default_factory=dict)
    adapter: MemoryAdapter = None  # type: ignore[assignment]


def make(*sids: str) -> tuple[MemoryAdapter, FakeRegistry, dict[str, FakeMember]]:
    """An adapter over a namespace with these sockets, each in the room named after it."""
    registry = FakeRegistry()
    adapter = MemoryAdapter(registry)
    registry.adapter = adapter
    for sid in sids:
        member = FakeMember(sid, registry=registry)
        registry.sockets[sid] = member
        adapter.add_all(sid, [sid])
    return adapter, registry, registry.sockets


def opts(rooms=(), except_rooms=(), volatile=False) -> BroadcastOptions:
    return BroadcastOptions(frozenset(rooms), frozenset(except_rooms), volatile)


def message(text: str = "hi") -> EncodedMessage:
    return EncodedMessage.of_socket_packet(SocketPacket(SocketPacketType.EVENT, "/", [text]))


# -- membership -----------------------------------------------------------------------------


def test_add_all_and_queries() -> None:
    """add_all puts a socket in rooms; socket_rooms / room_members report both directions."""
    adapter, _, _ = make()
    adapter.add_all("s1", ["a", "b"])
    adapter.add_all("s2", ["b"])
    adapter.add_all("s1", ["a"])  # joining twice changes nothing
    assert adapter.socket_rooms("s1") == {"a", "b"}
    assert adapter.socket_rooms("s2") == {"b"}
    assert adapter.room_members("a") == {"s1"}
    assert adapter.room_members("b") == {"s1", "s2"}
    assert adapter.room_members("nobody") == set()
    assert adapter.socket_rooms("unknown") == set()


def test_queries_return_copies() -> None:
    """The sets returned are copies: changing them doesn't change membership."""
    adapter, _, _ = make()
    adapter.add_all("s1", ["a"])
    adapter.socket_rooms("s1").add("hacked")
    adapter.room_members("a").add("intruder")
    assert adapter.socket_rooms("s1") == {"a"}
    assert adapter.room_members("a") == {"s1"}


def test_remove_deletes_empty_room() -> None:
    """remove takes a socket out of one room; a room left empty no longer exists."""
    adapter, _, _ = make()
    adapter.add_all("s1", ["a", "b"])
    adapter.add_all("s2", ["a"])
    adapter.remove("s1", "a")
    assert adapter.room_members("a") == {"s2"}
    assert adapter.socket_rooms("s1") == {"b"}
    adapter.remove("s2", "a")
    assert "a" not in adapter.rooms
    adapter.remove("s2", "a")  # again: nothing happens
    adapter.remove("ghost", "b")
    assert adapter.room_members("b") == {"s1"}


def test_remove_all_deletes_empty_rooms() -> None:
    """remove_all takes a socket out of every room, deleting the rooms it leaves empty."""
    adapter, _, _ = make()
    adapter.add_all("s1", ["a", "b", "c"])
    adapter.add_all("s2", ["b"])
    adapter.remove_all("s1")
    assert adapter.socket_rooms("s1") == set()
    assert set(adapter.rooms) == {"b"}
    assert adapter.room_members("b") == {"s2"}
    assert "s1" not in adapter.sids
    adapter.remove_all("s1")  # again: nothing happens
    adapter.remove_all("s2")
    assert adapter.rooms == {}
    assert adapter.sids == {}


async def test_init_and_close() -> None:
    """init and close are no-ops for the memory adapter, awaitable like any adapter's."""
    adapter, _, _ = make()
    await adapter.init()
    await adapter.close()


# -- recipients -----------------------------------------------------------------------------


def test_recipients_all() -> None:
    """No rooms means every socket of the namespace."""
    adapter, _, _ = make("s1", "s2", "s3")
    assert set(adapter.recipients(opts())) == {"s1", "s2", "s3"}


def test_recipients_rooms_union_each_once() -> None:
    """Several rooms give the union of their members, each socket once."""
    adapter, _, _ = make("s1", "s2", "s3", "s4")
    adapter.add_all("s1", ["a", "b"])
    adapter.add_all("s2", ["a"])
    adapter.add_all("s3", ["b"])
    recipients = list(adapter.recipients(opts(["a", "b"])))
    assert sorted(recipients) == ["s1", "s2", "s3"]
    assert sorted(adapter.recipients(opts(["a"]))) == ["s1", "s2"]
    assert list(adapter.recipients(opts(["missing"]))) == []


def test_recipients_except() -> None:
    """except_rooms removes their members, also from "everyone"; a sid is its own room."""
    adapter, _, _ = make("s1", "s2", "s3")
    adapter.add_all("s1", ["a"])
    adapter.add_all("s2", ["a", "muted"])
    assert sorted(adapter.recipients(opts(["a"], ["muted"]))) == ["s1"]
    assert sorted(adapter.recipients(opts(except_rooms=["s3"]))) == ["s1", "s2"]
    assert sorted(adapter.recipients(opts(except_rooms=["a", "nothing"]))) == ["s3"]
    assert list(adapter.recipients(opts(["a"], ["a"]))) == []


# -- broadcast -------------------------------------------------------------------------------


async def test_broadcast_hands_the_same_object_to_every_recipient() -> None:
    """A broadcast gives each recipient the very same EncodedMessage (encoded once)."""
    adapter, _, members = make("s1", "s2", "s3", "s4")
    for sid in ("s1", "s2", "s3"):
        adapter.add_all(sid, ["room"])
    shared = message("once")
    await adapter.broadcast(shared, opts(["room"]))
    for sid in ("s1", "s2", "s3"):
        (received,) = members[sid].session.received
        assert received[0] is shared
        assert received[1] is False
    assert members["s4"].session.received == []
    frames = {id(members[s].session.received[0][0].frames) for s in ("s1", "s2", "s3")}
    assert len(frames) == 1  # the same frame bytes, too


async def test_broadcast_respects_except_and_volatile() -> None:
    """except_rooms leaves sockets out; the volatile flag is passed to each session."""
    adapter, _, members = make("s1", "s2", "s3")
    await adapter.broadcast(message(), opts(except_rooms=["s2"], volatile=True))
    assert [v for _, v in members["s1"].session.received] == [True]
    assert members["s2"].session.received == []
    assert [v for _, v in members["s3"].session.received] == [True]


async def test_broadcast_skips_ids_without_local_socket() -> None:
    """A room member with no local socket (left mid-broadcast, or remote) is skipped."""
    adapter, registry, members = make("s1")
    adapter.add_all("s1", ["room"])
    adapter.add_all("elsewhere", ["room"])
    await adapter.broadcast(message(), opts(["room"]))
    assert len(members["s1"].session.received) == 1
    assert "elsewhere" not in registry.sockets


async def test_broadcast_continues_after_a_dropped_delivery() -> None:
    """A recipient that drops the message (volatile, congested) doesn't stop the others."""
    adapter, _, members = make("s1", "s2", "s3")
    members["s2"].session.accept = False
    await adapter.broadcast(message(), opts(volatile=True))
    assert all(len(m.session.received) == 1 for m in members.values())


def test_deliver_is_synchronous() -> None:
    """deliver hands the message to every recipient before returning (no task, no await)."""
    adapter, _, members = make("s1", "s2")
    shared = message()
    adapter.deliver(shared, opts())
    assert [m.session.received[0][0] for m in members.values()] == [shared, shared]


# -- operations on matching sockets ---------------------------------------------------------------


async def test_fetch_sockets() -> None:
    """fetch_sockets returns the local members matching the options."""
    adapter, _, members = make("s1", "s2", "s3")
    adapter.add_all("s1", ["a"])
    adapter.add_all("s3", ["a"])
    found = await adapter.fetch_sockets(opts(["a"]))
    assert sorted(m.id for m in found) == ["s1", "s3"]
    assert all(m is members[m.id] for m in found)
    everyone = await adapter.fetch_sockets(opts(except_rooms=["a"]))
    assert [m.id for m in everyone] == ["s2"]


async def test_add_sockets() -> None:
    """add_sockets puts every matching socket in the given rooms."""
    adapter, _, _ = make("s1", "s2", "s3")
    adapter.add_all("s1", ["a"])
    adapter.add_all("s2", ["a"])
    await adapter.add_sockets(opts(["a"]), ["x", "y"])
    assert adapter.room_members("x") == {"s1", "s2"}
    assert adapter.room_members("y") == {"s1", "s2"}
    assert adapter.socket_rooms("s3") == {"s3"}


async def test_del_sockets() -> None:
    """del_sockets takes every matching socket out of the given rooms (empty rooms go)."""
    adapter, _, _ = make("s1", "s2", "s3")
    for sid in ("s1", "s2", "s3"):
        adapter.add_all(sid, ["a", "b"])
    await adapter.del_sockets(opts(except_rooms=["s3"]), ["a", "b"])
    assert adapter.room_members("a") == {"s3"}
    assert adapter.socket_rooms("s1") == {"s1"}
    await adapter.del_sockets(opts(["s3"]), ["a"])
    assert "a" not in adapter.rooms


async def test_del_sockets_on_the_room_being_left() -> None:
    """Removing the members of room `a` from room `a` removes all of them (no skipped ids)."""
    adapter, _, _ = make(*[f"s{i}" for i in range(50)])
    for i in range(50):
        adapter.add_all(f"s{i}", ["a"])
    await adapter.del_sockets(opts(["a"]), ["a"])
    assert "a" not in adapter.rooms


@pytest.mark.parametrize("close", [False, True])
async def test_disconnect_sockets(close: bool) -> None:
    """disconnect_sockets disconnects each matching socket once, passing `close` along."""
    adapter, registry, members = make("s1", "s2", "s3")
    adapter.add_all("s1", ["a"])
    adapter.add_all("s2", ["a"])
    all_members = dict(members)
    await adapter.disconnect_sockets(opts(["a"]), close)
    assert all_members["s1"].disconnects == [close]
    assert all_members["s2"].disconnects == [close]
    assert all_members["s3"].disconnects == []
    assert set(registry.sockets) == {"s3"}
    assert "a" not in adapter.rooms


async def test_disconnect_everyone_while_iterating() -> None:
    """Disconnecting every socket (each leaving its rooms meanwhile) reaches all of them."""
    sids = [f"s{i}" for i in range(30)]
    adapter, registry, members = make(*sids)
    all_members = dict(members)
    await adapter.disconnect_sockets(opts(), False)
    assert all(all_members[sid].disconnects == [False] for sid in sids)
    assert registry.sockets == {}
    assert adapter.rooms == {}


class LeavingSession(FakeSession):
    """A session that closes while being handed a message, as a cut-off polling session
    does: its socket leaves every room before send_encoded returns."""

    def __init__(self, adapter: MemoryAdapter, sid: str) -> None:
        super().__init__()
        self.adapter = adapter
        self.sid = sid

    def send_encoded(self, message: EncodedMessage, volatile: bool = False) -> bool:
        super().send_encoded(message, volatile)
        self.adapter.remove_all(self.sid)
        return False


async def test_recipient_leaving_during_broadcast_does_not_break_it() -> None:
    """A recipient that leaves the room while being delivered to doesn't stop the broadcast."""
    adapter, _, members = make(*[f"s{i}" for i in range(10)])
    for sid in members:
        adapter.add_all(sid, ["room"])
    members["s3"].session = LeavingSession(adapter, "s3")
    await adapter.broadcast(message(), opts(["room"]))
    assert all(len(m.session.received) == 1 for m in members.values())
    assert adapter.room_members("room") == {f"s{i}" for i in range(10)} - {"s3"}
