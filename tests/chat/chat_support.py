"""Support code of the chat's tests: the chat app on a free port, recording clients, stores
that misbehave on purpose, and the Node scenario runner.

A plain module with a distinct name (not a conftest.py) so it cannot clash with other
folders' helpers; test modules import what they use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio
import websockets

from salas.chat import ChatApp, ChatConfig, create_app
from salas.recovery import RecoveryStore
from salas.store import MessageStore, StoredMessage, StoreError, open_store
from tests.support.node import run_node

JS_DIR = Path(__file__).resolve().parent / "js"
TIMEOUT = 5.0

# Short timings so tests do not sleep through production values.
FAST = ChatConfig(rooms_interval=0.05, typing_timeout=0.3, typing_throttle=0.2)


@dataclass
class RunningChat:
    app: ChatApp
    store: MessageStore
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def running_chat(
    config: ChatConfig = FAST,
    store: MessageStore | None = None,
    recovery: RecoveryStore | None = None,
) -> AsyncIterator[RunningChat]:
    """The chat app on a free loopback port with an open store (memory:// by default);
    with a `recovery` store, connection state recovery is on."""
    store = store if store is not None else open_store("memory://")
    await store.open()
    app = create_app(config, store, recovery)
    port = await app.start("127.0.0.1", 0)
    try:
        yield RunningChat(app, store, port)
    finally:
        await app.shutdown()
        await store.close()


class ChatClient:
    """A python-socketio AsyncClient that records every event it receives, in order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()

        @self.sio.on("*")
        async def record(event: str, *args: Any) -> None:
            self.events.append((event, args[0] if len(args) == 1 else list(args)))
            self._changed.set()

    async def connect(
        self, url: str, name: Any = None, transport: str = "websocket", auth: Any = None
    ) -> ChatClient:
        if auth is None and name is not None:
            auth = {"name": name}
        await self.sio.connect(url, auth=auth, transports=[transport], wait_timeout=TIMEOUT)
        await self.next("welcome")
        return self

    async def call(self, event: str, *args: Any) -> Any:
        """Emit `args` (none, one or several, None sends a null) with an ack; its value."""
        # A tuple is sent as that many arguments (an empty one as none).
        return await self.sio.call(event, tuple(args), timeout=TIMEOUT)

    async def send(self, event: str, *args: Any) -> None:
        """Emit `args` without an ack."""
        await self.sio.emit(event, tuple(args))

    def of(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    def mark(self) -> int:
        return len(self.events)

    def since(self, mark: int) -> list[tuple[str, Any]]:
        return self.events[mark:]

    async def next(
        self,
        event: str,
        where: Callable[[Any], bool] = lambda data: True,
        after: int = 0,
        timeout: float = TIMEOUT,
    ) -> Any:
        """The first `event` recorded at index >= `after` that matches `where` (waiting)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for name, data in self.events[after:]:
                if name == event and where(data):
                    return data
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {event!r} event; got {self.events[after:]!r}")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


@asynccontextmanager
async def clients(
    url: str, *names: str | None, transport: str = "websocket"
) -> AsyncIterator[list[ChatClient]]:
    """Connected clients with these names (None: no name), disconnected afterwards."""
    made: list[ChatClient] = []
    try:
        for name in names:
            made.append(await ChatClient().connect(url, name, transport))
        yield made
    finally:
        for client in made:
            await client.close()


async def sentinel(sender: ChatClient, room: str, *observers: ChatClient) -> None:
    """Send a message to `room` and wait until every observer has it: after this, anything an
    observer got before the sentinel is in its `events`, in order."""
    text = f"sentinel-{id(sender)}-{len(sender.events)}"
    reply = await sender.call("message", {"channel": room, "message": text})
    assert reply["ok"] is True, reply
    for observer in observers:
        await observer.next("message", lambda m: m.get("message") == text)


def only_sentinels(events: list[tuple[str, Any]]) -> bool:
    return all(
        name == "message" and str(data.get("message", "")).startswith("sentinel-")
        for name, data in events
    )


class RawClient:
    """A Socket.IO client on a raw websocket that can present `{pid, offset}` when it
    connects, as the official client does to recover its session (python-socketio cannot).

    Records every event as (event, first argument, offset or None) and the offset of the
    latest broadcast it received, which it hands back on `reconnect`."""

    def __init__(self, ws: websockets.ClientConnection, port: int) -> None:
        self.ws = ws
        self.port = port
        self.sid = ""
        self.pid: str | None = None
        self.offset: str | None = None
        self.events: list[tuple[str, Any, str | None]] = []
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._next_ack = 0
        self._changed = asyncio.Event()
        self._connected: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(
        cls, port: int, auth: dict[str, Any] | None = None, *, welcome: bool = True
    ) -> RawClient:
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
        ws = await websockets.connect(url)
        opening = await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert str(opening).startswith("0{"), opening
        client = cls(ws, port)
        await ws.send("40" + (json.dumps(auth) if auth else ""))
        reply = await asyncio.wait_for(client._connected, TIMEOUT)
        client.sid, client.pid = reply["sid"], reply.get("pid")
        if welcome:
            await client.next("welcome")
        return client

    async def reconnect(self, auth: dict[str, Any] | None = None) -> RawClient:
        """A new connection presenting this one's pid and last offset."""
        recovery: dict[str, Any] = {"pid": self.pid}
        if self.offset is not None:
            recovery["offset"] = self.offset
        return await RawClient.connect(self.port, {**(auth or {}), **recovery})

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                assert isinstance(message, str), "binary packets are not expected here"
                if message == "2":
                    await self.ws.send("3")
                elif message.startswith("40"):
                    self._connected.set_result(json.loads(message[2:]))
                elif message.startswith("42"):
                    name, *args = json.loads(message[2:])
                    offset = None
                    if len(args) == 2 and isinstance(args[-1], str):
                        offset = self.offset = args.pop()
                    self.events.append((name, args[0] if args else None, offset))
                    self._changed.set()
                elif message.startswith("43"):
                    head, _, body = message[2:].partition("[")
                    future = self._acks.pop(int(head), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads("[" + body))
        except websockets.ConnectionClosed:
            pass
        finally:
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("disconnected before the ack"))
            self._acks.clear()

    async def call(self, event: str, *args: Any) -> Any:
        ack_id = self._next_ack
        self._next_ack += 1
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        await self.ws.send(f"42{ack_id}" + json.dumps([event, *args]))
        answer = await asyncio.wait_for(future, TIMEOUT)
        return answer[0] if answer else None

    def of(self, event: str) -> list[Any]:
        return [data for name, data, _ in self.events if name == event]

    async def next(
        self, event: str, where: Callable[[Any], bool] = lambda data: True, after: int = 0
    ) -> Any:
        """The first `event` recorded at index >= `after` that matches `where` (waiting)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            for name, data, _ in self.events[after:]:
                if name == event and where(data):
                    return data
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {event!r} event; got {self.events[after:]!r}")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def drop(self) -> None:
        """Cut the transport (no DISCONNECT packet): the server may keep the session."""
        await self.ws.close()
        await self._reader

    async def close(self) -> None:
        if self.ws.state is websockets.State.OPEN:
            await self.ws.send("41")
        await self.drop()


# ------------------------------------------------------------------------ misbehaving stores
class GatedStore:
    """A memory store whose appends wait for `gate` (to see what happens before storage),
    and which can be made to fail (`fail = True`) or report itself unhealthy."""

    def __init__(self) -> None:
        self.inner = open_store("memory://")
        self.url = "gated+memory://"
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False
        self.fail_history = False
        self.healthy = True
        self.waiting = 0
        # Per append, in call order: seconds to hold it back after it is stored.
        self.delays: list[float] = []

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def append(
        self,
        channel: str,
        message: str,
        user: str,
        client_id: str | None = None,
        *,
        user_id: str | None = None,
    ) -> StoredMessage:
        if self.fail:
            raise StoreError("disk on fire (test)")
        delay = self.delays.pop(0) if self.delays else 0.0
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        stored = await self.inner.append(channel, message, user, client_id, user_id=user_id)
        if delay:
            await asyncio.sleep(delay)
        return stored

    async def history(
        self,
        channel: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[StoredMessage]:
        if self.fail_history:
            raise StoreError("cannot read (test)")
        return await self.inner.history(channel, before=before, after=after, limit=limit)

    async def health(self) -> dict[str, object]:
        if not self.healthy:
            return {"backend": "gated", "ok": False, "error": "unhealthy (test)"}
        return {"backend": "gated", "ok": True}


# ------------------------------------------------------------------------------ Node client
async def run_js(script: str, *args: str, timeout: float = 30.0) -> Any:
    """Run ``tests/chat/js/<script>`` with node; the JSON object it prints last."""
    return await run_node(JS_DIR / script, *args, timeout=timeout)
