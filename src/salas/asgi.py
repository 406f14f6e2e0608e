"""Serve a :class:`salas.Server` through any ASGI server (uvicorn, hypercorn, ...).

>>> from salas import Server
>>> from salas.asgi import ASGIApp
>>> io = Server(cors_origins="*")
>>> app = ASGIApp(io)                                  # uvicorn module:app
>>> app = ASGIApp(io, other_asgi_app=starlette_app)    # salas beside your application

The Socket.IO endpoint (``io``'s ``path``, ``/socket.io/`` by default: polling, websocket,
upgrade, binary, acks, connection state recovery) is served by salas' engine, the same code
as on salas' own HTTP server. Every other path goes to ``other_asgi_app`` — except salas'
own routes (``io.route``) and the official client under the Socket.IO path
(``/socket.io/socket.io.js``); without another application salas answers everything as
its own server does (routes, static folders, the official client, 404).

Lifespan: ``lifespan.startup`` starts ``io`` without listening (:meth:`salas.Server.open`:
adapters, connection state recovery), ``lifespan.shutdown`` runs :meth:`salas.Server.shutdown`.
With another application, its lifespan runs inside salas' (salas starts first and stops
last). Mounted *inside* another application (Starlette's ``Mount``, which sends no lifespan
to what it mounts), call ``await io.open()`` and ``await io.shutdown()`` from that
application's lifespan.

What applies under ASGI (see :mod:`salas.engine.asgi`): Origin checks, ``allow_request``
hooks, inbound budgets, ``max_payload``, ``max_post_packets``, heartbeats, the slow-consumer
bound, the body timeout, and the connection limits (counted over the requests and
websockets in flight at the Socket.IO path). The ASGI server owns TCP, keep-alive and head
timeouts (uvicorn: ``--timeout-keep-alive``; put a proxy such as nginx in front for a head
timeout) and the websocket message size it buffers (uvicorn: ``--ws-max-size``, set it to
``max_payload``). One ``Server`` is served either by its own :meth:`~salas.Server.start`
or through one ASGI application, not both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from salas.engine.asgi import Message, Receive, Scope, Send, serve_http, serve_websocket
from salas.server import Server

__all__ = ["ASGI3App", "ASGIApp"]

#: An ASGI 3 application: ``await app(scope, receive, send)``.
ASGI3App = Callable[[Scope, Receive, Send], Awaitable[None]]


class ASGIApp:
    """An ASGI 3 application serving ``io`` (and ``other_asgi_app`` beside it).

    Args:
        io: The salas server to serve; it must not also :meth:`~salas.Server.start`.
        other_asgi_app: The ASGI application that gets every path salas does not serve
            (see the module); None: salas serves every path.

    Attributes:
        io: As given.
        other_asgi_app: As given.
    """

    def __init__(self, io: Server, other_asgi_app: ASGI3App | None = None) -> None:
        """Wrap ``io`` (see the class for the arguments)."""
        self.io = io
        self.other_asgi_app = other_asgi_app
        self._path = io.engine.config.path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI scope (``http``, ``websocket`` or ``lifespan``)."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif kind in ("http", "websocket") and self._ours(scope):
            engine = self.io.engine
            if kind == "http":
                await serve_http(engine, scope, receive, send)
            else:
                await serve_websocket(engine, scope, receive, send)
        elif self.other_asgi_app is not None:
            await self.other_asgi_app(scope, receive, send)

    def _ours(self, scope: Scope) -> bool:
        """Whether salas answers this scope (see the module)."""
        if self.other_asgi_app is None:
            return True
        path: str = scope["path"]
        if path == self._path or path == self._path[:-1]:
            return True
        raw = scope.get("raw_path")
        return self.io.router.serves(raw.decode("latin-1") if raw else path)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        other = self.other_asgi_app
        io = self.io
        if other is None:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    try:
                        await io.open()
                    except Exception as exc:
                        await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                        raise
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await io.shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

        async def receive_around() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await io.open()  # before the application starts: it may emit at startup
            return message

        async def send_around(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await io.shutdown()  # after the application has stopped
            await send(message)

        await other(scope, receive_around, send_around)
