"""The integration test application on salas.

Same behaviour as ``tests/apps/reference_app.js`` (the Node.js socket.io reference server):
the suite in ``tests/integration`` runs against either. Environment: PORT, PING_INTERVAL_MS,
PING_TIMEOUT_MS, MAX_PAYLOAD, CONNECT_TIMEOUT_MS, CORS_ORIGIN ("*" by default, or one
origin). Prints ``READY <port>`` on stdout once listening (``await io.start`` returns once bound).
SALAS_TEST_LOOP=asyncio runs it on plain asyncio instead of uvloop. SALAS_TEST_SERVER=asgi serves
it through ``salas.asgi.ASGIApp`` under uvicorn instead of salas' own HTTP server.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from typing import Any

from salas import AckTimeout, ConnectionRefused, Server


def env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw else default


PORT = int(env_number("PORT", 0))
CORS_ORIGIN = os.environ.get("CORS_ORIGIN") or "*"

io = Server(
    cors_origins=CORS_ORIGIN if CORS_ORIGIN == "*" else [CORS_ORIGIN],
    ping_interval=env_number("PING_INTERVAL_MS", 25000) / 1000,
    ping_timeout=env_number("PING_TIMEOUT_MS", 20000) / 1000,
    max_payload=int(env_number("MAX_PAYLOAD", 1_000_000)),
    connect_timeout=env_number("CONNECT_TIMEOUT_MS", 45000) / 1000,
)

# Last disconnect reasons seen by the server, newest last (bounded).
disconnects: collections.deque[dict[str, str]] = collections.deque(maxlen=200)


@io.on("connection")
async def connection(socket: Any) -> None:
    sid = socket.id

    @socket.on("disconnect")
    def gone(reason: str) -> None:
        disconnects.append({"nsp": "/", "id": sid, "reason": reason})

    @socket.on("echo")
    async def echo(*args: Any) -> Any:
        return args

    @socket.on("echo_event")
    async def echo_event(*args: Any) -> None:
        await socket.emit("echo", *args)

    @socket.on("binary")
    async def binary(*args: Any) -> Any:
        return args

    @socket.on("handshake_info")
    async def handshake_info() -> Any:
        query = socket.handshake["query"]
        foo = query.get("foo")
        info: dict[str, Any] = {
            "auth": socket.handshake["auth"],
            "query": {"foo": foo},
            "transport": socket.conn.transport,
            "id": socket.id,
        }
        if foo is None:
            info["query"] = {}
        return info

    @socket.on("join")
    async def join(room: str) -> Any:
        await socket.join(room)
        return sorted(socket.rooms)

    @socket.on("leave")
    async def leave(room: str) -> Any:
        await socket.leave(room)
        return sorted(socket.rooms)

    @socket.on("to_room")
    async def to_room(msg: dict[str, Any]) -> Any:
        # {room, event, data, except?}: except (a room) is left out of the broadcast
        target = io.to(msg["room"])
        if msg.get("except"):
            target = target.except_(msg["except"])
        await target.emit(msg["event"], msg["data"])
        return True

    @socket.on("to_room_except_me")
    async def to_room_except_me(msg: dict[str, Any]) -> Any:
        await socket.to(msg["room"]).emit(msg["event"], msg["data"])
        return True

    @socket.on("server_ack")
    async def server_ack(timeout_ms: float) -> Any:
        try:
            reply = await socket.emit_with_ack("ping_me", {"n": 42}, timeout=timeout_ms / 1000)
        except AckTimeout:
            return {"ok": False, "error": "timeout"}
        return {"ok": True, "reply": reply}

    @socket.on("drop_transport")
    async def drop_transport() -> None:
        await _maybe_await(socket.conn.close())

    @socket.on("disconnect_me")
    async def disconnect_me() -> None:
        await socket.disconnect()

    @socket.on("crash")
    async def crash(*args: Any) -> None:
        raise RuntimeError("crash requested by the client")

    @socket.on("fetch_room")
    async def fetch_room(room: str) -> Any:
        sockets = await io.in_(room).fetch_sockets()
        return sorted(s.id for s in sockets)

    @socket.on("room_join_all")
    async def room_join_all(room: str, other: str) -> Any:
        await io.in_(room).sockets_join(other)
        return True

    @socket.on("room_leave_all")
    async def room_leave_all(room: str, other: str) -> Any:
        await io.in_(room).sockets_leave(other)
        return True

    @socket.on("room_disconnect")
    async def room_disconnect(room: str) -> Any:
        await io.in_(room).disconnect_sockets()
        return True

    @socket.on("disconnect_log")
    async def disconnect_log() -> Any:
        return list(disconnects)


admin = io.of("/admin")


@admin.use
async def auth(socket: Any) -> None:
    if (socket.handshake["auth"] or {}).get("token") != "secret":
        raise ConnectionRefused("unauthorized", {"reason": "bad token"})


@admin.on("connection")
async def admin_connection(socket: Any) -> None:
    sid = socket.id

    @socket.on("disconnect")
    def gone(reason: str) -> None:
        disconnects.append({"nsp": "/admin", "id": sid, "reason": reason})

    @socket.on("whoami")
    async def whoami() -> Any:
        return {"nsp": "/admin", "id": socket.id}


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        await value


async def main() -> None:
    port = await io.start("127.0.0.1", PORT)
    print(f"READY {port}", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(io.shutdown()))
    await io.wait_closed()


async def main_asgi() -> None:
    """The same application through salas.asgi under uvicorn (lifespan starts and stops io)."""
    import uvicorn

    from salas.asgi import ASGIApp

    config = uvicorn.Config(
        ASGIApp(io), host="127.0.0.1", port=PORT, lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if server.started:
        print(f"READY {PORT}", flush=True)
    await serving


if __name__ == "__main__":
    if os.environ.get("SALAS_TEST_SERVER") == "asgi":
        main = main_asgi  # type: ignore[assignment]
    # Like io.run(): uvloop when installed (SALAS_TEST_LOOP=asyncio forces plain asyncio).
    if os.environ.get("SALAS_TEST_LOOP") != "asyncio":
        try:
            import uvloop
        except ImportError:
            uvloop = None  # type: ignore[assignment]
        if uvloop is not None:
            uvloop.run(main())
            sys.exit(0)
    asyncio.run(main())
