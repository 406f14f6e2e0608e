"""The recovery policy (salas.recovery.policy) at the wire level, through a real Server."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import websockets

from salas import Server
from salas.adapter import BroadcastOptions
from salas.protocol import SocketPacket, SocketPacketType
from salas.protocol.outgoing import (
    OFFSETS_NONE,
    OFFSETS_TAGGED,
    OFFSETS_TRAILING,
    EncodedMessage,
)
from salas.recovery import MemoryRecoveryStore, Recovery, RecoveryOptions
from salas.recovery.policy import offset_mode


class RawClient:
    """A Socket.IO client over a raw websocket, to see every packet exactly."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def connect(
        cls, port: int, auth: dict[str, Any] | None = None
    ) -> tuple[RawClient, dict[str, Any]]:
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket")
        client = cls(ws)
        opening = await client.recv()
        assert opening.startswith("0{")
        await ws.send("40" + (json.dumps(auth) if auth else ""))
        reply = await client.recv()
        assert reply.startswith("40{"), reply
        return client, json.loads(reply[2:])

    async def recv(self) -> str:
        while True:
            message = await asyncio.wait_for(self.ws.recv(), 3)
            assert isinstance(message, str)
            if message == "2":  # answer heartbeats, keep them out of the way
                await self.ws.send("3")
                continue
            return message

    async def event(self) -> list[Any]:
        message = await self.recv()
        assert message.startswith("42"), message
        data: list[Any] = json.loads(message[2:])
        return data

    async def emit(self, *args: Any, ack_id: int | None = None) -> None:
        await self.ws.send("42" + ("" if ack_id is None else str(ack_id)) + json.dumps(args))

    async def ack(self, *args: Any) -> Any:
        await self.emit(*args, ack_id=7)
        while True:
            message = await self.recv()
            if message.startswith("437"):
                return json.loads(message[3:])

    async def drop(self) -> None:
        """Cut the transport without a DISCONNECT: the server sees 'transport close'."""
        await self.ws.close()


def make_server(**options: Any) -> Server:
    io = Server(connection_state_recovery=RecoveryOptions(**options), serve_client=False)

    @io.on("connection")
    def connection(socket: Any) -> None:
        @socket.on("join")
        async def join(room: str) -> str:
            await socket.join(room)
            return "joined"

        @socket.on("say")
        async def say(room: str, text: str) -> None:
            await io.to(room).emit("said", text)

        @socket.on("direct")
        async def direct(text: str) -> None:
            await socket.emit("direct", text)

        @socket.on("remember")
        def remember(value: Any) -> None:
            socket.data["value"] = value

        @socket.on("whoami")
        def whoami() -> dict[str, Any]:
            return {
                "id": socket.id,
                "recovered": socket.recovered,
                "rooms": sorted(socket.rooms),
                "data": socket.data,
            }

    return io


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, int]]:
    io = make_server()
    port = await io.start("127.0.0.1", 0)
    yield io, port
    await io.shutdown()


async def until_saved(io: Server, pid: str) -> None:
    """Wait until the server has saved the session of `pid` (it does so on disconnect)."""
    assert io.recovery is not None
    store = io.recovery.store
    assert isinstance(store, MemoryRecoveryStore)
    for _ in range(100):
        if pid in store._sessions:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("session was never saved")


async def test_connect_reply_carries_sid_and_pid(server: tuple[Server, int]) -> None:
    """With recovery on, CONNECT is answered with both the socket id and a private id."""
    _, port = server
    client, reply = await RawClient.connect(port)
    assert set(reply) == {"sid", "pid"}
    assert reply["sid"] != reply["pid"]
    await client.ws.close()


async def test_room_broadcasts_end_with_an_increasing_offset(server: tuple[Server, int]) -> None:
    """Broadcasts end with an increasing string offset; direct emits carry none."""
    _, port = server
    client, _ = await RawClient.connect(port)
    assert await client.ack("join", "r") == ["joined"]
    await client.emit("say", "r", "one")
    first = await client.event()
    await client.emit("say", "r", "two")
    second = await client.event()
    assert first[:2] == ["said", "one"] and second[:2] == ["said", "two"]
    assert int(second[2]) > int(first[2])
    await client.emit("direct", "hi")
    assert await client.event() == ["direct", "hi"]
    await client.ws.close()


