"""The tutorial's relay on python-socketio 5.x, for bench/.

    PORT=9002 python bench/servers/pysocketio_relay.py uvicorn   # ASGI under uvicorn + uvloop
    PORT=9003 python bench/servers/pysocketio_relay.py aiohttp   # aiohttp's own server

Websocket transport only, compression off.  `channel_join` joins a room (single-room mode: the
previous room is left); `message` is re-emitted to the room as ``{channel, message}``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import socketio  # type: ignore[import-untyped,unused-ignore]


def make_server(async_mode: str) -> Any:
    sio = socketio.AsyncServer(
        async_mode=async_mode,
        cors_allowed_origins="*",
        transports=["websocket"],
        http_compression=False,
        compression_threshold=1 << 30,
    )
    rooms: dict[str, str] = {}

    @sio.on("channel_join")  # type: ignore[untyped-decorator]
    async def channel_join(sid: str, channel: str) -> None:
        old = rooms.get(sid)
        if old:
            await sio.leave_room(sid, old)
        await sio.enter_room(sid, channel)
        rooms[sid] = channel

    @sio.on("message")  # type: ignore[untyped-decorator]
    async def message(sid: str, text: str) -> None:
        room = rooms.get(sid)
        if room:
            await sio.emit("message", {"channel": room, "message": text}, room=room)

    @sio.on("disconnect")  # type: ignore[untyped-decorator]
    async def disconnect(sid: str, *args: Any) -> None:
        rooms.pop(sid, None)

    return sio


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "uvicorn"
    port = int(os.environ.get("PORT", "9002"))
    if mode == "uvicorn":
        import uvicorn

        sio = make_server("asgi")
        app = socketio.ASGIApp(sio)
        uvicorn.run(
            app,
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            ws="websockets",
            ws_per_message_deflate=False,
            log_level="warning",
            access_log=False,
            backlog=4096,
        )
    elif mode == "aiohttp":
        import asyncio

        import uvloop
        from aiohttp import web

        sio = make_server("aiohttp")
        app = web.Application()
        sio.attach(app)
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        web.run_app(app, host="127.0.0.1", port=port, print=None, backlog=4096)
    else:
        raise SystemExit(f"unknown mode {mode!r} (uvicorn or aiohttp)")


if __name__ == "__main__":
    main()
