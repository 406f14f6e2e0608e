"""`Socket`: events, acks, rooms, emitting and disconnecting (salas.server.socket),
against a real Server with raw websocket clients."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest
from websockets.exceptions import ConnectionClosed

from salas import AckTimeout, Disconnected, Socket


async def serve_one(make_server, start, client, **options):
    """A server whose connection handler stores each socket; one client connected."""
    io = make_server(**options)
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    raw = await client(port)
    assert len(sockets) == 1
    return io, sockets[0], raw, port


# -- events from the client ----------------------------------------------------------------


async def test_event_handlers_sync_and_async(make_server, start, client, until) -> None:
    """Sync and async event handlers get the event's arguments."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    got = []
    socket.on("sync", lambda *args: got.append(("sync", args)))

    @socket.on("async")
    async def handler(a, b):
        await asyncio.sleep(0)
        got.append(("async", (a, b)))

    await raw.send('2["sync",1,{"k":[true,null]}]')
    await raw.send('2["async","x",2.5]')
    await until(lambda: len(got) == 2)
    assert got == [("sync", (1, {"k": [True, None]})), ("async", ("x", 2.5))]


async def test_binary_event_arguments(make_server, start, client, until) -> None:
    """A BINARY_EVENT's attachments reach the handler as bytes in place."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    got = []
    socket.on("upload", lambda name, blob, meta: got.append((name, blob, meta)))
    await raw.send('51-["upload","f.bin",{"_placeholder":true,"num":0},{"n":1}]')
    await raw.send(b"\x00\x01\x02")
    await until(lambda: got)
    assert got == [("f.bin", b"\x00\x01\x02", {"n": 1})]


async def test_on_any_sees_every_event(make_server, start, client, until) -> None:
    """on_any handlers get (event, *args) for every event, handled or not."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    seen = []
    socket.on_any(lambda event, *args: seen.append((event, args)))
    socket.on("known", lambda: None)
    await raw.send('2["known"]')
    await raw.send('2["unknown",1]')
    await until(lambda: len(seen) == 2)
    assert seen == [("known", ()), ("unknown", (1,))]


async def test_on_any_outgoing_sees_emits_not_broadcasts(make_server, start, client) -> None:
    """on_any_outgoing handlers get (event, *args) of emit and volatile emit, not of broadcasts."""
    io, socket, raw, _ = await serve_one(make_server, start, client)
    seen = []
    socket.on_any_outgoing(lambda event, *args: seen.append((event, args)))
    await socket.emit("direct", 1, "x")
    await socket.volatile.emit("light")
    await io.emit("to everyone")
    assert seen == [("direct", (1, "x")), ("light", ())]
    assert await raw.event() == ["direct", 1, "x"]
    assert await raw.event() == ["light"]
    assert await raw.event() == ["to everyone"]


async def test_unhandled_event_is_ignored(make_server, start, client) -> None:
    """An event with no handler is ignored, even when it asks for an ack."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    await raw.send('25["nobody listens"]')
    await raw.nothing()
    assert socket.connected


# -- acks to the client ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "wire"),
    [
        (None, "[]"),
        ("ok", '["ok"]'),
        ({"ok": True}, '[{"ok":true}]'),
        ([1, 2], "[[1,2]]"),
        (("a", 2, None), '["a",2,null]'),
        ((), "[]"),
    ],
)
async def test_ack_return_values(make_server, start, client, returned, wire: str) -> None:
    """A handler's return value is the ack: None → [], value → [value], tuple → its items."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    socket.on("ask", lambda: returned)
    await raw.send('27["ask"]')
    assert await raw.recv() == "437" + wire


