"""`Client`: joining namespaces, middleware, malformed packets and the connect timeout
(salas.server.client), against a real Server with raw websocket clients."""

from __future__ import annotations

import asyncio
import logging

import pytest

from salas import ConnectionRefused, Socket


async def test_connection_handlers_sync_and_async(make_server, start, client, until) -> None:
    """Sync and async connection handlers both run with the new socket, after CONNECT."""
    io = make_server()
    seen = []
    io.on("connection", lambda socket: seen.append(("sync", socket)))

    @io.on("connection")
    async def on_connection(socket: Socket) -> None:
        await asyncio.sleep(0)
        seen.append(("async", socket))

    port = await start(io)
    raw = await client(port)
    await until(lambda: len(seen) == 2)
    (kind1, s1), (kind2, s2) = seen
    assert (kind1, kind2) == ("sync", "async")
    assert s1 is s2
    assert s1.id == raw.socket_id  # the CONNECT reply carries the socket id
    assert s1.id != raw.sid  # ... which is not the Engine.IO session id
    assert s1.connected
    assert io.sockets.sockets == {s1.id: s1}


async def test_connect_reply_format(make_server, start, client) -> None:
    """The CONNECT reply is `40{"sid":...}` on / and `40/admin,{"sid":...}` on /admin."""
    io = make_server()
    io.of("/admin")
    port = await start(io)
    raw = await client(port, nsp=None)
    await raw.send("0")
    reply = await raw.recv()
    assert reply.startswith('40{"sid":"')
    await raw.send("0/admin,")
    reply = await raw.recv()
    assert reply.startswith('40/admin,{"sid":"')


async def test_connect_reply_is_its_own_write(make_server, start, client, monkeypatch) -> None:
    """The CONNECT reply goes out in a write of its own, before what the connection handler
    emits in the same iteration (which shares one write): a client reading one message per
    read of its socket gets the reply, then the handler's packets."""
    io = make_server()

    @io.on("connection")
    async def greet(socket: Socket) -> None:
        await socket.emit("first")
        await socket.emit("second")

    port = await start(io)
    raw = await client(port, nsp=None)
    transport = io.engine.sessions[raw.sid].request.connection.transport
    writes: list[bytes] = []
    real_write, real_writelines = transport.write, transport.writelines
    nested = False  # asyncio's writelines may call self.write: record only outer calls

    def write(data: bytes) -> None:
        if not nested:
            writes.append(bytes(data))
        real_write(data)

    def writelines(chunks: list[bytes]) -> None:
        nonlocal nested
        chunks = list(chunks)
        writes.append(b"".join(chunks))
        nested = True
        try:
            real_writelines(chunks)
        finally:
            nested = False

    monkeypatch.setattr(transport, "write", write)
    monkeypatch.setattr(transport, "writelines", writelines)
    await raw.send("0")
    reply = await raw.recv()
    assert isinstance(reply, str) and reply.startswith('40{"sid":"')
    assert await raw.event() == ["first"]
    assert await raw.event() == ["second"]
    assert len(writes) == 2, writes
    assert writes[0] == b"\x81" + bytes([len(reply)]) + reply.encode()
    assert b'42["first"]' in writes[1] and b'42["second"]' in writes[1]


async def test_several_namespaces_on_one_connection(make_server, start, client) -> None:
    """One connection can join several namespaces; each gets its own socket and events."""
    io = make_server()
    main: list[Socket] = []
    admin: list[Socket] = []
    io.on("connection", main.append)
    io.of("admin").on("connection", admin.append)  # a leading "/" is added
    port = await start(io)
    raw = await client(port)
    await raw.connect_nsp("/admin")
    assert main[0].id != admin[0].id
    assert main[0].client is admin[0].client
    got = []
    admin[0].on("ev", got.append)
    main[0].on("ev", lambda x: got.append(("main", x)))
    await raw.send('2/admin,["ev","for admin"]')
    await raw.send('2["ev","for main"]')
    await asyncio.sleep(0.05)
    assert got == ["for admin", ("main", "for main")]
    await io.of("/admin").emit("hello")
    assert await raw.recv() == '42/admin,["hello"]'


async def test_unknown_namespace(make_server, start, client) -> None:
    """CONNECT to a namespace that doesn't exist gets CONNECT_ERROR "Invalid namespace"."""
    io = make_server()
    port = await start(io)
    raw = await client(port, nsp=None)
    await raw.send("0/nope,")
    assert await raw.recv() == '44/nope,{"message":"Invalid namespace"}'