async def test_reconnect_with_pid_and_offset_recovers_everything_missed(
    server: tuple[Server, int],
) -> None:
    """A dropped client gets its id, rooms and data back, then what it missed, in order."""
    io, port = server
    sender, _ = await RawClient.connect(port)
    client, reply = await RawClient.connect(port)
    await client.ack("join", "r")
    await client.ack("join", "other")
    await client.emit("remember", {"k": 1})
    await sender.emit("say", "r", "before")
    offset = (await client.event())[-1]
    await client.drop()
    await until_saved(io, reply["pid"])
    for text in ("m1", "m2", "m3"):
        await sender.emit("say", "r", text)
    await sender.emit("say", "elsewhere", "not for you")
    await asyncio.sleep(0.05)

    again, reply2 = await RawClient.connect(port, {"pid": reply["pid"], "offset": offset})
    assert reply2 == reply
    replayed = [(await again.event())[1] for _ in range(3)]
    assert replayed == ["m1", "m2", "m3"]
    me = (await again.ack("whoami"))[0]
    assert me["id"] == reply["sid"]
    assert me["recovered"] is True
    assert me["rooms"] == sorted([reply["sid"], "r", "other"])
    assert me["data"] == {"value": {"k": 1}}
    await sender.ws.close()
    await again.ws.close()


async def test_session_is_recovered_once(server: tuple[Server, int]) -> None:
    """A pid works once: a second reconnect with it is a fresh connection."""
    io, port = server
    client, reply = await RawClient.connect(port)
    await client.drop()
    await until_saved(io, reply["pid"])
    again, reply2 = await RawClient.connect(port, {"pid": reply["pid"]})
    assert reply2["sid"] == reply["sid"]
    await again.ws.send("41")  # a clean namespace disconnect leaves nothing to recover
    await asyncio.sleep(0.05)
    third, reply3 = await RawClient.connect(port, {"pid": reply["pid"]})
    assert reply3["sid"] != reply["sid"]
    assert (await third.ack("whoami"))[0]["recovered"] is False
    await third.ws.close()


async def test_client_without_offset_gets_broadcasts_since_it_connected(
    server: tuple[Server, int],
) -> None:
    """A client that never saw a broadcast replays from when it connected."""
    io, port = server
    sender, _ = await RawClient.connect(port)
    await sender.ack("join", "r")
    await sender.emit("say", "r", "before it existed")
    await sender.event()
    client, reply = await RawClient.connect(port)
    await client.ack("join", "r")
    await client.drop()
    await until_saved(io, reply["pid"])
    await sender.emit("say", "r", "missed")
    await sender.event()
    again, _ = await RawClient.connect(port, {"pid": reply["pid"], "offset": "not-an-offset"})
    assert (await again.event())[1] == "missed"
    await sender.ws.close()
    await again.ws.close()


async def test_unknown_pid_connects_afresh(server: tuple[Server, int]) -> None:
    """An unknown or malformed pid is simply a new connection."""
    _, port = server
    for pid in ("nope", 42, None, ""):
        client, reply = await RawClient.connect(port, {"pid": pid, "offset": "1"})
        assert (await client.ack("whoami"))[0]["recovered"] is False
        assert reply["pid"] != pid
        await client.ws.close()


async def test_expired_session_connects_afresh() -> None:
    """Past max_disconnection_duration the session is gone."""
    io = make_server(max_disconnection_duration=0.05)
    port = await io.start("127.0.0.1", 0)
    try:
        client, reply = await RawClient.connect(port)
        await client.drop()
        await until_saved(io, reply["pid"])
        await asyncio.sleep(0.1)
        again, reply2 = await RawClient.connect(port, {"pid": reply["pid"]})
        assert reply2["sid"] != reply["sid"]
        await again.ws.close()
    finally:
        await io.shutdown()


async def test_volatile_broadcasts_are_not_logged() -> None:
    """Volatile emits carry no offset and are not replayed."""
    io = make_server()

    @io.on("connection")
    def extra(socket: Any) -> None:
        @socket.on("blip")
        async def blip() -> None:
            await io.volatile.emit("blip")

    port = await io.start("127.0.0.1", 0)
    try:
        client, _ = await RawClient.connect(port)
        await client.emit("blip")
        assert await client.event() == ["blip"]
        assert io.recovery is not None and io.recovery.head == 0
        await client.ws.close()
    finally:
        await io.shutdown()


