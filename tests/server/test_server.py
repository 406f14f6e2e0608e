"""`Server`: broadcasting, socket operations across rooms, routes, request hooks, shutdown
and its tasks, and the python-socketio client (salas.server.server, broadcast, namespace)."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest
import socketio
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from salas import Server, Socket
from salas.adapter import MemoryAdapter
from salas.adapter.base import BroadcastOptions, MemberRegistry
from salas.engine.session import EngineSession
from salas.http import SECURITY_HEADERS, Request, RequestRefused, Response
from salas.protocol.outgoing import EncodedMessage
from salas.server.broadcast import BroadcastOperator


async def serve(make_server, start, client, n: int, **options):
    """A server with `n` raw clients; returns (io, sockets in connection order, clients)."""
    io = make_server(**options)
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    clients = [await client(port) for _ in range(n)]
    assert len(sockets) == n
    return io, sockets, clients


async def test_emit_to_everyone(make_server, start, client) -> None:
    """io.emit reaches every socket of the main namespace, and nobody elsewhere."""
    io, _sockets, clients = await serve(make_server, start, client, 3)
    io.of("/other")
    await io.emit("news", {"n": 1})
    for raw in clients:
        assert await raw.event() == ["news", {"n": 1}]


async def test_to_except(make_server, start, client) -> None:
    """io.to(a, b).except_(c) reaches sockets in a or b, not in c, each once."""
    io, (s0, s1, s2, _s3), (c0, c1, c2, c3) = await serve(make_server, start, client, 4)
    await s0.join(["a", "b"])
    await s1.join("b")
    await s2.join(["a", "c"])
    await io.to("a", "b").except_("c").emit("hi")
    assert await c0.event() == ["hi"]
    assert await c1.event() == ["hi"]
    await c0.nothing(0.05)  # once, though in both rooms
    await c2.nothing(0.05)
    await c3.nothing(0.05)
    await io.except_("a").emit("not a")
    assert await c1.event() == ["not a"]
    assert await c3.event() == ["not a"]
    await io.in_("c").emit("in c")
    assert await c2.event() == ["in c"]


async def test_broadcast_operator_is_immutable(make_server) -> None:
    """Each BroadcastOperator method returns a new selection; the original is unchanged."""
    io = make_server()
    base = io.to("a")
    narrowed = base.except_("b")
    wider = base.to("c")
    assert isinstance(narrowed, BroadcastOperator)
    assert base._opts.rooms == frozenset({"a"})
    assert base._opts.except_rooms == frozenset()
    assert narrowed._opts.except_rooms == frozenset({"b"})
    assert wider._opts.rooms == frozenset({"a", "c"})
    assert not base._opts.volatile
    assert base.volatile._opts.volatile


async def test_broadcast_encodes_once(make_server, start, client, monkeypatch) -> None:
    """A room broadcast hands every recipient session the same EncodedMessage object."""
    io, sockets, clients = await serve(make_server, start, client, 4)
    for socket in sockets[:3]:
        await socket.join("room")
    handed = []
    real = EngineSession.send_encoded

    def spy(self, message, volatile=False):
        handed.append((self.sid, message))
        return real(self, message, volatile)

    monkeypatch.setattr(EngineSession, "send_encoded", spy)
    await io.to("room").emit("once", "x" * 100)
    monkeypatch.undo()
    assert len(handed) == 3
    assert len({id(message) for _, message in handed}) == 1
    assert {sid for sid, _ in handed} == {s.session.sid for s in sockets[:3]}
    for raw in clients[:3]:
        assert await raw.event() == ["once", "x" * 100]
    await clients[3].nothing(0.05)


async def test_broadcast_binary(make_server, start, client) -> None:
    """A broadcast with bytes arrives as BINARY_EVENT plus attachment at each recipient."""
    io, _sockets, clients = await serve(make_server, start, client, 2)
    await io.emit("bin", b"\x01\x02")
    for raw in clients:
        assert await raw.recv() == '451-["bin",{"_placeholder":true,"num":0}]'
        assert await raw.recv() == b"\x01\x02"


async def test_volatile_broadcast(make_server, start, client) -> None:
    """io.volatile.emit reaches websocket clients that are not congested."""
    io, _sockets, clients = await serve(make_server, start, client, 2)
    await io.volatile.emit("tick")
    for raw in clients:
        assert await raw.event() == ["tick"]


async def test_volatile_dropped_for_idle_polling_client(make_server, start) -> None:
    """A volatile broadcast is dropped for a polling client with no GET waiting; a normal one
    is queued for it."""
    import aiohttp

    io = make_server()
    port = await start(io)
    base = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as response:
            sid = (await response.text()).split('"sid":"')[1].split('"')[0]
        url = f"{base}&sid={sid}"
        async with http.post(url, data="40") as response:
            assert response.status == 200
        async with http.get(url) as response:
            assert (await response.text()).startswith("40")
        await io.volatile.emit("dropped")
        await io.emit("kept")
        async with http.get(url) as response:
            assert await response.text() == '42["kept"]'


async def test_fetch_sockets(make_server, start, client) -> None:
    """fetch_sockets returns the Socket objects matching the selection."""
    io, (s0, s1, s2), _ = await serve(make_server, start, client, 3)
    await s0.join("a")
    await s2.join("a")
    found = await io.in_("a").fetch_sockets()
    assert {s.id for s in found} == {s0.id, s2.id}
    assert all(isinstance(s, Socket) for s in found)
    assert {s.id for s in await io.fetch_sockets()} == {s0.id, s1.id, s2.id}
    assert await io.in_("empty").fetch_sockets() == []


async def test_sockets_join_and_leave(make_server, start, client) -> None:
    """sockets_join / sockets_leave change the rooms of every matching socket."""
    io, (s0, s1, s2), (c0, c1, c2) = await serve(make_server, start, client, 3)
    await s0.join("a")
    await s1.join("a")
    await io.in_("a").sockets_join("b", ["c"])
    assert s0.rooms == {s0.id, "a", "b", "c"}
    assert s1.rooms == {s1.id, "a", "b", "c"}
    assert s2.rooms == {s2.id}
    await io.to("b").emit("to b")
    assert await c0.event() == ["to b"]
    assert await c1.event() == ["to b"]
    await c2.nothing(0.05)
    await io.sockets.sockets_leave("a")
    assert s0.rooms == {s0.id, "b", "c"}
    await io.in_(s1.id).sockets_leave("b")
    assert s1.rooms == {s1.id, "c"}


async def test_server_sockets_join_and_leave(make_server, start, client) -> None:
    """io.sockets_join / io.sockets_leave (Node's io.socketsJoin) move every main-namespace
    socket, and broadcasts then follow the new rooms."""
    io, (s0, s1), (c0, c1) = await serve(make_server, start, client, 2)
    await io.sockets_join("all", ["everyone"])
    assert s0.rooms == {s0.id, "all", "everyone"}
    assert s1.rooms == {s1.id, "all", "everyone"}
    await io.to("everyone").emit("hello all")
    assert await c0.event() == ["hello all"]
    assert await c1.event() == ["hello all"]
    await io.sockets_leave("all")
    assert s0.rooms == {s0.id, "everyone"}
    assert s1.rooms == {s1.id, "everyone"}
    await io.to("all").emit("nobody")
    await c0.nothing(0.05)


async def test_disconnect_sockets(make_server, start, client, until) -> None:
    """disconnect_sockets disconnects the matching sockets ("server namespace disconnect");
    with close=True their connections close too."""
    io, (s0, s1, s2), (c0, c1, c2) = await serve(make_server, start, client, 3)
    reasons: dict[str, str] = {}
    for s in (s0, s1, s2):
        s.on("disconnect", lambda reason, sid=s.id: reasons.__setitem__(sid, reason))
    await s0.join("a")
    await s1.join("a")
    await io.in_("a").disconnect_sockets()
    assert await c0.recv() == "41"
    assert await c1.recv() == "41"
    assert reasons == {s0.id: "server namespace disconnect", s1.id: "server namespace disconnect"}
    assert not c0.ws.close_code
    assert set(io.sockets.sockets) == {s2.id}
    await io.disconnect_sockets(close=True)
    assert await c2.recv() == "41"
    await c2.closed()
    assert reasons[s2.id] == "server namespace disconnect"
    assert io.sockets.sockets == {}


async def test_namespace_broadcast_isolation(make_server, start, client) -> None:
    """Rooms and broadcasts of one namespace don't leak into another."""
    io = make_server()
    admin: list[Socket] = []
    io.of("/admin").on("connection", admin.append)
    port = await start(io)
    main_client = await client(port)
    admin_client = await client(port, nsp="/admin")
    await admin[0].join("room")
    await io.to("room").emit("main room")
    await main_client.nothing(0.05)
    await admin_client.nothing(0.05)
    await io.of("/admin").to("room").emit("admin room")
    assert await admin_client.recv() == '42/admin,["admin room"]'


class StartedAdapter(MemoryAdapter):
    """A memory adapter that starts slowly and, like Redis, cannot broadcast before."""

    def __init__(self, nsp: MemberRegistry, log: list[tuple[str, str]], fail: bool) -> None:
        super().__init__(nsp)
        self.log = log
        self.fail = fail
        self.started = False

    async def init(self) -> None:
        await asyncio.sleep(0.02)
        if self.fail:
            raise ConnectionError("no cluster")
        self.started = True
        self.log.append(("init", self.nsp.name))

    async def close(self) -> None:
        self.started = False
        self.log.append(("close", self.nsp.name))

    async def broadcast(self, message: EncodedMessage, opts: BroadcastOptions) -> None:
        if not self.started:
            raise RuntimeError("adapter not started")
        await super().broadcast(message, opts)


async def test_namespace_made_after_start_starts_its_adapter(make_server, start, client) -> None:
    """io.of() after start runs its adapter's init, broadcasts wait for it, shutdown closes it."""
    log: list[tuple[str, str]] = []
    io = make_server(adapter=lambda nsp: StartedAdapter(nsp, log, fail=False))
    port = await start(io)
    assert log == [("init", "/")]
    late = io.of("/late")
    await late.emit("nobody yet")  # before its adapter has started: waits for it
    assert log == [("init", "/"), ("init", "/late")]
    late_client = await client(port, nsp="/late")
    await late.emit("hello")
    assert await late_client.recv() == '42/late,["hello"]'
    await io.shutdown()
    assert sorted(log[2:]) == [("close", "/"), ("close", "/late")]


async def test_namespace_made_after_start_reports_a_failed_start(
    make_server, start, caplog
) -> None:
    """If that init fails, it is logged and each broadcast raises its error."""
    io = make_server(adapter=lambda nsp: StartedAdapter(nsp, [], fail=nsp.name == "/late"))
    await start(io)
    late = io.of("/late")
    with pytest.raises(ConnectionError, match="no cluster"):
        await late.adapter_ready()
    with pytest.raises(ConnectionError, match="no cluster"):
        await late.to("room").emit("x")
    assert "the adapter of namespace /late failed to start" in caplog.text
    await io.emit("the main namespace is fine")


def test_namespace_on_only_connection(make_server) -> None:
    """A namespace only emits "connection" (alias "connect"); other names are refused."""
    io = make_server()
    io.on("connect", lambda s: None)
    with pytest.raises(ValueError):
        io.on("message", lambda s: None)


async def test_routes(make_server, start) -> None:
    """@io.route answers plain HTTP beside Socket.IO."""
    import aiohttp

    io = make_server()

    @io.route("/healthz")
    def health(request) -> Response:
        return Response.json({"ok": True})

    port = await start(io)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"ok": True}
        async with http.get(f"http://127.0.0.1:{port}/nothing") as response:
            assert response.status == 404