async def test_async_handler_ack(make_server, start, client) -> None:
    """An async handler's awaited return value is the ack."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)

    @socket.on("slow")
    async def slow(x):
        await asyncio.sleep(0.02)
        return x * 2, "done"

    await raw.send('212["slow",21]')
    assert await raw.recv() == '4312[42,"done"]'


async def test_ack_with_bytes_is_binary_ack(make_server, start, client) -> None:
    """An ack holding bytes is sent as BINARY_ACK followed by the attachment."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    socket.on("file", lambda: {"data": b"\xca\xfe"})
    await raw.send('23["file"]')
    assert await raw.recv() == '461-3[{"data":{"_placeholder":true,"num":0}}]'
    assert await raw.recv() == b"\xca\xfe"


async def test_no_ack_when_not_asked(make_server, start, client) -> None:
    """Without an ack id, the handler's return value is not sent anywhere."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    socket.on("ask", lambda: "ignored")
    await raw.send('2["ask"]')
    await raw.nothing()


async def test_ack_in_namespace(make_server, start, client) -> None:
    """Acks in a custom namespace carry the namespace."""
    io = make_server()
    sockets: list[Socket] = []
    io.of("/admin").on("connection", sockets.append)
    port = await start(io)
    raw = await client(port, nsp="/admin")
    sockets[0].on("ping", lambda n: n + 1)
    await raw.send('2/admin,9["ping",1]')
    assert await raw.recv() == "43/admin,9[2]"


# -- emitting to the client -----------------------------------------------------------------


async def test_emit(make_server, start, client) -> None:
    """socket.emit sends an EVENT with the name and arguments, binary as BINARY_EVENT."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    await socket.emit("hello", "world", {"n": 1})
    assert await raw.recv() == '42["hello","world",{"n":1}]'
    await socket.emit("blob", b"\x01")
    assert await raw.recv() == '451-["blob",{"_placeholder":true,"num":0}]'
    assert await raw.recv() == b"\x01"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("[]", None), ('["one"]', "one"), ('["a",{"b":2}]', ("a", {"b": 2}))],
)
async def test_emit_with_ack_result(make_server, start, client, reply, expected) -> None:
    """emit_with_ack returns the client's ack: None, the single value, or a tuple."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    pending = asyncio.create_task(socket.emit_with_ack("question", 42, timeout=3))
    sent = await raw.recv()
    assert isinstance(sent, str) and sent.startswith("42")
    ack_id = sent[2 : sent.index("[")]
    assert ack_id.isdigit()
    assert sent == f'42{ack_id}["question",42]'
    await raw.send(f"3{ack_id}{reply}")
    assert await asyncio.wait_for(pending, 3) == expected


async def test_emit_with_ack_binary_reply(make_server, start, client) -> None:
    """A BINARY_ACK reply is reassembled into bytes."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    pending = asyncio.create_task(socket.emit_with_ack("q", timeout=3))
    sent = await raw.recv()
    ack_id = sent[2 : sent.index("[")]
    await raw.send(f'61-{ack_id}[{{"_placeholder":true,"num":0}}]')
    await raw.send(b"\xff")
    assert await asyncio.wait_for(pending, 3) == b"\xff"


async def test_emit_with_ack_ids_are_distinct(make_server, start, client) -> None:
    """Concurrent emit_with_ack calls use distinct ids and each gets its own answer."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    first = asyncio.create_task(socket.emit_with_ack("a", timeout=3))
    second = asyncio.create_task(socket.emit_with_ack("b", timeout=3))
    sent = [await raw.recv(), await raw.recv()]
    ids = {s[s.index("[") + 2 : s.index("[") + 3]: s[2 : s.index("[")] for s in sent}
    assert ids["a"] != ids["b"]
    await raw.send(f'3{ids["b"]}["for b"]')
    await raw.send(f'3{ids["a"]}["for a"]')
    assert await asyncio.wait_for(first, 3) == "for a"
    assert await asyncio.wait_for(second, 3) == "for b"


async def test_emit_with_ack_timeout(make_server, start, client) -> None:
    """No ack within the timeout raises AckTimeout (a TimeoutError); a late ack is ignored."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    with pytest.raises(AckTimeout):
        await socket.emit_with_ack("never answered", timeout=0.1)
    assert issubclass(AckTimeout, TimeoutError)
    sent = await raw.recv()
    ack_id = sent[2 : sent.index("[")]
    await raw.send(f'3{ack_id}["too late"]')
    await raw.send('2["still","fine"]')
    await asyncio.sleep(0.05)
    assert socket.connected


