"""Raw Engine.IO v4 / Socket.IO v5 clients for the wire-level tests.

Written from the protocol documents (socketio/engine.io-protocol, socketio/socket.io-protocol):
long-polling payloads are packets joined by the record separator ``\\x1e``, binary packets in
a polling payload are ``b`` + base64; over websocket each packet is one frame, binary
attachments are binary frames.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.itest_support import AppProcess

PATH = "/socket.io/"
SEP = "\x1e"
Frame = str | bytes


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def packets(self) -> list[str]:
        return self.text.split(SEP) if self.text else []


async def http(
    session: aiohttp.ClientSession,
    app: AppProcess,
    method: str,
    query: dict[str, str] | None = None,
    data: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Response:
    """One HTTP request to the Engine.IO path; the whole body read."""
    async with session.request(
        method,
        app.url + PATH,
        params=query or {},
        data=data,
        headers=headers or {},
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as resp:
        body = await resp.read()
        return Response(resp.status, dict(resp.headers), body.decode("utf-8", "replace"))


class Polling:
    """A raw long-polling Engine.IO session."""

    def __init__(self, session: aiohttp.ClientSession, app: AppProcess) -> None:
        self.session = session
        self.app = app
        self.sid = ""
        self.handshake: dict[str, Any] = {}

    @property
    def query(self) -> dict[str, str]:
        return {"EIO": "4", "transport": "polling", "sid": self.sid}

    async def open(self) -> dict[str, Any]:
        resp = await http(self.session, self.app, "GET", {"EIO": "4", "transport": "polling"})
        assert resp.status == 200, resp
        packets = resp.packets
        assert packets and packets[0].startswith("0"), resp.text
        self.handshake = json.loads(packets[0][1:])
        self.sid = self.handshake["sid"]
        return self.handshake

    async def get(self, timeout: float = 5.0) -> Response:
        return await http(self.session, self.app, "GET", self.query, timeout=timeout)

    async def post(self, *packets: str, timeout: float = 5.0) -> Response:
        return await http(
            self.session,
            self.app,
            "POST",
            self.query,
            data=SEP.join(packets).encode(),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
            timeout=timeout,
        )

    async def packets(self, count: int, timeout: float = 5.0, pong: bool = True) -> list[str]:
        """GET until ``count`` packets other than pings arrived (answering pings)."""
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"got only {out}"
            resp = await self.get(timeout=left)
            assert resp.status == 200, resp
            for packet in resp.packets:
                if packet == "2":
                    if pong:
                        await self.post("3")
                elif packet != "6":
                    out.append(packet)
        return out

    async def sio_connect(self, nsp: str = "/", auth: Any = None) -> str:
        """CONNECT to a namespace; returns the Socket.IO id."""
        prefix = "" if nsp == "/" else nsp + ","
        body = "" if auth is None else json.dumps(auth)
        resp = await self.post("40" + prefix + body)
        assert resp.status == 200, resp
        [reply] = await self.packets(1)
        assert reply.startswith("40" + prefix), reply
        return str(json.loads(reply[2 + len(prefix) :])["sid"])

    async def closed(self, timeout: float = 5.0) -> bool:
        """Whether the server ends the session: a close packet or an unknown-sid 400."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            resp = await self.get(timeout=deadline - time.monotonic() + 1)
            if resp.status == 400:
                return bool(resp.json().get("code") == 1)
            if "1" in resp.packets:
                return True
        return False


class RawWS:
    """A raw websocket Engine.IO session."""

    def __init__(self, ws: ClientConnection, handshake: dict[str, Any] | None) -> None:
        self.ws = ws
        self.handshake = handshake or {}
        self.auto_pong = True
        self.pings = 0

    @classmethod
    async def open(
        cls, app: AppProcess, query: str = "EIO=4&transport=websocket", read_open: bool = True
    ) -> RawWS:
        ws = await connect(f"{app.ws_url}{PATH}?{query}", max_size=None, open_timeout=5)
        raw = cls(ws, None)
        if read_open:
            first = await raw.recv()
            assert isinstance(first, str) and first.startswith("0"), first
            raw.handshake = json.loads(first[1:])
        return raw

    async def send(self, *frames: Frame) -> None:
        for frame in frames:
            await self.ws.send(frame)

    async def recv(self, timeout: float = 5.0) -> Frame:
        """The next frame other than a server ping (answered when auto_pong)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await asyncio.wait_for(self.ws.recv(), max(0.0, deadline - time.monotonic()))
            if frame == "2":
                self.pings += 1
                if self.auto_pong:
                    await self.ws.send("3")
                continue
            return frame

    async def recv_many(self, count: int, timeout: float = 5.0) -> list[Frame]:
        return [await self.recv(timeout) for _ in range(count)]

    async def quiet(self, seconds: float) -> list[Frame]:
        """Frames (other than pings) received within ``seconds``; raises if closed."""
        out: list[Frame] = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                out.append(await self.recv(left))
            except TimeoutError:
                return out

    async def closed(self, timeout: float = 5.0) -> bool:
        """Whether the server closes the connection within ``timeout`` (frames are skipped)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                await self.recv(deadline - time.monotonic())
        except websockets.ConnectionClosed:
            return True
        except TimeoutError:
            return False
        return False

    async def sio_connect(self, nsp: str = "/", auth: Any = None) -> str:
        prefix = "" if nsp == "/" else nsp + ","
        body = "" if auth is None else json.dumps(auth)
        await self.send("40" + prefix + body)
        reply = await self.recv()
        assert isinstance(reply, str) and reply.startswith("40" + prefix), reply
        return str(json.loads(reply[2 + len(prefix) :])["sid"])

    async def call(self, event: str, *args: Any, ack_id: int = 1, nsp: str = "/") -> list[Any]:
        """EVENT with an ack id; returns the ACK's arguments (text packets only)."""
        prefix = "" if nsp == "/" else nsp + ","
        await self.send(f"42{prefix}{ack_id}" + json.dumps([event, *args]))
        head = f"43{prefix}{ack_id}"
        while True:
            reply = await self.recv()
            if isinstance(reply, str) and reply.startswith(head + "["):
                return list(json.loads(reply[len(head) :]))

    async def close(self) -> None:
        await self.ws.close()


def sio_decode(frame: Frame) -> tuple[str, str, int | None, Any]:
    """Splits an Engine.IO message carrying a Socket.IO packet (no attachments count):
    (type, namespace, ack id, data)."""
    assert isinstance(frame, str) and frame.startswith("4"), frame
    body = frame[1:]
    kind = body[0]
    rest = body[1:]
    if kind in "56":
        count, _, rest = rest.partition("-")
        assert count.isdigit(), frame
    nsp = "/"
    if rest.startswith("/"):
        nsp, _, rest = rest.partition(",")
    digits = ""
    while rest and rest[0].isdigit():
        digits += rest[0]
        rest = rest[1:]
    return kind, nsp, int(digits) if digits else None, json.loads(rest) if rest else None