class FailingLogStore(MemoryRecoveryStore):
    """A recovery store whose log cannot be read (a database gone away)."""

    async def packets_after(self, nsp: str, offset: int, limit: int) -> list[Any]:
        raise OSError("database unreachable")


async def test_unreadable_log_connects_afresh_at_once() -> None:
    """When the log cannot be read, a recovering client is connected afresh, not left hanging."""
    io = make_server(store=FailingLogStore())
    port = await io.start("127.0.0.1", 0)
    try:
        client, reply = await RawClient.connect(port)
        await client.drop()
        await until_saved(io, reply["pid"])
        again, reply2 = await RawClient.connect(port, {"pid": reply["pid"], "offset": "0"})
        assert reply2["sid"] != reply["sid"]
        assert (await again.ack("whoami"))[0]["recovered"] is False
        await again.ws.close()
    finally:
        await io.shutdown()


class SlowLogStore(MemoryRecoveryStore):
    """A recovery store whose log reads wait for `release` (a busy database)."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def packets_after(self, nsp: str, offset: int, limit: int) -> list[Any]:
        found = await super().packets_after(nsp, offset, limit)
        self.reading.set()
        await self.release.wait()
        return found


async def test_broadcasts_during_the_log_read_reach_the_recovering_socket() -> None:
    """A broadcast made while the log is being read for a recovering socket is not lost:
    the socket gets it after the replay, once, in order."""
    store = SlowLogStore()
    store.release.set()
    io = make_server(store=store)
    port = await io.start("127.0.0.1", 0)
    try:
        sender, _ = await RawClient.connect(port)
        client, reply = await RawClient.connect(port)
        await client.ack("join", "r")
        await sender.emit("say", "r", "seen")
        offset = (await client.event())[-1]
        await client.drop()
        await until_saved(io, reply["pid"])
        await sender.emit("say", "r", "logged")
        await asyncio.sleep(0.05)
        store.release.clear()
        store.reading.clear()
        connecting = asyncio.ensure_future(
            RawClient.connect(port, {"pid": reply["pid"], "offset": offset})
        )
        await asyncio.wait_for(store.reading.wait(), 3)
        await sender.emit("say", "r", "during the read")
        await sender.emit("say", "r", "also during")
        await asyncio.sleep(0.05)
        store.release.set()
        again, reply2 = await connecting
        assert reply2["sid"] == reply["sid"]
        await sender.emit("say", "r", "after")
        got = [(await again.event())[1] for _ in range(4)]
        assert got == ["logged", "during the read", "also during", "after"]
        await sender.ws.close()
        await again.ws.close()
    finally:
        await io.shutdown()


async def test_a_client_gone_during_its_recovery_can_recover_on_its_next_try() -> None:
    """A client whose transport drops while its session is being restored keeps the session
    for its next reconnect, instead of losing it to the attempt that never completed."""
    store = SlowLogStore()
    store.release.set()
    io = make_server(store=store)
    port = await io.start("127.0.0.1", 0)
    try:
        client, reply = await RawClient.connect(port)
        await client.ack("join", "r")
        await client.drop()
        await until_saved(io, reply["pid"])
        store.release.clear()
        store.reading.clear()
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        async with websockets.connect(url) as ws:
            assert str(await ws.recv()).startswith("0{")
            await ws.send("40" + json.dumps({"pid": reply["pid"], "offset": "0"}))
            await asyncio.wait_for(store.reading.wait(), 3)
        for _ in range(300):  # until the server has seen the close
            if not io.engine.sessions:
                break
            await asyncio.sleep(0.01)
        assert not io.engine.sessions
        store.release.set()
        await until_saved(io, reply["pid"])
        again, reply2 = await RawClient.connect(port, {"pid": reply["pid"], "offset": "0"})
        assert reply2["sid"] == reply["sid"]
        me = (await again.ack("whoami"))[0]
        assert me["recovered"] is True and "r" in me["rooms"]
        await again.ws.close()
    finally:
        await io.shutdown()


# -- the Recovery object the server holds, on its own ------------------------------------


async def test_on_broadcast_stamps_logs_and_encodes_once() -> None:
    """A broadcast gets the next offset as a last argument and is logged under it."""
    store = MemoryRecoveryStore()
    recovery = Recovery(RecoveryOptions(store=store))
    await recovery.start()
    try:
        packet = SocketPacket(SocketPacketType.EVENT, "/", ["said", "hi"])
        message = recovery.on_broadcast("/", packet, BroadcastOptions(frozenset({"r"})))
        assert message.packets == ['42["said","hi","1"]']
        (logged,) = await store.packets_after("/", 0, 10)
        assert (logged.offset, logged.rooms, logged.packets) == (
            1,
            ("r",),
            ('42["said","hi","1"]',),
        )
        assert recovery.head == 1
    finally:
        await recovery.close()


async def test_on_broadcast_leaves_volatile_broadcasts_unstamped_and_unlogged() -> None:
    """A volatile broadcast carries no offset and is not in the log."""
    store = MemoryRecoveryStore()
    recovery = Recovery(RecoveryOptions(store=store))
    await recovery.start()
    try:
        packet = SocketPacket(SocketPacketType.EVENT, "/", ["tick"])
        message = recovery.on_broadcast("/", packet, BroadcastOptions(volatile=True))
        assert message.packets == ['42["tick"]']
        assert await store.packets_after("/", 0, 10) == []
        assert recovery.head == 0
    finally:
        await recovery.close()


@pytest.mark.parametrize(
    ("reason", "saved"), [("transport close", True), ("client namespace disconnect", False)]
)
async def test_on_disconnect_saves_only_when_the_client_did_not_leave(
    reason: str, saved: bool
) -> None:
    """A dropped transport leaves a session to recover; a client that said goodbye does not."""
    store = MemoryRecoveryStore()
    recovery = Recovery(RecoveryOptions(store=store))
    await recovery.start()
    pid, base = recovery.new_session()
    recovery.on_disconnect(
        reason, pid=pid, sid="s1", nsp="/", rooms={"s1", "r"}, data={"k": 1}, base_offset=base
    )
    await recovery.close()  # waits for the background save
    record = await store.take_session(pid)
    assert (record is not None) is saved
    if record is not None:
        assert (record.sid, sorted(record.rooms), record.data) == ("s1", ["r", "s1"], {"k": 1})


# -- across processes: numbered by a cluster adapter, a store shared ----------------------


class SharedStore(MemoryRecoveryStore):
    """A memory store standing for one every process shares (a database)."""

    shared = True


def sequenced_message(offset: int, text: str) -> EncodedMessage:
    """A broadcast of ``text`` as a cluster adapter hands it over, offset appended."""
    return EncodedMessage([f'42["said","{text}","{offset}"]'], str(offset))


async def test_sequenced_broadcasts_are_logged_by_their_own_process_only() -> None:
    """With a shared store, a process logs the broadcasts it made, not those it read."""
    store = SharedStore()
    recovery = Recovery(RecoveryOptions(store=store))
    await recovery.start()
    try:
        for offset, own in ((1, True), (2, False), (3, True)):
            recovery.sequenced("/", sequenced_message(offset, "x"), offset, BroadcastOptions(), own)
        assert [p.offset for p in await store.packets_after("/", 0, 10)] == [1, 3]
        assert recovery.head == 3
    finally:
        await recovery.close()


async def test_sequenced_broadcasts_are_all_logged_in_a_store_of_its_own() -> None:
    """With a store of its own (memory), a process logs every broadcast it reads."""
    store = MemoryRecoveryStore()
    recovery = Recovery(RecoveryOptions(store=store))
    await recovery.start()
    try:
        for offset in (1, 2):
            recovery.sequenced(
                "/", sequenced_message(offset, "x"), offset, BroadcastOptions(), False
            )
        assert [p.offset for p in await store.packets_after("/", 0, 10)] == [1, 2]
    finally:
        await recovery.close()


async def saved_session(recovery: Recovery, rooms: set[str], base_offset: int = 0) -> str:
    """The pid of a session saved (as at a dropped transport) in ``rooms``."""
    pid, _ = recovery.new_session()
    recovery.on_disconnect(
        "transport close", pid=pid, sid="s1", nsp="/", rooms=rooms, data={}, base_offset=base_offset
    )
    while recovery._pending:
        await asyncio.gather(*recovery._pending)
    return pid


async def test_a_restore_adds_what_the_shared_log_lacks_from_what_it_read() -> None:
    """Broadcasts of another process not yet in the shared log come from the recent ones."""
    recovery = Recovery(RecoveryOptions(store=SharedStore()))
    await recovery.start()
    try:
        for offset in (1, 2, 3):  # made elsewhere: not logged here
            recovery.sequenced(
                "/", sequenced_message(offset, f"m{offset}"), offset, BroadcastOptions(), False
            )
        pid = await saved_session(recovery, {"s1"})
        restored = await recovery.restore("/", {"pid": pid, "offset": "1"})
        assert restored is not None
        assert [m.packets for m in recovery.replay(restored)] == [
            ['42["said","m2","2"]'],
            ['42["said","m3","3"]'],
        ]
    finally:
        await recovery.close()


async def test_a_restore_with_a_lost_broadcast_connects_afresh() -> None:
    """A hole in a namespace's consecutive offsets (a broadcast lost) is no replay at all."""
    recovery = Recovery(RecoveryOptions(store=SharedStore()))
    await recovery.start()
    try:
        for offset in (1, 2, 4):  # 3 is nowhere
            recovery.sequenced(
                "/", sequenced_message(offset, "m"), offset, BroadcastOptions(), False
            )
        pid = await saved_session(recovery, {"s1"})
        assert await recovery.restore("/", {"pid": pid, "offset": "1"}) is None
    finally:
        await recovery.close()


