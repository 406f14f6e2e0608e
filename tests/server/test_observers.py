"""Observers (salas.server.observers): what a watching tool is told, and nothing when none."""

from __future__ import annotations

from typing import Any

from salas import Socket
from salas.adapter import MemoryAdapter
from salas.engine import EngineSession
from salas.server.namespace import Namespace
from salas.server.observers import ServerObserver, ServerObservers


class Recorder(ServerObserver):
    """Writes down what it is told, as tuples."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def namespace_created(self, nsp: Namespace) -> None:
        self.seen.append(("namespace", nsp.name))

    def connection_opened(self, session: EngineSession) -> None:
        self.seen.append(("opened",))

    def connection_closed(self, session: EngineSession, reason: str) -> None:
        self.seen.append(("closed", reason))

    def socket_connected(self, socket: Socket) -> None:
        self.seen.append(("connected", socket.nsp.name, socket.id, sorted(socket.rooms)))

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        self.seen.append(("disconnected", socket.id, reason, sorted(socket.rooms)))

    def room_joined(self, nsp: str, room: str, sid: str) -> None:
        self.seen.append(("joined", nsp, room, sid))

    def room_left(self, nsp: str, room: str, sid: str) -> None:
        self.seen.append(("left", nsp, room, sid))


async def test_observer_sees_a_socket_life(make_server, start, client, until) -> None:
    """Connection, own room, joins (once each), leave, disconnect and close are told in order."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    recorder = io.add_observer(Recorder())
    port = await start(io)
    raw = await client(port)
    (socket,) = sockets
    sid = socket.id
    await socket.join(["a", "b"])
    await socket.join("a")  # already in: not told again
    await socket.leave("b")
    await socket.leave("zzz")  # not in it: not told
    await socket.disconnect(close=True)
    await raw.closed()
    await until(lambda: recorder.seen[-1][0] == "closed")
    assert recorder.seen[:6] == [
        ("opened",),
        ("joined", "/", sid, sid),
        ("connected", "/", sid, [sid]),
        ("joined", "/", "a", sid),
        ("joined", "/", "b", sid),
        ("left", "/", "b", sid),
    ]
    # Leaving every room at disconnect: in no particular order, before the socket is told.
    assert sorted(recorder.seen[6:8]) == [("left", "/", room, sid) for room in sorted(["a", sid])]
    assert recorder.seen[8:] == [
        ("disconnected", sid, "server namespace disconnect", []),
        ("closed", "forced close"),
    ]


async def test_bulk_operations_and_new_namespaces_are_told(make_server, start, client) -> None:
    """Bulk joins and leaves are told per socket; a namespace made later is told and watched."""
    io = make_server()
    port = await start(io)
    recorder = io.add_observer(Recorder())
    nsp = io.of("/later")
    sockets: list[Socket] = []
    nsp.on("connection", sockets.append)
    await client(port, nsp="/later")
    (socket,) = sockets
    await nsp.sockets_join("room")
    await nsp.sockets_leave("room")
    assert recorder.seen[0] == ("namespace", "/later")
    assert ("joined", "/later", "room", socket.id) in recorder.seen
    assert ("left", "/later", "room", socket.id) in recorder.seen


async def test_nothing_is_watched_without_observers(make_server, start, client) -> None:
    """Without observers the hub is false and adapters have no membership observer."""
    io = make_server()
    port = await start(io)
    await client(port)
    assert not io.observers
    adapter = io.sockets.adapter
    assert isinstance(adapter, MemoryAdapter) and adapter.membership_observer is None
    io.add_observer(Recorder())
    assert io.observers and adapter.membership_observer is io.observers


async def test_a_failing_observer_breaks_nothing(make_server, start, client) -> None:
    """An observer that raises is logged; the others are still told and the socket connects."""

    class Broken(ServerObserver):
        def socket_connected(self, socket: Socket) -> None:
            raise RuntimeError("boom")

    io = make_server()
    io.add_observer(Broken())
    recorder = io.add_observer(Recorder())
    port = await start(io)
    raw = await client(port)
    assert raw.socket_id in {entry[2] for entry in recorder.seen if entry[0] == "connected"}


def test_removed_observer_is_no_longer_told() -> None:
    """ServerObservers.remove stops telling that observer and leaves the others."""
    hub = ServerObservers()
    first, second = Recorder(), Recorder()
    hub.add(first)
    hub.add(second)
    hub.remove(first)
    hub.room_joined("/", "r", "s")
    assert (first.seen, second.seen, len(hub)) == ([], [("joined", "/", "r", "s")], 1)