async def test_emit_with_ack_disconnected(make_server, start, client) -> None:
    """If the client leaves while an ack is pending, emit_with_ack raises Disconnected."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    pending = asyncio.create_task(socket.emit_with_ack("q", timeout=5))
    await raw.recv()
    await raw.close()
    with pytest.raises(Disconnected):
        await asyncio.wait_for(pending, 3)
    with pytest.raises(Disconnected):
        await socket.emit_with_ack("again", timeout=1)  # not connected any more


@pytest.mark.parametrize(
    "name",
    ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"],
)
async def test_reserved_event_names_refused(make_server, start, client, name: str) -> None:
    """Emitting a reserved event name raises ValueError, from a socket and from a broadcast."""
    io, socket, raw, _ = await serve_one(make_server, start, client)
    with pytest.raises(ValueError, match="reserved"):
        await socket.emit(name)
    with pytest.raises(ValueError, match="reserved"):
        await io.emit(name, 1)
    with pytest.raises(ValueError, match="reserved"):
        await socket.emit_with_ack(name, timeout=0.1)
    await raw.nothing()


@pytest.mark.parametrize(
    ("event", "args", "error"),
    [("disconnect", (), ValueError), (42, (), TypeError), ("q", (object(),), TypeError)],
    ids=["reserved-name", "name-not-string", "argument-not-json"],
)
async def test_refused_emit_with_ack_leaves_no_pending_ack(
    make_server, start, client, until, event, args, error
) -> None:
    """A refused emit_with_ack sends nothing and leaves no ack to fail unawaited at disconnect."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        with pytest.raises(error):
            await socket.emit_with_ack(event, *args, timeout=1)
        await raw.nothing()
        await raw.close()
        await until(lambda: not socket.connected)
        gc.collect()  # a failed future nobody awaited reports itself when collected
        await asyncio.sleep(0)
        assert unhandled == []
    finally:
        loop.set_exception_handler(None)


async def test_event_name_must_be_string(make_server, start, client) -> None:
    """A non-string event name raises TypeError."""
    _io, socket, _raw, _ = await serve_one(make_server, start, client)
    with pytest.raises(TypeError):
        await socket.emit(42)  # type: ignore[arg-type]


# -- handler errors --------------------------------------------------------------------------


async def test_handler_exceptions_logged_connection_kept(
    make_server, start, client, until, caplog
) -> None:
    """An exception in a (sync or async) handler is logged with socket id and event; the
    connection keeps working."""
    caplog.set_level(logging.ERROR, logger="salas.server")
    _io, socket, raw, _ = await serve_one(make_server, start, client)

    def sync_boom():
        raise RuntimeError("sync kaboom")

    async def async_boom():
        await asyncio.sleep(0)
        raise RuntimeError("async kaboom")

    socket.on("sync_boom", sync_boom)
    socket.on("async_boom", async_boom)
    socket.on("echo", lambda x: x)
    await raw.send('21["sync_boom"]')
    await raw.send('22["async_boom"]')
    await until(lambda: "async kaboom" in caplog.text)
    records = [r for r in caplog.records if r.exc_info]
    text = "\n".join(r.getMessage() for r in records)
    assert "sync kaboom" in caplog.text
    assert socket.id in text
    assert "'sync_boom'" in text
    assert "'async_boom'" in text
    await raw.send('23["echo","alive"]')
    assert await raw.recv() == '433["alive"]'  # no ack came for the failed handlers
    assert socket.connected


# -- rooms and broadcasting from a socket --------------------------------------------------------