async def test_mount_static_sends_security_headers_by_default(make_server, start, tmp_path) -> None:
    """mount_static sends SECURITY_HEADERS unless given other headers (or none)."""
    import aiohttp

    (tmp_path / "index.html").write_text("<p>page</p>")
    io = make_server()
    io.mount_static(tmp_path, "/safe/")
    io.mount_static(tmp_path, "/own/", headers=[("Content-Security-Policy", "default-src *")])
    io.mount_static(tmp_path, "/bare/", headers=())
    port = await start(io)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/safe/") as response:
            assert [(n, response.headers.get(n)) for n, _ in SECURITY_HEADERS] == list(
                SECURITY_HEADERS
            )
        async with http.get(f"http://127.0.0.1:{port}/own/") as response:
            assert response.headers["Content-Security-Policy"] == "default-src *"
            assert "X-Frame-Options" not in response.headers
        async with http.get(f"http://127.0.0.1:{port}/bare/") as response:
            assert response.status == 200
            assert "Content-Security-Policy" not in response.headers


async def test_shutdown(make_server, start, client, until) -> None:
    """shutdown() disconnects every socket, stops listening and releases wait_closed()."""
    io, sockets, clients = await serve(make_server, start, client, 2)
    reasons = []
    for s in sockets:
        s.on("disconnect", reasons.append)
    port = io.port
    waiter = asyncio.create_task(io.wait_closed())
    await asyncio.sleep(0)
    assert not waiter.done()
    await io.shutdown()
    await asyncio.wait_for(waiter, 3)
    for raw in clients:
        await raw.closed()
    assert reasons == ["server shutting down", "server shutting down"]
    assert io.sockets.sockets == {}
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)