@pytest.mark.parametrize("packet", ['2/admin,["ev","x"]', "1/admin,"])
async def test_packets_for_unjoined_namespace_close(make_server, start, client, packet) -> None:
    """A packet for a namespace the client has not joined closes it (as Node does); nothing runs."""
    io = make_server()
    got = []
    io.of("/admin").on("connection", lambda s: s.on("ev", got.append))
    port = await start(io)
    raw = await client(port)
    await raw.send(packet)
    await raw.closed()
    assert got == []


async def test_auth_payload_and_connect_twice(make_server, start, client) -> None:
    """The CONNECT payload is the socket's auth; a second CONNECT to a joined namespace
    closes the connection (as Node does) without a second socket."""
    io = make_server()
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    raw = await client(port, auth={"token": "t0k"})
    assert sockets[0].handshake["auth"] == {"token": "t0k"}
    await raw.send('0{"token":"other"}')
    await raw.closed()
    assert len(sockets) == 1


async def test_middleware_refusal(make_server, start, client) -> None:
    """ConnectionRefused in a middleware sends CONNECT_ERROR with message and data; the
    connection handler does not run."""
    io = make_server()
    connected = []
    io.on("connection", connected.append)

    @io.use
    async def check(socket: Socket) -> None:
        await asyncio.sleep(0)
        if socket.handshake["auth"].get("token") != "good":
            raise ConnectionRefused("not authorized", {"hint": "send a token"})

    port = await start(io)
    raw = await client(port, nsp=None)
    await raw.send('0{"token":"bad"}')
    assert await raw.recv() == '44{"message":"not authorized","data":{"hint":"send a token"}}'
    assert connected == []
    assert io.sockets.sockets == {}
    await raw.send('0{"token":"good"}')  # the same connection may try again
    assert (await raw.recv()).startswith("40{")
    assert len(connected) == 1


async def test_middleware_refusal_without_data(make_server, start, client) -> None:
    """A sync middleware refusing without data sends only the message."""
    io = make_server()

    def refuse(socket: Socket) -> None:
        raise ConnectionRefused("go away")

    io.use(refuse)
    port = await start(io)
    raw = await client(port, nsp=None)
    await raw.send("0")
    assert await raw.recv() == '44{"message":"go away"}'


async def test_middleware_other_exception(make_server, start, client, caplog) -> None:
    """Another exception in a middleware is logged and refuses with its message."""
    caplog.set_level(logging.ERROR, logger="salas.server")
    io = make_server()
    connected = []
    io.on("connection", connected.append)

    @io.use
    def broken(socket: Socket) -> None:
        raise KeyError("missing thing")

    port = await start(io)
    raw = await client(port, nsp=None)
    await raw.send("0")
    assert await raw.recv() == '44{"message":"\'missing thing\'"}'
    assert connected == []
    assert "missing thing" in caplog.text
    assert any(r.exc_info for r in caplog.records)


async def test_middlewares_run_in_order_and_can_set_data(make_server, start, client) -> None:
    """Middlewares run in registration order; what they store in socket.data stays."""
    io = make_server()
    order = []

    @io.use
    def first(socket: Socket) -> None:
        order.append("first")
        socket.data["user"] = "ana"

    @io.use
    async def second(socket: Socket) -> None:
        order.append("second")
        assert socket.data["user"] == "ana"

    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    await client(port)
    assert order == ["first", "second"]
    assert sockets[0].data == {"user": "ana"}


async def test_namespace_middleware_only_for_its_namespace(make_server, start, client) -> None:
    """A middleware on /admin doesn't affect /."""
    io = make_server()

    @io.of("/admin").use
    def refuse(socket: Socket) -> None:
        raise ConnectionRefused("admins only")

    port = await start(io)
    raw = await client(port)
    await raw.send("0/admin,")
    assert await raw.recv() == '44/admin,{"message":"admins only"}'


async def test_client_gone_during_middleware(make_server, start, client, until) -> None:
    """If the connection closes while a middleware runs, the socket is never accepted."""
    io = make_server()
    release = asyncio.Event()
    connected = []
    io.on("connection", connected.append)

    @io.use
    async def slow(socket: Socket) -> None:
        await release.wait()

    port = await start(io)
    raw = await client(port, nsp=None)
    await raw.send("0")
    await asyncio.sleep(0.05)
    await raw.close()
    await until(lambda: not io.engine.sessions)
    release.set()
    await asyncio.sleep(0.05)
    assert connected == []
    assert io.sockets.sockets == {}


