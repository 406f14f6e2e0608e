"""Support code of the abuse suite: a live `salas serve`, an honest member of a room whose
round trips are timed while an attack runs, and raw HTTP / Engine.IO / websocket clients that
send what no official client would.

(A plain module with a distinct name, so test files can import it whatever other conftest.py
files exist.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio
import websockets

from tests.support.processes import SalasServe, salas_serve

__all__ = [
    "FAST_TIMEOUTS",
    "HONEST_HOST",
    "LATENCY_BOUND",
    "ROOM",
    "Honest",
    "Polling",
    "assert_clean_log",
    "closed_within",
    "healthz",
    "honest_chatting",
    "http_request",
    "http_session",
    "open_raw",
    "serving",
    "ws_call",
    "ws_closed_within",
    "ws_connect",
]

ROOM = "sala"
# The honest client connects from another loopback address than the attacker (127.0.0.1),
# so per-address limits tell them apart as they would two hosts.
HONEST_HOST = "127.0.0.2"
# Short HTTP timeouts, so a slowloris test runs in seconds (the defaults are 10/10/5 s).
FAST_TIMEOUTS = ("--timeout-head", "1", "--timeout-body", "1", "--timeout-keep-alive", "1")
# The longest round trip (message sent -> its broadcast back) an honest member may see while
# an attack runs. Undefended, one 22,000-packet POST stalls the loop for about a second; a
# loaded 2-core CI machine adds tens of milliseconds, not hundreds.
LATENCY_BOUND = 0.5
# What a server's output must never contain, whatever it was sent.
_CRASH_MARKERS = ("Traceback", "Fatal error", "RecursionError", "Task exception was never")


@asynccontextmanager
async def serving(tmp_path: Path, *flags: str) -> AsyncIterator[SalasServe]:
    """`salas serve` with `flags` on SQLite under `tmp_path`, stopped (by its PID) after; it
    must still be running when the test is done with it, and must stop cleanly."""
    server = salas_serve(tmp_path, *flags)
    await server.astart()
    try:
        yield server
        assert server.proc is not None and server.proc.poll() is None, (
            f"the server died:\n{server.log_tail()}"
        )
    finally:
        code = await server.astop()
    assert code == 0, f"the server exited with {code}:\n{server.log_tail()}"


def assert_clean_log(server: SalasServe) -> None:
    """No traceback, no asyncio 'Fatal error', nothing uncaught in the server's output."""
    log = server.log
    found = [m for m in _CRASH_MARKERS if m in log]
    assert not found, f"{found} in the server's output:\n{server.log_tail(60)}"