async def test_join_leave_rooms(make_server, start, client) -> None:
    """join adds rooms (also several at once), leave removes one; a socket is in its own room."""
    _io, socket, _raw, _ = await serve_one(make_server, start, client)
    assert socket.rooms == {socket.id}
    await socket.join("a")
    await socket.join("b", ["c", "d"])
    assert socket.rooms == {socket.id, "a", "b", "c", "d"}
    await socket.leave("c")
    assert socket.rooms == {socket.id, "a", "b", "d"}
    with pytest.raises(TypeError):
        await socket.join(["ok", 5])  # type: ignore[list-item]


async def test_socket_to_and_broadcast_exclude_sender(make_server, start, client) -> None:
    """socket.to(room) reaches the room but not the sender; socket.broadcast everyone else."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    a, b, c = await client(port), await client(port), await client(port)
    sa, sb, _ = sockets
    await sa.join("room")
    await sb.join("room")
    await sa.to("room").emit("to room", 1)
    assert await b.event() == ["to room", 1]
    await a.nothing(0.05)
    await c.nothing(0.05)
    await sa.broadcast.emit("everyone else")
    assert await b.event() == ["everyone else"]
    assert await c.event() == ["everyone else"]
    await a.nothing(0.05)
    await sa.to("room").except_(sb.id).emit("nobody")
    await b.nothing(0.05)


async def test_to_socket_id_reaches_that_socket(make_server, start, client) -> None:
    """io.to(socket.id) reaches exactly that socket."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    a, b = await client(port), await client(port)
    await io.to(sockets[1].id).emit("direct")
    assert await b.event() == ["direct"]
    await a.nothing(0.05)


async def test_socket_volatile_emit(make_server, start, client) -> None:
    """socket.volatile.emit reaches a connection that is not congested."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    await socket.volatile.emit("tick", 1)
    assert await raw.event() == ["tick", 1]


# -- disconnecting --------------------------------------------------------------------------------


async def test_server_namespace_disconnect(make_server, start, client, until) -> None:
    """socket.disconnect() sends DISCONNECT, reason "server namespace disconnect", leaves
    rooms; the connection stays open."""
    io, socket, raw, _ = await serve_one(make_server, start, client)
    reasons = []
    socket.on("disconnecting", lambda reason: reasons.append(("disconnecting", set(socket.rooms))))
    socket.on("disconnect", lambda reason: reasons.append(("disconnect", reason)))
    await socket.join("room")
    await socket.disconnect()
    assert await raw.recv() == "41"
    assert reasons == [
        ("disconnecting", {socket.id, "room"}),
        ("disconnect", "server namespace disconnect"),
    ]
    assert not socket.connected
    assert io.sockets.sockets == {}
    assert io.sockets.adapter.room_members("room") == set()
    await raw.send("0")  # the same connection can join again
    assert (await raw.recv()).startswith("40{")
    await socket.disconnect()  # a second call does nothing
    assert len(reasons) == 2


async def test_disconnect_close_ends_connection(make_server, start, client) -> None:
    """socket.disconnect(close=True) sends DISCONNECT and closes the underlying connection."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    reasons = []
    socket.on("disconnect", reasons.append)
    await socket.disconnect(close=True)
    assert await raw.recv() == "41"
    await raw.closed()
    assert reasons == ["server namespace disconnect"]
    assert socket.session.closed


async def test_disconnect_close_disconnects_every_namespace(make_server, start, client) -> None:
    """disconnect(close=True) disconnects all of the client's namespaces, as Node does."""
    io = make_server()
    main: list[Socket] = []
    admin: list[Socket] = []
    io.on("connection", main.append)
    io.of("/admin").on("connection", admin.append)
    port = await start(io)
    raw = await client(port)
    await raw.connect_nsp("/admin")
    reasons = []
    admin[0].on("disconnect", reasons.append)
    await main[0].disconnect(close=True)
    packets = []
    with pytest.raises(ConnectionClosed):
        while True:
            packets.append(await raw.recv())
    assert sorted(packets) == ["41", "41/admin,"]
    assert reasons == ["server namespace disconnect"]