async def test_routes_by_method(make_server, start) -> None:
    """@io.route(path, methods=...) answers those methods (GET also HEAD), 405 otherwise."""
    import aiohttp

    io = make_server()

    @io.route("/items", methods=("POST",))
    async def create(request) -> Response:
        return Response.json({"made": request.body.decode()}, status=201)

    port = await start(io)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{port}/items", data=b"x") as response:
            assert response.status == 201
            assert await response.json() == {"made": "x"}
        async with http.get(f"http://127.0.0.1:{port}/items") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST"


async def _status_and_body(port: int, target: str) -> tuple[int, bytes]:
    """One raw GET; the status and the body (read to the close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _token_hook(seen: list[Request]):
    """A request hook admitting requests with `X-Token: good`; async, to show both kinds."""

    async def check(request: Request) -> bool:
        seen.append(request)
        await asyncio.sleep(0)
        token = request.headers.get("x-token")
        if token == "expired":
            raise RequestRefused("token expired")
        return token == "good"

    return check


async def test_allow_request_allows(make_server, start) -> None:
    """A hook returning True lets the handshake open a session (polling, and websocket
    directly); it saw the request."""
    seen: list[Request] = []
    io = make_server(allow_request=_token_hook(seen))
    port = await start(io)
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        f"http://127.0.0.1:{port}", headers={"X-Token": "good"}, transports=["polling"]
    )
    try:
        assert sio.connected
    finally:
        await sio.disconnect()
    assert seen and seen[0].path == "/socket.io/" and seen[0].query["transport"] == "polling"
    # A websocket opened directly waits for the (async) hook, then gets its open packet.
    async with connect(
        f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
        additional_headers={"X-Token": "good"},
        open_timeout=5,
    ) as ws:
        opened = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(opened, str) and opened.startswith('0{"sid":')
    assert seen[-1].upgrade


async def test_allow_request_refuses_polling(make_server, start) -> None:
    """A refused polling handshake answers 403 with the Engine.IO error body; no session."""
    seen: list[Request] = []
    io = make_server()
    io.allow_request(_token_hook(seen))
    port = await start(io)
    status, body = await _status_and_body(port, "/socket.io/?EIO=4&transport=polling")
    assert (status, orjson.loads(body)) == (403, {"code": 4, "message": "Forbidden"})
    assert io.engine.sessions == {} and len(seen) == 1


async def test_allow_request_refuses_websocket(make_server, start) -> None:
    """A direct websocket handshake goes through the hook too: 403 with the hook's message."""
    seen: list[Request] = []
    io = make_server(allow_request=_token_hook(seen))
    port = await start(io)
    with pytest.raises(InvalidStatus) as refused:
        await connect(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
            additional_headers={"X-Token": "expired"},
            open_timeout=5,
        )
    response = refused.value.response
    assert response.status_code == 403
    assert orjson.loads(response.body) == {"code": 4, "message": "token expired"}
    assert io.engine.sessions == {} and seen[0].upgrade


