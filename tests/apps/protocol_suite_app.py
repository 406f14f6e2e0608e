"""salas in the configuration the official protocol test suites expect.

The ``test-suite/`` folders of ``socketio/engine.io-protocol`` and ``socketio/socket.io-protocol``
check a server on ``localhost:3000`` with pingInterval 300 ms, pingTimeout 200 ms and
maxPayload 1e6, allowing any origin (their READMEs show the Node.js reference setup):

- ``python tests/apps/protocol_suite_app.py engine``: the Engine.IO suite's server, an echo of
  every message on ``/engine.io/`` (salas' engine alone);
- ``python tests/apps/protocol_suite_app.py socketio``: the Socket.IO suite's server on
  ``/socket.io/``: a connect timeout of 1 s; on connection, ``auth`` is emitted back with the
  handshake's auth payload; ``message`` is answered by ``message-back`` with the same arguments
  and ``message-with-ack`` is acknowledged with them; the ``/custom`` namespace only emits
  ``auth``.

Then, in a copy of a suite's ``test-suite/`` folder: ``npm install && npx mocha test-suite.js``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from salas import Server
from salas.engine import CorsConfig, EngineConfig, EngineServer, EngineSession

PORT = 3000
PING_INTERVAL = 0.3
PING_TIMEOUT = 0.2
MAX_PAYLOAD = 1_000_000


def engine_echo(session: EngineSession) -> None:
    """Send every message of `session` back to it."""

    def echo(message: str | bytes) -> None:
        session.send(message if isinstance(message, bytes) else "4" + message)

    session.on_message = echo


async def serve_engine() -> None:
    config = EngineConfig(
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        max_payload=MAX_PAYLOAD,
        cors=CorsConfig.parse("*"),
    )
    server = EngineServer(config, engine_echo)
    await server.listen("localhost", PORT)
    print(f"READY {PORT}", flush=True)
    await asyncio.Event().wait()


def socketio_server() -> Server:
    io = Server(
        cors_origins="*",
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        max_payload=MAX_PAYLOAD,
        connect_timeout=1.0,
        serve_client=False,
    )

    @io.on("connection")
    async def connection(socket: Any) -> None:
        await socket.emit("auth", socket.handshake["auth"])

        @socket.on("message")
        async def message(*args: Any) -> None:
            await socket.emit("message-back", *args)

        @socket.on("message-with-ack")
        async def message_with_ack(*args: Any) -> Any:
            return args

    @io.of("/custom").on("connection")
    async def custom(socket: Any) -> None:
        await socket.emit("auth", socket.handshake["auth"])

    return io


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "engine":
        asyncio.run(serve_engine())
    elif mode == "socketio":
        socketio_server().run(host="localhost", port=PORT)
    else:
        sys.exit("usage: protocol_suite_app.py engine|socketio")