@pytest.mark.parametrize(
    "bad",
    ["2", '2["unterminated"', "9", "3[]", "0[]", b"\x00unexpected binary", '2["x"]\x00'],
)
async def test_malformed_packet_closes_connection(make_server, start, client, until, bad) -> None:
    """A malformed Socket.IO packet closes the connection ("parse error") as Node does."""
    io = make_server()
    reasons = []
    io.on("connection", lambda s: s.on("disconnect", reasons.append))
    port = await start(io)
    raw = await client(port)
    await raw.send(bad)
    await raw.closed()
    await until(lambda: reasons)
    assert reasons == ["parse error"]


async def test_deep_json_closes_only_its_connection(make_server, start, client, until) -> None:
    """Deeply nested JSON over websocket closes that connection cleanly; others carry on."""
    io = make_server()
    reasons = []

    @io.on("connection")
    def on_connection(socket: Socket) -> None:
        socket.on("disconnect", reasons.append)
        socket.on("echo", lambda n: socket.emit("echo", n))

    port = await start(io)
    attacker = await client(port)
    bystander = await client(port)
    await attacker.send('2["message",' + "[" * 1100 + "]" * 1100 + "]")
    await attacker.closed()
    await until(lambda: reasons)
    assert reasons == ["parse error"]
    await bystander.send('2["echo",7]')
    assert await bystander.event() == ["echo", 7]


async def test_deep_json_in_a_polling_post_closes_the_session(make_server, start) -> None:
    """Deeply nested JSON in a long-polling POST answers 400 and ends only that session."""
    import aiohttp

    io = make_server()
    port = await start(io)
    base = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        sids = []
        for _ in range(2):
            async with http.get(base) as response:
                sids.append((await response.text()).split('"sid":"')[1].split('"')[0])
            async with http.post(f"{base}&sid={sids[-1]}", data="40") as response:
                assert response.status == 200
        deep = '42["message",' + "[" * 1100 + "]" * 1100 + "]"
        async with http.post(f"{base}&sid={sids[0]}", data=deep) as response:
            assert response.status in (200, 400)
        assert sids[0] not in io.engine.sessions
        assert sids[1] in io.engine.sessions


async def test_connect_timeout(make_server, start, client, until) -> None:
    """A connection that never sends CONNECT is closed after connect_timeout."""
    io = make_server(connect_timeout=0.2)
    port = await start(io)
    raw = await client(port, nsp=None)
    loop = asyncio.get_running_loop()
    begin = loop.time()
    await raw.closed(timeout=3)
    assert 0.15 <= loop.time() - begin < 2
    assert io.engine.sessions == {}


async def test_connect_timeout_not_applied_after_connect(make_server, start, client) -> None:
    """A connection that joined a namespace in time is not closed by the connect timeout."""
    io = make_server(connect_timeout=0.1)
    port = await start(io)
    raw = await client(port)
    await asyncio.sleep(0.25)
    await raw.send('2["still there"]')
    await raw.nothing(0.05)
    assert len(io.sockets.sockets) == 1


def test_connect_timeout_must_be_positive(make_server) -> None:
    """Server refuses a non-positive connect_timeout."""
    with pytest.raises(ValueError, match="connect_timeout"):
        make_server(connect_timeout=0)


async def test_polling_client_round_trip(make_server, start) -> None:
    """A client on long-polling connects, emits and receives like a websocket one."""
    import aiohttp

    io = make_server()
    got = []

    @io.on("connection")
    def on_connection(socket: Socket) -> None:
        @socket.on("ping")
        def ping(n):
            got.append(n)
            return n + 1

    port = await start(io)
    base = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as response:
            body = await response.text()
        sid = body[1:].split('"sid":"')[1].split('"')[0]
        url = f"{base}&sid={sid}"
        async with http.post(url, data="40") as response:
            assert await response.text() == "ok"
        async with http.get(url) as response:
            assert (await response.text()).startswith("40{")
        async with http.post(url, data='421["ping",1]') as response:
            assert response.status == 200
        async with http.get(url) as response:
            assert await response.text() == "431[2]"
    assert got == [1]