async def test_allow_request_honest_client_unaffected(make_server, start) -> None:
    """With a hook refusing others, a client with a good token connects (polling, then the
    upgrade, which the hook does not see again) and exchanges events."""
    seen: list[Request] = []
    io = make_server(allow_request=_token_hook(seen))

    @io.on("connection")
    def connection(socket: Socket) -> None:
        socket.on("echo", lambda value: value)

    port = await start(io)
    assert (await _status_and_body(port, "/socket.io/?EIO=4&transport=polling"))[0] == 403
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(f"http://127.0.0.1:{port}", headers={"X-Token": "good"})
    try:
        assert await sio.call("echo", "hi", timeout=5) == "hi"
        await asyncio.sleep(0.3)  # the upgrade to websocket has happened meanwhile
        assert sio.transport() == "websocket"
    finally:
        await sio.disconnect()
    assert len(seen) == 2  # the refused request and the honest handshake, nothing else


async def test_no_task_outlives_shutdown(make_server, start, client, until) -> None:
    """Handlers that sleep forever, one waiting for an ack, a stuck middleware, async route
    and request hook, and a task the application spawned: shutdown() ends every one."""
    before = asyncio.all_tasks()
    forever = asyncio.Event()
    started: list[str] = []
    io = make_server()

    @io.allow_request
    async def hook(request: Request) -> bool:
        if "stuck" in request.query:
            await forever.wait()
        return True

    @io.route("/stuck")
    async def stuck(request: Request) -> Response:
        await forever.wait()
        return Response()

    @io.of("/admin").use
    async def middleware(socket: Socket) -> None:
        await forever.wait()

    @io.on("connection")
    def connection(socket: Socket) -> None:
        @socket.on("sleep")
        async def sleep() -> None:
            started.append("sleep")
            await forever.wait()

        @socket.on("ask")
        async def ask() -> None:
            started.append("ask")
            await socket.emit_with_ack("question", timeout=3600)

    io.spawn(forever.wait(), name="the application's task")
    port = await start(io)
    raw = await client(port)
    await raw.send('2["sleep"]')
    await raw.send('2["ask"]')
    await raw.send("0/admin,")
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for (_, writer), target in zip(
        streams, ["/stuck", "/socket.io/?EIO=4&transport=polling&stuck"], strict=True
    ):
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await until(lambda: len(started) == 2 and len(io.tasks) == 6)
    await io.shutdown(timeout=0.05)
    assert len(io.tasks) == 0
    await raw.close()
    for _, writer in streams:
        writer.close()
    await asyncio.sleep(0.01)
    assert asyncio.all_tasks() - before == set()


