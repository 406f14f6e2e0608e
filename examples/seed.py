"""The tutorial's rooms server, translated line by line to salas.

Run: `PORT=8000 python examples/seed.py`, then open a page that loads
`/socket.io/socket.io.js` and uses `io()` (see examples/seed_page/).
"""

import os
from pathlib import Path

from salas import Server

io = Server(cors_origins="*", static_dir=Path(__file__).parent / "seed_page")


@io.on("connection")
async def connection(socket):
    @socket.on("channel_join")
    async def channel_join(channel):
        if socket.data.get("room"):
            await socket.leave(socket.data["room"])  # single-room mode
        await socket.join(channel)
        socket.data["room"] = channel

    @socket.on("message")
    async def message(text):
        room = socket.data["room"]
        await io.to(room).emit("message", {"channel": room, "message": text})


io.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