class LiveStub:
    """A connected socket as Recovery.track reads it."""

    def __init__(self, sid: str) -> None:
        self.id = sid
        self.nsp = SimpleNamespace(name="/")
        self.rooms = {sid}
        self.data: dict[str, Any] = {"name": "ana"}
        self.base_offset = 7


async def test_live_sessions_are_written_through_to_a_shared_store() -> None:
    """A tracked socket's session is in the shared store before any disconnect (kill -9
    saves nothing), again when its rooms change, and forgotten when its client leaves."""
    store = SharedStore()
    recovery = Recovery(RecoveryOptions(store=store))
    await recovery.start()
    try:
        socket = LiveStub("s1")
        recovery.track("p1", socket)
        await recovery.write_through()
        record = await store.take_session("p1")
        assert record is not None
        assert (record.sid, record.rooms, record.data, record.base_offset) == (
            "s1",
            ("s1",),
            {"name": "ana"},
            7,
        )
        await recovery.write_through()  # unchanged: not written again
        assert await store.take_session("p1") is None
        socket.rooms.add("lobby")
        await recovery.write_through()
        record = await store.take_session("p1")
        assert record is not None and record.rooms == ("lobby", "s1")
        await recovery.write_through()
        await store.save_session(record)  # as written through
        recovery.on_disconnect(
            "client namespace disconnect",
            pid="p1",
            sid="s1",
            nsp="/",
            rooms=socket.rooms,
            data={},
            base_offset=7,
        )
        await recovery.close()
        assert await store.take_session("p1") is None
    finally:
        await recovery.close()