async def test_shutdown_lets_handlers_finish_within_timeout(make_server, start, client) -> None:
    """A handler still working at shutdown finishes (not cancelled) if it can in time."""
    io = make_server()
    finished: list[str] = []

    @io.on("connection")
    def connection(socket: Socket) -> None:
        @socket.on("work")
        async def work() -> None:
            await asyncio.sleep(0.05)
            finished.append("work")

    port = await start(io)
    raw = await client(port)
    await raw.send('2["work"]')
    await asyncio.sleep(0.01)
    await io.shutdown(timeout=2)
    assert finished == ["work"]


async def test_shutdown_twice_waits_for_the_first(make_server, start) -> None:
    """A second shutdown() (say, a signal during shutdown) waits for the first, once."""
    io = make_server()
    await start(io)
    closed = []
    original = io.engine.close

    async def counting_close() -> None:
        closed.append(1)
        await original()

    io.engine.close = counting_close  # type: ignore[method-assign]
    await asyncio.gather(io.shutdown(), io.shutdown())
    assert closed == [1]


async def test_polling_cut_off_during_room_broadcast(make_server, start, client) -> None:
    """A polling member cut off mid-broadcast doesn't break the broadcast for the others."""
    import aiohttp

    io = make_server(max_buffer=2000, volatile_buffer=1000)
    sockets: list[Socket] = []
    io.on("connection", sockets.append)
    port = await start(io)
    base = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as response:
            sid = (await response.text()).split('"sid":"')[1].split('"')[0]
        async with http.post(f"{base}&sid={sid}", data="40") as response:
            assert response.status == 200
        # the polling client never GETs again: its queue only grows
        watchers = [await client(port) for _ in range(3)]
        for socket in sockets:
            await socket.join("room")
        for i in range(5):
            await io.to("room").emit("fill", i, "x" * 500)
            for raw in watchers:
                assert await raw.event() == ["fill", i, "x" * 500]
        assert len(io.sockets.sockets) == 3  # the polling one was cut off