async def test_client_namespace_disconnect(make_server, start, client, until) -> None:
    """A DISCONNECT from the client gives reason "client namespace disconnect"."""
    io, socket, raw, _ = await serve_one(make_server, start, client)
    reasons = []
    socket.on("disconnect", reasons.append)
    await raw.send("1")
    await until(lambda: reasons)
    assert reasons == ["client namespace disconnect"]
    assert io.sockets.sockets == {}


async def test_transport_close_reason(make_server, start, client, until) -> None:
    """The client closing its connection gives reason "transport close"."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    reasons = []
    socket.on("disconnect", reasons.append)
    await raw.close()
    await until(lambda: reasons)
    assert reasons == ["transport close"]


async def test_ping_timeout_reason(make_server, start, client, until) -> None:
    """A client that stops answering pings is disconnected with reason "ping timeout"."""
    io = make_server(ping_interval=0.1, ping_timeout=0.1)
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    raw = await client(port)
    reasons = []
    sockets[0].on("disconnect", reasons.append)
    assert await raw.recv(answer_pings=False) == "2"
    await until(lambda: reasons, timeout=2)
    assert reasons == ["ping timeout"]


async def test_async_disconnect_handler(make_server, start, client, until) -> None:
    """An async disconnect handler runs to completion."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    done = []

    @socket.on("disconnect")
    async def gone(reason):
        await asyncio.sleep(0.01)
        done.append(reason)

    await raw.close()
    await until(lambda: done)
    assert done == ["transport close"]


async def test_client_cannot_fire_reserved_events(make_server, start, client) -> None:
    """A client sending an event named "disconnect" does not run the disconnect handler."""
    _io, socket, raw, _ = await serve_one(make_server, start, client)
    called = []
    socket.on("disconnect", called.append)
    socket.on("disconnecting", called.append)
    await raw.send('2["disconnect","spoofed"]')
    await raw.send('2["disconnecting","spoofed"]')
    await asyncio.sleep(0.1)
    assert "spoofed" not in called


async def test_socket_handshake_details(make_server, start, client) -> None:
    """socket.handshake holds the auth payload, query, headers and address of the client."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    await client(port, auth={"token": "abc"})
    handshake = sockets[0].handshake
    assert handshake["auth"] == {"token": "abc"}
    assert handshake["query"]["EIO"] == "4"
    assert handshake["query"]["transport"] == "websocket"
    assert handshake["address"] == "127.0.0.1"
    assert "host" in handshake["headers"]
    assert handshake["url"].startswith("/socket.io/?")
    assert sockets[0].data == {}


async def test_socket_handshake_time_is_the_connection_time(make_server, start, client) -> None:
    """socket.handshake, however late it is first read, tells when the socket connected."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    before = int(time.time() * 1000)
    await client(port)
    await asyncio.sleep(1.1)
    handshake = sockets[0].handshake
    assert before <= handshake["issued"] <= before + 1000
    issued = time.gmtime(handshake["issued"] / 1000)
    assert handshake["time"] == time.strftime("%a, %d %b %Y %H:%M:%S GMT", issued)
    assert sockets[0].handshake is handshake  # built once
    assert handshake["headers"] is sockets[0].conn.request.headers  # not a copy


async def test_socket_auth_is_the_connect_payload(make_server, start, client) -> None:
    """socket.auth is what the client sent in CONNECT, read without building the handshake,
    and the same dict as handshake["auth"]; {} (kept) when the client sent nothing."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    await client(port, auth={"token": "abc"})
    await client(port)
    sent, empty = sockets
    assert sent.auth == {"token": "abc"}
    assert sent._handshake is None  # not built by reading auth
    assert sent.handshake["auth"] is sent.auth
    assert empty.auth == {}
    empty.auth["name"] = "ana"
    assert empty.handshake["auth"] == {"name": "ana"}