def http_session() -> aiohttp.ClientSession:
    """An aiohttp session that opens a new connection per request: with 1 s keep-alive
    timeouts a pooled one may be closed by the server just as it is reused."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def healthz(port: int, host: str = HONEST_HOST) -> int:
    """The status of a fresh `GET /healthz` from `host` (the server is still serving)."""
    status, _, _ = await http_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", host)
    return status


# ------------------------------------------------------------------------------ honest member
@dataclass
class Honest:
    """An honest member of `ROOM` on the official python-socketio client (websocket only),
    connected from `HONEST_HOST`. `chatter` sends a numbered message every `period` and times
    each until its broadcast comes back; every one must come back."""

    port: int
    name: str = "honest"
    host: str = HONEST_HOST
    latencies: list[float] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    # Every `typing` event seen: (user, typing).
    typing: list[tuple[str, bool]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    disconnected: bool = False

    def __post_init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._sent = 0
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.sio = socketio.AsyncClient(reconnection=False)  # replaced by `start`

    async def start(self) -> Honest:
        """Connect and join `ROOM`."""
        connector = aiohttp.TCPConnector(local_addr=(self.host, 0), force_close=True)
        self._http = aiohttp.ClientSession(connector=connector)
        # Its websocket goes through this session too, so it leaves from `host`.
        self.sio = socketio.AsyncClient(reconnection=False, http_session=self._http)
        self.sio.on("message", self._on_message)
        self.sio.on("typing", self._on_typing)
        self.sio.on("disconnect", self._on_disconnect)
        await self.sio.connect(
            f"http://127.0.0.1:{self.port}",
            transports=["websocket"],
            auth={"name": self.name},
            wait_timeout=10,
        )
        ack = await self.sio.call("channel_join", ROOM, timeout=10)
        assert ack["ok"], ack
        return self

    async def stop(self) -> None:
        await self.stop_chatter()
        with contextlib.suppress(Exception):
            await self.sio.disconnect()
        if self._http is not None:
            await self._http.close()

    def _on_message(self, data: dict[str, Any], *_: Any) -> None:
        text = str(data.get("message"))
        self.messages.append(text)
        waiter = self._waiting.pop(text, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(time.monotonic())

    def _on_typing(self, data: dict[str, Any], *_: Any) -> None:
        self.typing.append((str(data.get("user")), bool(data.get("typing"))))

    def _on_disconnect(self, *_: Any) -> None:
        self.disconnected = True

    async def round_trip(self, timeout: float = 5.0) -> float:
        """Send one message to `ROOM`; seconds until its broadcast came back (recorded), or
        recorded as lost after `timeout`."""
        self._sent += 1
        text = f"{self.name}-{self._sent}"
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[text] = waiter
        started = time.monotonic()
        await self.sio.emit("message", {"channel": ROOM, "message": text})
        try:
            arrived = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self._waiting.pop(text, None)
            self.lost.append(text)
            return timeout
        self.latencies.append(arrived - started)
        return arrived - started

    def chatter(self, period: float = 0.2) -> None:
        """Start timing a round trip every `period` seconds (well within the chat's default
        message rate), until `stop_chatter`."""

        async def loop() -> None:
            while True:
                await asyncio.gather(self.round_trip(), asyncio.sleep(period))

        self._task = asyncio.create_task(loop())

    async def stop_chatter(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def assert_served(self, bound: float = LATENCY_BOUND, at_least: int = 3) -> None:
        """Still connected, nothing lost, every round trip within `bound` seconds."""
        assert not self.disconnected, "the honest client was disconnected"
        assert not self.lost, f"messages never came back: {self.lost}"
        assert len(self.latencies) >= at_least, f"only {len(self.latencies)} round trips"
        worst = max(self.latencies)
        assert worst < bound, (
            f"worst round trip {worst * 1000:.0f} ms (bound {bound * 1000:.0f} ms); "
            f"all: {[round(x * 1000) for x in self.latencies]}"
        )


@asynccontextmanager
async def honest_chatting(port: int, name: str = "honest") -> AsyncIterator[Honest]:
    """An `Honest` member, chatting for the duration of the block, then checked with
    `assert_served` (which a test may also call itself, earlier)."""
    honest = await Honest(port, name).start()
    try:
        await honest.round_trip()  # warm: the first store write opens things
        honest.latencies.clear()
        honest.chatter()
        yield honest
        # At least one more round trip after the attack, and a few in all.
        done = len(honest.latencies) + len(honest.lost)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            total = len(honest.latencies) + len(honest.lost)
            if total > done and total >= 3:
                break
            await asyncio.sleep(0.05)
        await honest.stop_chatter()
        honest.assert_served()
    finally:
        await honest.stop()


# --------------------------------------------------------------------------------- raw HTTP
async def open_raw(
    port: int, host: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare TCP connection to the server from `host`."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0))


async def closed_within(
    reader: asyncio.StreamReader, timeout: float, feed: Callable[[], Any] | None = None
) -> bytes:
    """What the server sent until it closed the connection; AssertionError if it is still
    open after `timeout` seconds. `feed`, if given, is called every 0.1 s meanwhile (to keep
    trickling bytes in)."""
    received = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"still open after {timeout:.1f} s; received {bytes(received[:200])!r}"
            )
        try:
            chunk = await asyncio.wait_for(reader.read(65536), min(left, 0.1))
        except TimeoutError:
            if feed is not None:
                with contextlib.suppress(OSError):
                    feed()
            continue
        except (ConnectionResetError, BrokenPipeError):
            return bytes(received)
        if not chunk:
            return bytes(received)
        received += chunk


_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")


async def http_request(
    port: int, request: bytes, host: str = "127.0.0.1", timeout: float = 5.0
) -> tuple[int, bytes, asyncio.StreamWriter]:
    """Send `request` on a new connection from `host`; (status, response bytes read, writer —
    still open if the server keeps it alive). A server that refuses the connection may answer
    before the request is sent and close: that answer counts."""
    reader, writer = await open_raw(port, host)
    received = bytearray()
    with contextlib.suppress(TimeoutError):
        received += await asyncio.wait_for(reader.read(65536), 0.05)
    if not received:
        with contextlib.suppress(OSError):
            writer.write(request)
            await writer.drain()
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in received:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        received += chunk
    match = _STATUS.match(bytes(received))
    status = int(match.group(1)) if match else 0
    return status, bytes(received), writer


# ----------------------------------------------------------------------- raw Engine.IO polling
class Polling:
    """One Engine.IO long-polling session spoken by hand over aiohttp."""

    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self.http = http
        self.base = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
        self.sid = ""

    @property
    def url(self) -> str:
        return f"{self.base}&sid={self.sid}"

    async def open(self, join: bool = True) -> Polling:
        """Handshake; with `join`, also connect to the main namespace and read its answer."""
        async with self.http.get(self.base) as response:
            assert response.status == 200, await response.text()
            text = await response.text()
        self.sid = json.loads(text[1:])["sid"]
        if join:
            status, _ = await self.post("40")
            assert status == 200
            status, text = await self.get()
            assert status == 200 and text.startswith("40"), text
        return self

    async def post(self, body: str | bytes, timeout: float = 10.0) -> tuple[int, str]:
        async with self.http.post(
            self.url, data=body, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            return response.status, await response.text()

    async def get(self, timeout: float = 10.0) -> tuple[int, str]:
        async with self.http.get(
            self.url, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            return response.status, await response.text()

    async def drain(self) -> None:
        """GET what the server sends, over and over, until the session is gone."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            while (await self.get(timeout=35))[0] == 200:
                pass

    async def is_closed(self) -> bool:
        """Whether the server has dropped this session (a GET for it answers 400)."""
        status, _ = await self.get(timeout=35)
        return status == 400