async def test_async_handler_runs_in_a_task(make_server, start, client) -> None:
    """An async handler may use asyncio.timeout (it runs inside a task)."""
    _io, (socket,), (raw,) = await serve(make_server, start, client, 1)

    @socket.on("bounded")
    async def bounded():
        async with asyncio.timeout(1):
            await asyncio.sleep(0.01)
        return "in time"

    await raw.send('25["bounded"]')
    assert await raw.recv(timeout=0.5) == '435["in time"]'


# -- with the python-socketio client ------------------------------------------------------


@pytest.fixture
async def sio_client():
    clients: list[socketio.AsyncClient] = []

    def make() -> socketio.AsyncClient:
        c = socketio.AsyncClient(reconnection=False)
        clients.append(c)
        return c

    yield make
    for c in clients:
        if c.connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.disconnect(), 2)


async def connected_sio(make_server, start, sio_client, transport: str):
    """A server with a handler for "add", and a python-socketio client connected to it."""
    io: Server = make_server()
    ready = asyncio.Event()
    sockets: list[Socket] = []

    @io.on("connection")
    async def on_connection(socket: Socket) -> None:
        sockets.append(socket)

        @socket.on("add")
        def add(a, b):
            return a + b

        ready.set()

    port = await start(io)
    sio = sio_client()
    await sio.connect(f"http://127.0.0.1:{port}", transports=[transport], wait_timeout=5)
    await asyncio.wait_for(ready.wait(), 5)
    return io, sockets[0], sio


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_python_socketio_client(make_server, start, sio_client, transport: str) -> None:
    """The python-socketio AsyncClient connects, gets acks, answers emit_with_ack, receives
    broadcasts, and sees the server shut down."""
    io, socket, sio = await connected_sio(make_server, start, sio_client, transport)
    assert sio.transport() == transport
    received: asyncio.Queue = asyncio.Queue()
    sio.on("news", received.put_nowait)
    sio.on("question", lambda text: (text.upper(), 42))
    assert await sio.call("add", (2, 3), timeout=5) == 5
    assert await socket.emit_with_ack("question", "hi", timeout=5) == ("HI", 42)
    await io.emit("news", {"n": 1})
    assert await asyncio.wait_for(received.get(), 5) == {"n": 1}
    reasons = []
    socket.on("disconnect", reasons.append)
    gone = asyncio.Event()
    sio.on("disconnect", lambda *args: gone.set())
    await io.shutdown()
    await asyncio.wait_for(gone.wait(), 5)
    assert reasons == ["server shutting down"]


async def test_python_socketio_client_disconnect(make_server, start, sio_client, until) -> None:
    """A python-socketio client's disconnect() promptly disconnects its socket on the server.

    (That client queues its DISCONNECT packet and closes the websocket without waiting for
    the queue, so the reason is "client namespace disconnect" or "transport close".)
    """
    io, socket, sio = await connected_sio(make_server, start, sio_client, "websocket")
    reasons = []
    socket.on("disconnect", reasons.append)
    await asyncio.wait_for(sio.disconnect(), 3)
    await until(lambda: reasons)
    assert reasons in (["client namespace disconnect"], ["transport close"])
    assert io.sockets.sockets == {}


async def test_python_socketio_polling_disconnect_is_prompt(make_server, start, sio_client) -> None:
    """A python-socketio client on long-polling disconnects within a couple of seconds."""
    _io, _socket, sio = await connected_sio(make_server, start, sio_client, "polling")
    await asyncio.sleep(0.1)  # its next GET is pending
    await asyncio.wait_for(sio.disconnect(), 2)
