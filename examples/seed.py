"""The tutorial's rooms server, translated line by line to salas.

Run: `PORT=8000 python examples/seed.py` and open http://127.0.0.1:8000/ : the tutorial's
own page (index.html and views/index.js, shipped in salas.chat.TUTORIAL_PAGE).
"""

import os

from salas import Server
from salas.chat.pages import TUTORIAL_PAGE

io = Server(cors_origins="*", static_dir=TUTORIAL_PAGE)


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