# -------------------------------------------------------------------------------- websocket
async def ws_connect(
    port: int, origin: str | None = None, join: bool = True, name: str | None = None
) -> websockets.ClientConnection:
    """A raw Engine.IO websocket (no polling first); with `join`, connected to the main
    namespace (its CONNECT answer read), as `name` if given."""
    ws = await websockets.connect(
        f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
        origin=websockets.Origin(origin) if origin is not None else None,
        max_size=None,
        open_timeout=10,
    )
    opened = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(opened, str) and opened.startswith("0"), opened
    if join:
        await ws.send("40" + (json.dumps({"name": name}) if name is not None else ""))
        connected = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(connected, str) and connected.startswith("40"), connected
    return ws


async def ws_closed_within(ws: websockets.ClientConnection, timeout: float) -> None:
    """Read (and drop) what the server sends until it closes `ws`; AssertionError if it is
    still open after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await ws.recv()
                if message == "2":  # answer pings, so only a real cut-off ends it
                    await ws.send("3")
                elif isinstance(message, str) and message.startswith("1"):
                    return  # the server's Engine.IO close packet
    except websockets.ConnectionClosed:
        return
    except TimeoutError:
        raise AssertionError(f"the websocket is still open after {timeout:.1f} s") from None


async def ws_call(ws: websockets.ClientConnection, event: str, arg: Any, ack_id: int) -> Any:
    """Emit `event` with an ack over a raw websocket; the ack's argument (other packets that
    arrive first are dropped; pings answered)."""
    await ws.send(f"42{ack_id}" + json.dumps([event, arg]))
    prefix = f"43{ack_id}"
    async with asyncio.timeout(10):
        while True:
            message = await ws.recv()
            if message == "2":
                await ws.send("3")
            elif isinstance(message, str) and message.startswith(prefix):
                return json.loads(message[len(prefix) :])[0]