async def test_live_sessions_are_not_written_to_a_store_of_its_own() -> None:
    """With a memory store (nothing survives the process), nothing is written through."""
    store = MemoryRecoveryStore()
    recovery = Recovery(RecoveryOptions(store=store))
    await recovery.start()
    try:
        recovery.track("p1", LiveStub("s1"))
        await recovery.write_through()
        assert await store.take_session("p1") is None
    finally:
        await recovery.close()


# -------------------------------------------------------------------------- offset modes
JS_QUERY = "EIO=4&transport=websocket"
PYTHON_QUERY = "transport=websocket&EIO=4"


@pytest.mark.parametrize(
    ("auth", "query", "mode"),
    [
        (None, JS_QUERY, OFFSETS_TRAILING),  # the official client without `auth`
        ({}, JS_QUERY, OFFSETS_TRAILING),  # ... with an `auth` option
        ({"name": "ana"}, PYTHON_QUERY, OFFSETS_NONE),  # python-socketio
        ({}, "token=x&transport=polling&EIO=4&t=1.5", OFFSETS_NONE),
        ({"pid": "p", "offset": "3"}, PYTHON_QUERY, OFFSETS_TRAILING),  # recovering
        ({"offsets": "tagged"}, PYTHON_QUERY, OFFSETS_TAGGED),  # salas.client
        ({"offsets": "none", "pid": "p"}, JS_QUERY, OFFSETS_NONE),  # named mode wins
        ({"offsets": "trailing"}, PYTHON_QUERY, OFFSETS_TRAILING),
    ],
)
def test_offset_mode_choice(auth: Any, query: str, mode: int) -> None:
    """The offset mode follows the CONNECT auth first, then the handshake's maker."""
    assert offset_mode(auth, query) == mode


