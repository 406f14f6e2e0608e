"""The python-socketio ``AsyncClient`` against the test application, over each transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from tests.integration.itest_support import AppProcess

TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"]}
# python-engineio's polling client can lose its CLOSE packet when disconnect() runs while its
# write loop is still busy with the previous POST (the loop exits on the state change): its
# pending GET is then only released by the server's next ping (a refused connect() hits it
# often). This module uses a short ping interval so that client-side race costs ~1 s, not 25 s.
CLIENT_RACE_PING = {"PING_INTERVAL_MS": 1000, "PING_TIMEOUT_MS": 2000}

pytestmark = [pytest.mark.timeout(60), pytest.mark.app_env(**CLIENT_RACE_PING)]
CONNECT_LIMIT = 10.0  # a refused connect still ends well within this
DISCONNECT_LIMIT = 5.0


@pytest.fixture(params=["websocket", "polling"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Clients:
    """Opens AsyncClients and disconnects them all at the end of the test."""

    def __init__(self) -> None:
        self.opened: list[socketio.AsyncClient] = []

    async def connect(
        self,
        app: AppProcess,
        transports: list[str],
        namespaces: list[str] | None = None,
        auth: Any = None,
        client: socketio.AsyncClient | None = None,
    ) -> socketio.AsyncClient:
        sio = client or socketio.AsyncClient(reconnection=False)
        self.opened.append(sio)
        connecting = sio.connect(
            app.url,
            transports=transports,
            namespaces=namespaces or ["/"],
            auth=auth,
            wait_timeout=5,
        )
        try:
            await asyncio.wait_for(connecting, CONNECT_LIMIT)
        except TimeoutError:
            pytest.fail(f"AsyncClient.connect() over {transports} took over {CONNECT_LIMIT} s")
        return sio

    async def close(self) -> None:
        slow = []
        for sio in self.opened:
            if sio.connected:
                try:
                    await asyncio.wait_for(sio.disconnect(), DISCONNECT_LIMIT)
                except TimeoutError:
                    slow.append(sio.transport())
        await asyncio.sleep(0)
        if slow:
            pytest.fail(
                f"AsyncClient.disconnect() over {slow} took over {DISCONNECT_LIMIT} s "
                "(the server did not end the session promptly)"
            )


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    c = Clients()
    yield c
    await c.close()


async def test_connect_and_echo(app: AppProcess, clients: Clients, transport: str) -> None:
    """The client connects on the asked transport and gets acks with one and several arguments."""
    sio = await clients.connect(app, TRANSPORTS[transport], auth={"user": "py"})
    assert sio.transport() == transport
    assert sio.get_sid("/")
    assert await sio.call("echo", {"a": [1, 2, None]}, timeout=5) == {"a": [1, 2, None]}
    assert await sio.call("echo", ("x", 2, True), timeout=5) == ("x", 2, True)
    info = await sio.call("handshake_info", timeout=5)
    assert info["auth"] == {"user": "py"}
    assert info["id"] == sio.get_sid("/")
    assert info["transport"] == transport


async def test_polling_client_upgrades(app: AppProcess, clients: Clients) -> None:
    """With both transports allowed the client upgrades to websocket and keeps working."""
    sio = await clients.connect(app, ["polling", "websocket"])
    for _ in range(50):
        if sio.transport() == "websocket":
            break
        await asyncio.sleep(0.05)
    assert sio.transport() == "websocket"
    assert await sio.call("echo", "after upgrade", timeout=5) == "after upgrade"


async def test_server_events(app: AppProcess, clients: Clients, transport: str) -> None:
    """An event the server emits reaches the client's handler with its arguments."""
    sio = socketio.AsyncClient(reconnection=False)
    received: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    @sio.on("echo")
    async def on_echo(*args: Any) -> None:
        await received.put(args)

    await clients.connect(app, TRANSPORTS[transport], client=sio)
    await sio.emit("echo_event", ("one", {"two": 2}))
    await sio.emit("echo_event")
    assert await asyncio.wait_for(received.get(), 5) == ("one", {"two": 2})
    assert await asyncio.wait_for(received.get(), 5) == ()


