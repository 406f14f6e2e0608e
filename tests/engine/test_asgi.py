"""salas.engine.asgi in process, with a scripted ASGI receive/send: the limits that apply
under an ASGI server (body size and timeout, connection limits) and a long poll whose client
leaves."""

from __future__ import annotations

import asyncio
from typing import Any

from salas import Server
from salas.asgi import ASGIApp

Message = dict[str, Any]


class Exchange:
    """One ASGI call: what the client sends (`incoming`, then nothing) and what came back."""

    def __init__(self, *incoming: Message) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        for message in incoming:
            self.queue.put_nowait(message)
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return await self.queue.get()

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        for message in self.sent:
            if message["type"] == "http.response.start":
                return int(message["status"])
        return None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def http_scope(query: str, method: str = "GET", **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": "/socket.io/",
        "raw_path": b"/socket.io/",
        "query_string": query.encode(),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
        "client": ("10.0.0.7", 40000),
    }


async def handshake(app: ASGIApp) -> str:
    exchange = Exchange({"type": "http.request", "body": b""})
    await app(http_scope("EIO=4&transport=polling"), exchange.receive, exchange.send)
    assert exchange.status == 200, exchange.sent
    return exchange.body.decode().split('"sid":"')[1].split('"')[0]


async def test_body_over_max_payload_is_refused_unread() -> None:
    """A POST announcing more than max_payload is answered 413 before its body is read."""
    io = Server(max_payload=1000)
    app = ASGIApp(io)
    sid = await handshake(app)
    exchange = Exchange()  # sends no body at all: it must not be waited for
    scope = http_scope(f"EIO=4&transport=polling&sid={sid}", "POST", content_length="5000")
    await asyncio.wait_for(app(scope, exchange.receive, exchange.send), 2)
    assert exchange.status == 413
    await io.shutdown()


async def test_body_over_max_payload_without_length_is_refused() -> None:
    """A chunked POST whose chunks pass max_payload is answered 413."""
    io = Server(max_payload=1000)
    app = ASGIApp(io)
    sid = await handshake(app)
    chunk = {"type": "http.request", "body": b"4" + b"x" * 600, "more_body": True}
    exchange = Exchange(chunk, chunk, chunk)
    scope = http_scope(f"EIO=4&transport=polling&sid={sid}", "POST")
    await asyncio.wait_for(app(scope, exchange.receive, exchange.send), 2)
    assert exchange.status == 413
    await io.shutdown()


async def test_stalled_body_times_out() -> None:
    """A POST whose body stops arriving is answered 408 after body_timeout."""
    io = Server(body_timeout=0.2)
    app = ASGIApp(io)
    sid = await handshake(app)
    exchange = Exchange({"type": "http.request", "body": b"4", "more_body": True})
    scope = http_scope(f"EIO=4&transport=polling&sid={sid}", "POST")
    await asyncio.wait_for(app(scope, exchange.receive, exchange.send), 2)
    assert exchange.status == 408
    await io.shutdown()


async def test_connection_limit_per_address_counts_held_requests() -> None:
    """With one connection allowed per address, a held long poll makes the next request from
    that address answer 429, and another address is still served."""
    io = Server(max_connections_per_ip=1)
    app = ASGIApp(io)
    sid = await handshake(app)
    held = Exchange({"type": "http.request", "body": b""})
    poll = asyncio.ensure_future(
        app(http_scope(f"EIO=4&transport=polling&sid={sid}"), held.receive, held.send)
    )
    await asyncio.sleep(0.05)
    assert not poll.done()
    refused = Exchange({"type": "http.request", "body": b""})
    await app(http_scope("EIO=4&transport=polling"), refused.receive, refused.send)
    assert refused.status == 429
    other = Exchange({"type": "http.request", "body": b""})
    scope = http_scope("EIO=4&transport=polling")
    scope["client"] = ("10.0.0.8", 40000)
    await app(scope, other.receive, other.send)
    assert other.status == 200
    await io.shutdown()
    await asyncio.wait_for(poll, 2)
    assert held.body == b"1"  # the waiting GET gets the close packet


async def test_client_leaving_a_long_poll_closes_its_session() -> None:
    """A client that goes away while its GET is held ends the session ("transport close")."""
    io = Server()
    app = ASGIApp(io)
    sid = await handshake(app)
    session = io.engine.sessions[sid]
    reasons: list[str] = []
    session.on_close = reasons.append
    held = Exchange({"type": "http.request", "body": b""})
    poll = asyncio.ensure_future(
        app(http_scope(f"EIO=4&transport=polling&sid={sid}"), held.receive, held.send)
    )
    await asyncio.sleep(0.05)
    held.queue.put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(poll, 2)
    assert reasons == ["transport close"]
    assert held.status is None  # nothing is sent to a client that left
    await io.shutdown()
