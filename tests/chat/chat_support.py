"""Support code of the chat's tests: the chat app on a free port, recording clients, stores
that misbehave on purpose, and the Node scenario runner.

A plain module with a distinct name (not a conftest.py) so it cannot clash with other
folders' helpers; test modules import what they use.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import socketio

from salas.chat import ChatApp, ChatConfig, create_app
from salas.store import MessageStore, StoredMessage, StoreError, open_store

ROOT = Path(__file__).resolve().parents[2]
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
    config: ChatConfig = FAST, store: MessageStore | None = None
) -> AsyncIterator[RunningChat]:
    """The chat app on a free loopback port with an open store (memory:// by default)."""
    store = store if store is not None else open_store("memory://")
    await store.open()
    app = create_app(config, store)
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
        self, channel: str, message: str, user: str, client_id: str | None = None
    ) -> StoredMessage:
        if self.fail:
            raise StoreError("disk on fire (test)")
        delay = self.delays.pop(0) if self.delays else 0.0
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        stored = await self.inner.append(channel, message, user, client_id)
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
    node = shutil.which("node")
    if node is None:
        pytest.fail("the Node client scenarios need `node` on PATH")
    if not (ROOT / "node_modules" / "socket.io-client").is_dir():
        pytest.fail("socket.io-client is not installed: run scripts/setup.sh --test")
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / script),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{script} did not finish within {timeout}s")
    lines = [line for line in out.decode().splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"{script} {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{out.decode()}\nstderr:\n{err.decode()}"
        )
    return json.loads(lines[-1])