async def test_binary(app: AppProcess, clients: Clients, transport: str) -> None:
    """bytes nested in the arguments are acked back equal, and server emits deliver bytes."""
    sio = socketio.AsyncClient(reconnection=False)
    received: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    @sio.on("echo")
    async def on_echo(*args: Any) -> None:
        if not received.done():
            received.set_result(args)

    await clients.connect(app, TRANSPORTS[transport], client=sio)
    blob = bytes(range(256))
    sent = (b"\x01\x02", {"nested": {"blob": blob, "list": [1, b"", "s"]}}, "text")
    assert await sio.call("binary", sent, timeout=5) == sent
    await sio.emit("echo_event", ({"data": b"\x09\x08"}, b"end"))
    assert await asyncio.wait_for(received, 5) == ({"data": b"\x09\x08"}, b"end")


async def test_server_ack_to_python_client(
    app: AppProcess, clients: Clients, transport: str
) -> None:
    """The server's emit-with-ack gets the Python client's handler return value."""
    sio = socketio.AsyncClient(reconnection=False)

    @sio.on("ping_me")
    async def ping_me(arg: Any) -> Any:
        return {"pong": arg}

    await clients.connect(app, TRANSPORTS[transport], client=sio)
    assert await sio.call("server_ack", 2000, timeout=5) == {
        "ok": True,
        "reply": {"pong": {"n": 42}},
    }


async def test_namespaces(app: AppProcess, clients: Clients, transport: str) -> None:
    """One client joins "/" and "/admin" on one connection; each namespace has its own id."""
    sio = await clients.connect(
        app, TRANSPORTS[transport], namespaces=["/", "/admin"], auth={"token": "secret"}
    )
    admin_sid = sio.get_sid("/admin")
    assert admin_sid and admin_sid != sio.get_sid("/")
    assert await sio.call("whoami", namespace="/admin", timeout=5) == {
        "nsp": "/admin",
        "id": admin_sid,
    }
    assert await sio.call("echo", "root", timeout=5) == "root"


async def test_namespace_refused(app: AppProcess, clients: Clients, transport: str) -> None:
    """The /admin middleware refusal reaches connect_error with its message and data."""
    sio = socketio.AsyncClient(reconnection=False)
    errors: asyncio.Queue[Any] = asyncio.Queue()

    @sio.on("connect_error", namespace="/admin")
    async def on_error(data: Any) -> None:
        await errors.put(data)

    with pytest.raises(socketio.exceptions.ConnectionError):
        await clients.connect(
            app, TRANSPORTS[transport], namespaces=["/admin"], auth={"token": "nope"}, client=sio
        )
    assert await asyncio.wait_for(errors.get(), 5) == {
        "message": "unauthorized",
        "data": {"reason": "bad token"},
    }


async def test_unknown_namespace(app: AppProcess, clients: Clients, transport: str) -> None:
    """Connecting to a namespace the server does not have fails with "Invalid namespace"."""
    sio = socketio.AsyncClient(reconnection=False)
    errors: asyncio.Queue[Any] = asyncio.Queue()

    @sio.on("connect_error", namespace="/nope")
    async def on_error(data: Any) -> None:
        await errors.put(data)

    with pytest.raises(socketio.exceptions.ConnectionError):
        await clients.connect(app, TRANSPORTS[transport], namespaces=["/nope"], client=sio)
    assert await asyncio.wait_for(errors.get(), 5) == {"message": "Invalid namespace"}


async def test_rooms_between_python_clients(
    app: AppProcess, clients: Clients, transport: str
) -> None:
    """A room broadcast from one Python client reaches the other member and not the outsider."""
    got: dict[str, asyncio.Queue[Any]] = {}
    socks: dict[str, socketio.AsyncClient] = {}
    for name in ("a", "b", "c"):
        sio = socketio.AsyncClient(reconnection=False)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        got[name] = queue
        sio.on("news", queue.put)
        socks[name] = await clients.connect(app, TRANSPORTS[transport], client=sio)
    room = f"py-{transport}-{id(socks)}"
    await socks["a"].call("join", room, timeout=5)
    await socks["b"].call("join", room, timeout=5)
    await socks["a"].call(
        "to_room_except_me", {"room": room, "event": "news", "data": 1}, timeout=5
    )
    await socks["c"].call("to_room", {"room": room, "event": "news", "data": 2}, timeout=5)
    assert await asyncio.wait_for(got["b"].get(), 5) == 1
    assert await asyncio.wait_for(got["b"].get(), 5) == 2
    assert await asyncio.wait_for(got["a"].get(), 5) == 2
    await asyncio.sleep(0.2)
    assert got["a"].empty() and got["c"].empty()