@pytest.mark.parametrize("named", [5, True, None, "", "TAGGED", "x" * 10_000, ["tagged"]])
def test_offset_mode_ignores_unknown_names(named: Any) -> None:
    """An `offsets` value that names no mode is ignored (hostile or mistaken input)."""
    assert offset_mode({"offsets": named}, JS_QUERY) == OFFSETS_TRAILING
    assert offset_mode({"offsets": named}, PYTHON_QUERY) == OFFSETS_NONE


async def test_tagged_socket_direct_emits_end_with_empty_offset() -> None:
    """A socket that asked for tagged offsets gets "" after a direct emit's arguments and
    the offset after a broadcast's; a raw client without a CONNECT payload gets Node's form."""
    io = Server(connection_state_recovery=True, serve_client=False)

    @io.on("connection")
    async def connection(socket: Any) -> None:
        await socket.join("r")
        await socket.emit("direct", "42")

    port = await io.start("127.0.0.1", 0)
    try:
        tagged, _ = await RawClient.connect(port, {"offsets": "tagged"})
        trailing, _ = await RawClient.connect(port)
        assert await tagged.event() == ["direct", "42", ""]
        assert await trailing.event() == ["direct", "42"]
        await io.to("r").emit("said", "x")
        (said_tagged, said_trailing) = (await tagged.event(), await trailing.event())
        assert said_tagged[:2] == said_trailing[:2] == ["said", "x"]
        assert said_tagged[2] == said_trailing[2] and said_tagged[2].isdigit()
        await tagged.ws.close()
        await trailing.ws.close()
    finally:
        await io.shutdown()


# -- a run killed before its log was written -----------------------------------------------

_KILLED_RUN = """
import asyncio, os, signal, sys
from salas.adapter import BroadcastOptions
from salas.protocol import SocketPacket, SocketPacketType
from salas.recovery import Recovery, RecoveryOptions, open_recovery_store

async def main():
    recovery = Recovery(RecoveryOptions(store=open_recovery_store(sys.argv[1])))
    await recovery.start()
    def said(text):
        packet = SocketPacket(SocketPacketType.EVENT, "/", ["said", text])
        return int(recovery.on_broadcast("/", packet, BroadcastOptions()).stamp)
    logged = [said(f"m{i}") for i in range(3)]
    await recovery.store.flush()
    # Numbered and sent, queued for the log writer, which never gets to run: killed.
    unlogged = [said(f"late{i}") for i in range(2)]
    print(max(logged), max(unlogged), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_the_run_after_a_kill_numbers_above_what_the_killed_run_handed_out(
    tmp_path: Any,
) -> None:
    """A run killed (SIGKILL) after numbering broadcasts its log writer had not yet written:
    the next run on the same file numbers its broadcasts above all of them, so a client that
    holds the offset of one of those broadcasts is replayed what comes after it, and no
    offset means two broadcasts."""
    from salas.recovery import open_recovery_store

    url = f"sqlite://{tmp_path / 'recovery.db'}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _KILLED_RUN, url, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == -signal.SIGKILL
    last_logged, last_handed_out = map(int, out.split())
    assert last_handed_out > last_logged

    store = open_recovery_store(url)
    recovery = Recovery(RecoveryOptions(store=store))
    await recovery.start()
    try:
        assert await store.last_offset() == last_logged  # the late ones are lost
        packet = SocketPacket(SocketPacketType.EVENT, "/", ["said", "after the restart"])
        offset = int(recovery.on_broadcast("/", packet, BroadcastOptions()).stamp)
        assert offset > last_handed_out
        replayed = await store.packets_after("/", last_handed_out, 10)
        assert [p.offset for p in replayed] == [offset]
    finally:
        await recovery.close()
