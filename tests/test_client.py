"""salas.client and python-socketio against salas: plain handlers under recovery, and a
Python client that recovers its session after its connection is cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from salas import Server
from salas.client import AsyncClient
from tests.support.processes import SalasServe, salas_serve
from tests.support.relay import Relay

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SalasServe]:
    """`salas serve` with its default flags (connection state recovery on)."""
    tmp: Path = tmp_path_factory.mktemp("serve")
    process = salas_serve(tmp, "--message-rate", "0")
    process.start()
    yield process
    process.stop()


class Inbox:
    """Events as one-argument handlers receive them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.arrived = asyncio.Event()

    def handler(self, event: str) -> Any:
        async def on_event(data: Any) -> None:  # exactly one argument, as users write it
            self.events.append((event, data))
            self.arrived.set()

        return on_event

    def of(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    async def until(self, event: str, count: int, timeout: float = 5.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.of(event)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.of(event)


def listen(sio: socketio.AsyncClient, *events: str) -> Inbox:
    inbox = Inbox()
    for event in events:
        sio.on(event, inbox.handler(event))
    return inbox


CHAT_EVENTS = ("welcome", "message", "presence", "rooms")


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_plain_one_argument_handlers_get_every_event(
    serve: SalasServe, transport: str
) -> None:
    """python-socketio's own AsyncClient with one-argument handlers gets every broadcast
    from `salas serve` with its default flags: no offset argument reaches it."""
    ana = socketio.AsyncClient(reconnection=False)
    bob = socketio.AsyncClient(reconnection=False)
    inbox = listen(ana, *CHAT_EVENTS)
    room = f"plain-{transport}"
    try:
        await ana.connect(serve.url, auth={"name": "ana"}, transports=[transport], wait_timeout=5)
        await bob.connect(serve.url, auth={"name": "bob"}, transports=[transport], wait_timeout=5)
        await ana.call("channel_join", room, timeout=5)
        await bob.call("channel_join", room, timeout=5)
        sent = [
            (await bob.call("message", {"channel": room, "message": f"m{i}"}))["id"]
            for i in range(5)
        ]
        got = await inbox.until("message", 5)
        presence = await inbox.until("presence", 2)
    finally:
        await ana.disconnect()
        await bob.disconnect()
    assert [m["id"] for m in got] == sent
    assert [p["event"] for p in presence[:2]] == ["joined", "joined"]
    assert inbox.of("welcome")[0]["name"] == "ana"
    assert inbox.of("rooms")  # a broadcast to everyone


async def test_python_client_recovers_what_it_missed(serve: SalasServe, tmp_path: Path) -> None:
    """A salas.client.AsyncClient whose TCP connection is cut reconnects with its session and
    gets every message posted meanwhile, exactly once and in order, one argument each."""
    relay = await Relay(serve.port).start()
    ana = AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
    bob = socketio.AsyncClient(reconnection=False)
    inbox = listen(ana, "message", "welcome")
    reconnected = asyncio.Event()
    ana.on("connect", reconnected.set)
    try:
        await ana.connect(relay.url, auth={"name": "ana"}, transports=["websocket"], wait_timeout=5)
        await bob.connect(serve.url, auth={"name": "bob"}, transports=["websocket"], wait_timeout=5)
        await ana.call("channel_join", "lossless", timeout=5)
        await bob.call("channel_join", "lossless", timeout=5)
        before = [(await bob.call("message", {"channel": "lossless", "message": "b"}))["id"]]
        await inbox.until("message", 1)
        assert ana.recovered is False
        relay.open = False  # the reconnect waits until the missed messages are stored
        reconnected.clear()
        assert relay.cut_all() >= 1
        missed = [
            (await bob.call("message", {"channel": "lossless", "message": f"m{i}"}))["id"]
            for i in range(20)
        ]
        relay.open = True
        await asyncio.wait_for(reconnected.wait(), 10)
        after = [(await bob.call("message", {"channel": "lossless", "message": "a"}))["id"]]
        got = await inbox.until("message", 22)
        await asyncio.sleep(0.3)  # nothing more (no duplicate) arrives
        recovered = ana.recovered
        welcome = inbox.of("welcome")
    finally:
        await ana.disconnect()
        await bob.disconnect()
        await relay.close()
    assert recovered is True
    assert welcome[-1]["recovered"] is True
    assert [m["id"] for m in inbox.of("message")] == before + missed + after
    assert [m["id"] for m in got] == before + missed + after


@pytest.fixture
async def server_port() -> AsyncIterator[int]:
    """An in-process server with recovery: direct, volatile and logged emits on demand."""
    io = Server(connection_state_recovery=True, serve_client=False)

    @io.on("connection")
    def connection(socket: Any) -> None:
        @socket.on("join")
        async def join(room: str) -> str:
            await socket.join(room)
            return "ok"

        @socket.on("emit_all")
        async def emit_all(room: str) -> str:
            await socket.emit("direct", "42")
            await io.to(room).volatile.emit("volatile", "7")
            await io.to(room).emit("logged", "x")
            return "ok"

    port = await io.start("127.0.0.1", 0)
    yield port
    await io.shutdown()


async def _raw(sio: socketio.AsyncClient, inbox: list[tuple[Any, ...]], *events: str) -> None:
    for event in events:

        def record(*args: Any, event: str = event) -> None:
            inbox.append((event, *args))

        sio.on(event, record)


async def test_each_offset_mode_gets_its_own_form(server_port: int) -> None:
    """Sockets in the three offset modes share one room: each gets its form of the same
    broadcasts (none / Node's trailing offset / tagged), and salas.client hands its handlers
    the event's own arguments, a last string argument of a direct emit included."""
    url = f"http://127.0.0.1:{server_port}"
    plain, trailing, tagged = (
        socketio.AsyncClient(reconnection=False),
        socketio.AsyncClient(reconnection=False),
        socketio.AsyncClient(reconnection=False),
    )
    salas_client = AsyncClient(reconnection=False)
    seen: dict[str, list[tuple[Any, ...]]] = {
        "plain": [],
        "trailing": [],
        "tagged": [],
        "salas": [],
    }
    events = ("direct", "volatile", "logged")
    for name, sio in (
        ("plain", plain),
        ("trailing", trailing),
        ("tagged", tagged),
        ("salas", salas_client),
    ):
        await _raw(sio, seen[name], *events)
    clients = [plain, trailing, tagged, salas_client]
    try:
        await plain.connect(url, transports=["websocket"], wait_timeout=5)
        await trailing.connect(
            url, auth={"offsets": "trailing"}, transports=["websocket"], wait_timeout=5
        )
        await tagged.connect(
            url, auth={"offsets": "tagged"}, transports=["websocket"], wait_timeout=5
        )
        await salas_client.connect(url, transports=["websocket"], wait_timeout=5)
        for sio in clients:
            await sio.call("join", "r", timeout=5)
        for sio in clients:
            await sio.call("emit_all", "r", timeout=5)
        async with asyncio.timeout(5):
            while any(len(got) < 1 + 2 * 4 for got in seen.values()):
                await asyncio.sleep(0.02)
    finally:
        for sio in clients:
            await sio.disconnect()

    def shapes(name: str) -> list[tuple[Any, ...]]:
        # offsets vary: keep only whether each argument is an offset (digits) or not
        return sorted(
            {
                tuple("N" if a.isdigit() and a not in ("42", "7") else a for a in got)
                for got in seen[name]
            }
        )

    assert shapes("plain") == [("direct", "42"), ("logged", "x"), ("volatile", "7")]
    assert shapes("trailing") == [("direct", "42"), ("logged", "x", "N"), ("volatile", "7")]
    assert shapes("tagged") == [("direct", "42", ""), ("logged", "x", "N"), ("volatile", "7", "")]
    assert shapes("salas") == shapes("plain")
    assert salas_client.offsets["/"].isdigit()
