"""`Server`: the public entry point — namespaces, broadcasting, listening."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from salas.adapter.base import AdapterFactory, RemoteSocket
from salas.adapter.memory import MemoryAdapter
from salas.engine import CorsConfig, EngineConfig, EngineServer, EngineSession
from salas.http import RequestHook, RequestHooks, RouteHandler, Router, StaticFiles
from salas.http.router import DEFAULT_METHODS
from salas.recovery import Recovery, RecoveryOptions
from salas.server.broadcast import BroadcastOperator
from salas.server.client import Client
from salas.server.handlers import Handler
from salas.server.namespace import Middleware, Namespace
from salas.server.socket import Socket
from salas.server.tasks import TaskRegistry

__all__ = ["Server", "run_loop"]

logger = logging.getLogger("salas.server")

T = TypeVar("T")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Server:
    """A Socket.IO server.

    >>> io = Server(cors_origins="*")
    >>> @io.on("connection")
    ... async def connection(socket): ...
    >>> io.run(port=8000)
    """

    def __init__(
        self,
        *,
        cors_origins: str | Sequence[str] | None = None,
        cors_credentials: bool = False,
        path: str = "/socket.io/",
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        max_payload: int = 1_000_000,
        connect_timeout: float = 45.0,
        max_buffer: int = 4 * 1024 * 1024,
        volatile_buffer: int = 256 * 1024,
        transports: Sequence[str] = ("polling", "websocket"),
        adapter: AdapterFactory = MemoryAdapter,
        serve_client: bool = True,
        static_dir: str | os.PathLike[str] | None = None,
        connection_state_recovery: bool | RecoveryOptions = False,
        allow_request: RequestHook | None = None,
    ) -> None:
        """Every argument has a default that runs the tutorial; `allow_request` is a first
        request hook (see `Server.allow_request`). ValueError for settings that cannot work."""
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be positive")
        self.connect_timeout = connect_timeout
        # Every background task of this server, ended by `shutdown`.
        self.tasks = TaskRegistry()
        self.router = Router(self.tasks.spawn)
        self._request_hooks = RequestHooks(self.tasks.spawn)
        if allow_request is not None:
            self._request_hooks.add(allow_request)
        config = EngineConfig(
            path=path,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_payload=max_payload,
            max_buffer=max_buffer,
            volatile_buffer=volatile_buffer,
            transports=tuple(transports),
            cors=CorsConfig.parse(cors_origins, cors_credentials),
        )
        self.engine = EngineServer(
            config, self._on_engine_connection, self.router, self._request_hooks
        )
        if serve_client and not self.router.serve_client(config.path):
            logger.warning(
                "the official client (npm socket.io-client) is not installed: %ssocket.io.js "
                "will answer 404; run scripts/setup.sh or set SALAS_CLIENT_DIR",
                config.path,
            )
        if static_dir is not None:
            self.mount_static(static_dir)
        if connection_state_recovery is True:
            connection_state_recovery = RecoveryOptions()
        self.recovery: Recovery | None = (
            Recovery(connection_state_recovery) if connection_state_recovery else None
        )
        self._adapter_factory = adapter
        self._namespaces: dict[str, Namespace] = {}
        self._stopped: asyncio.Event | None = None
        self._shutting_down: asyncio.Task[None] | None = None
        self.port: int | None = None
        self.sockets = self.of("/")

    # -- namespaces and handlers ----------------------------------------------------------
    def of(self, name: str) -> Namespace:
        """The namespace `name`, created on first use."""
        if not name.startswith("/"):
            name = "/" + name
        nsp = self._namespaces.get(name)
        if nsp is None:
            nsp = self._namespaces[name] = Namespace(self, name, self._adapter_factory)
        return nsp

    def namespace_for(self, name: str) -> Namespace | None:
        return self._namespaces.get(name)

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """`@io.on("connection")` on the main namespace."""
        return self.sockets.on(event, handler)

    def use(self, middleware: Middleware) -> Middleware:
        return self.sockets.use(middleware)

    def mount_static(self, directory: str | os.PathLike[str], prefix: str = "/") -> None:
        """Serve the files of `directory` under the URL `prefix`."""
        self.router.mount_static(StaticFiles(directory), prefix)

    def route(
        self, path: str, methods: Iterable[str] = DEFAULT_METHODS
    ) -> Callable[[RouteHandler], RouteHandler]:
        """`@io.route("/healthz", methods=("GET",))`: answer plain HTTP at exactly `path`.

        The handler takes the `salas.http.Request` and returns a `salas.http.Response` (or
        an awaitable of one). GET also answers HEAD (without the body); another method
        answers 405 with an `Allow` header. By default GET and POST.
        """

        def register(handler: RouteHandler) -> RouteHandler:
            self.router.add(path, handler, methods)
            return handler

        return register

    def allow_request(self, hook: RequestHook) -> RequestHook:
        """`@io.allow_request`: check each Engine.IO handshake before a session opens.

        `hook(request)` (sync or async) returns True to allow, False to refuse; raising
        `salas.http.RequestRefused("why")` refuses with that message, any other exception
        refuses and is logged. Refused handshakes, over long-polling or websocket, answer
        403 `{"code": 4, "message": ...}`. Hooks run in the order they were added.
        """
        return self._request_hooks.add(hook)

    # -- broadcasting on the main namespace -------------------------------------------------
    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.sockets.to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.sockets.except_(*rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        return self.sockets.volatile

    @property
    def local(self) -> BroadcastOperator:
        return self.sockets.local

    async def emit(self, event: str, *args: Any) -> None:
        await self.sockets.emit(event, *args)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        return await self.sockets.fetch_sockets()

    async def sockets_join(self, *rooms: str | Iterable[str]) -> None:
        """Make every socket of the main namespace join `rooms` (Node's `io.socketsJoin`).

        Args:
            *rooms: room names, or iterables of them.
        """
        await self.sockets.sockets_join(*rooms)

    async def sockets_leave(self, *rooms: str | Iterable[str]) -> None:
        """Make every socket of the main namespace leave `rooms` (Node's `io.socketsLeave`).

        Args:
            *rooms: room names, or iterables of them.
        """
        await self.sockets.sockets_leave(*rooms)

    async def disconnect_sockets(self, close: bool = False) -> None:
        await self.sockets.disconnect_sockets(close)

    # -- engine events ------------------------------------------------------------------
    def _on_engine_connection(self, session: EngineSession) -> None:
        Client(self, session)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run `coro` in the background, held by `io.tasks` until done; `shutdown` waits for
        it (up to its timeout), then cancels it."""
        return self.tasks.spawn(coro, name=name)

    # -- running ------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 8000) -> int:
        """Start listening; returns the bound port (pass 0 for any free one)."""
        if self.recovery is not None:
            await self.recovery.start()
        for nsp in self._namespaces.values():
            await nsp.adapter.init()
        self._stopped = asyncio.Event()
        self._shutting_down = None
        self.port = await self.engine.listen(host, port)
        return self.port

    async def wait_closed(self) -> None:
        """Wait until `shutdown` has run."""
        if self._stopped is not None:
            await self._stopped.wait()

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the server; a second call waits for the first.

        In this order: stop accepting and close every connection (each socket's
        `disconnecting` and `disconnect` handlers run, pending acks fail with
        `Disconnected`); wait up to `timeout` seconds for the background tasks in
        `io.tasks` (handlers still running, middlewares, async routes and request hooks,
        what the application spawned), then cancel those left; close connection state
        recovery (saving the sessions just closed) and the adapters; release
        `wait_closed`.
        """
        if self._shutting_down is None:
            self._shutting_down = asyncio.get_running_loop().create_task(
                self._shutdown(timeout), name="salas shutdown"
            )
        await asyncio.shield(self._shutting_down)

    async def _shutdown(self, timeout: float) -> None:
        await self.engine.close()
        await self.tasks.close(timeout)
        if self.recovery is not None:
            # Sessions of the sockets just closed are saved, so clients can recover them
            # from the next process when the store is durable.
            await self.recovery.close()
        for nsp in self._namespaces.values():
            await nsp.adapter.close()
        if self._stopped is not None:
            self._stopped.set()

    async def until_stopped(self) -> None:
        """Wait for SIGINT or SIGTERM, or for `shutdown` to have run (from elsewhere).

        Signals are handled only while this waits; where the loop cannot handle them
        (not the main thread, Windows) it waits for `shutdown` alone.
        """
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        waits = [loop.create_task(stop.wait()), loop.create_task(self.wait_closed())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            for sig in _SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)

    async def serve(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        """Listen until SIGINT/SIGTERM (or `shutdown`), then shut down cleanly."""
        bound = await self.start(host, port)
        logger.info("salas listening on http://%s:%d/", host, bound)
        await self.until_stopped()
        await self.shutdown()

    def run(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        """Blocking: `serve` on uvloop when it is installed, plain asyncio otherwise."""
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        run_loop(self.serve(host, port))


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to its end on uvloop when it is installed, plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
