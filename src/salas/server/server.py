"""`Server`: the public entry point — namespaces, broadcasting, listening."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from salas.adapter.base import AdapterFactory, RemoteSocket
from salas.adapter.memory import MemoryAdapter
from salas.engine import CorsConfig, EngineConfig, EngineServer, EngineSession
from salas.engine.forwarded import parse_forwarded_allow_ips
from salas.http import (
    SECURITY_HEADERS,
    RequestHook,
    RequestHooks,
    RouteHandler,
    Router,
    StaticFiles,
)
from salas.http.router import DEFAULT_METHODS
from salas.recovery import Recovery, RecoveryOptions
from salas.server.broadcast import BroadcastOperator
from salas.server.client import Client
from salas.server.gc_tuning import tune_for_serving
from salas.server.handlers import Handler
from salas.server.namespace import Middleware, Namespace
from salas.server.observers import ServerObserver, ServerObservers
from salas.server.socket import Socket
from salas.server.tasks import TaskRegistry

if TYPE_CHECKING:
    from salas.metrics import ServerMetrics

__all__ = ["Server", "run_loop"]

logger = logging.getLogger("salas.server")

T = TypeVar("T")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Server:
    """A Socket.IO server: namespaces, broadcasting, plain HTTP routes, listening.

    Every argument is keyword-only and has a default that runs the tutorial.

    Args:
        cors_origins: Origins browsers may call from: ``"*"`` for any, origins separated
            by commas, or a sequence of them; None (default) sends no CORS headers. The
            same setting decides which pages may open a session: a websocket upgrade or a
            polling request whose ``Origin`` is not allowed gets 403 (None: only pages of
            the origin in the request's ``Host``; requests without ``Origin`` pass).
        cors_credentials: Allow credentialed cross-origin requests (default False).
        path: The URL path of the Socket.IO endpoint (default ``"/socket.io/"``; a
            trailing ``"/"`` is added when missing).
        ping_interval: Seconds between the server's pings (default 25.0).
        ping_timeout: Seconds a client has to answer a ping before its connection is
            closed (default 20.0).
        max_payload: The largest long-polling body or websocket message accepted, in
            bytes (default 1,000,000).
        connect_timeout: Seconds a connection may stay without joining a namespace before
            it is closed (default 45.0).
        max_buffer: Bytes queued unsent for one connection above which it is cut off
            (default 4 MiB).
        volatile_buffer: Bytes queued unsent above which volatile packets to that
            connection are dropped (default 256 KiB; at most ``max_buffer``).
        transports: The Engine.IO transports allowed (default both ``"polling"`` and
            ``"websocket"``).
        adapter: Makes each namespace's adapter (default :class:`~salas.adapter.MemoryAdapter`;
            :func:`~salas.adapter.redis_adapter` for several processes).
        serve_client: Serve the official browser client at ``<path>socket.io.js`` (default
            True; a warning is logged when it is not installed).
        static_dir: A directory of files to serve under ``/`` (default None: none).
        connection_state_recovery: True, or :class:`~salas.recovery.RecoveryOptions`, to
            let clients that reconnect get back their session and the packets they missed
            (default False).
        allow_request: A first request hook (see :meth:`allow_request`).
        head_timeout: Seconds a request head may take to arrive (default 10.0); a slow one
            is answered 408 and closed.
        body_timeout: Seconds a request body may go without progress (default 10.0).
        keep_alive_timeout: Seconds an HTTP connection may stay idle between requests
            (default 5.0). No timeout cuts a long-polling GET the server holds, nor a
            websocket.
        max_connections: Open connections in total; beyond, new ones get 503 and are
            closed (default 10,000; 0: no limit).
        max_connections_per_ip: Open connections per client address; beyond, new ones get
            429 and are closed (default 1,000; 0: no limit).
        forwarded_allow_ips: Proxies (IPs, CIDRs, ``"*"``; a comma list or a sequence)
            whose ``X-Forwarded-For`` names the client (default None: none). Their own
            connections count in the total only; each request they forward counts for its
            client (``request.client_address``).
        inbound_rate: Packets per second one connection may send, counted before they are
            decoded (default 100.0; 0: no limit). Packets over budget are dropped; a
            connection still over its budget 2 seconds after its first dropped packet is
            closed.
        inbound_burst: Packets one connection may send at once above ``inbound_rate``
            (default 1000).
        inbound_bytes_rate: Bytes per second one connection may send (default 1,000,000;
            0: no limit); the burst is ``max_payload``.
        max_post_packets: Packets one long-polling POST may carry; a POST with more is
            answered 400 and its connection closed (default 500).
        write_interval: Seconds a websocket connection that was just written to waits
            before its next write, gathering what it is sent meanwhile into that write
            (default 0: a write per loop iteration). A connection sent less often than once
            per interval is never delayed; see :mod:`salas.engine.scheduler`.
        metrics: Serve Prometheus metrics at ``/metrics`` (default False; needs the
            ``metrics`` extra, ``prometheus_client``). See :mod:`salas.metrics` and
            docs/metrics.md. ``/metrics`` is on the server's own port: without
            ``metrics_token`` keep that port off the public internet.
        metrics_token: When set, ``/metrics`` answers 401 unless the request carries
            ``Authorization: Bearer <metrics_token>`` (default None: open).

    Attributes:
        sockets: The main namespace ``"/"``.
        tasks: Every background task of this server, ended by :meth:`shutdown`.
        router: The plain HTTP routes and static files.
        engine: The Engine.IO server underneath.
        recovery: Connection state recovery, or None when it is off.
        observers: What :meth:`add_observer` added (false while there is none).
        metrics: The server's :class:`~salas.metrics.ServerMetrics`, or None when off.
        port: The bound port once :meth:`start` has run, else None.

    Raises:
        ValueError: A setting that cannot work: a timeout, interval or ``max_payload``
            that is not positive, a ``path`` not starting with ``"/"``, a
            ``volatile_buffer`` above ``max_buffer``, an unknown or no transport, a
            negative connection limit, a ``forwarded_allow_ips`` item that is no address,
            an empty ``metrics_token``.
        ImportError: ``metrics`` without ``prometheus_client`` installed.

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
        head_timeout: float = 10.0,
        body_timeout: float = 10.0,
        keep_alive_timeout: float = 5.0,
        max_connections: int = 10_000,
        max_connections_per_ip: int = 1000,
        forwarded_allow_ips: str | Sequence[str] | None = None,
        inbound_rate: float = 100.0,
        inbound_burst: int = 1000,
        inbound_bytes_rate: float = 1_000_000.0,
        max_post_packets: int = 500,
        write_interval: float = 0.0,
        metrics: bool = False,
        metrics_token: str | None = None,
    ) -> None:
        """Configure the server (see the class for the arguments); nothing listens yet."""
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
            head_timeout=head_timeout,
            body_timeout=body_timeout,
            keep_alive_timeout=keep_alive_timeout,
            max_connections=max_connections,
            max_connections_per_ip=max_connections_per_ip,
            forwarded_allow_ips=parse_forwarded_allow_ips(forwarded_allow_ips),
            inbound_rate=inbound_rate,
            inbound_burst=inbound_burst,
            inbound_bytes_rate=inbound_bytes_rate,
            max_post_packets=max_post_packets,
            write_interval=write_interval,
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
        self.observers = ServerObservers()
        self._namespaces: dict[str, Namespace] = {}
        # From `start` until `shutdown`: a namespace made meanwhile starts its adapter itself.
        self._adapters_live = False
        self._stopped: asyncio.Event | None = None
        self._shutting_down: asyncio.Task[None] | None = None
        self.port: int | None = None
        self.sockets = self.of("/")
        # Imported only when on: prometheus_client is an optional extra, and a server
        # without metrics pays nothing for them.
        self.metrics: ServerMetrics | None = None
        if metrics:
            from salas.metrics import ServerMetrics

            self.metrics = ServerMetrics(self, metrics_token)

    # -- namespaces and handlers ----------------------------------------------------------
    def of(self, name: str) -> Namespace:
        """The namespace ``name``, created on first use.

        A namespace made after :meth:`start` starts its adapter in the background (see
        :meth:`Namespace.adapter_ready`).

        Args:
            name: The namespace's name; a leading ``"/"`` is added when missing.

        Returns:
            The namespace, the same object on every call with that name.
        """
        if not name.startswith("/"):
            name = "/" + name
        nsp = self._namespaces.get(name)
        if nsp is None:
            nsp = self._namespaces[name] = Namespace(self, name, self._adapter_factory)
            if self._adapters_live:
                self._start_adapter(nsp)
            if self.observers:
                self._observe_rooms(nsp)
                self.observers.namespace_created(nsp)
        return nsp

    @property
    def namespaces(self) -> dict[str, Namespace]:
        """A copy of the namespaces made so far, by name."""
        return dict(self._namespaces)

    def add_observer(self, observer: ServerObserver) -> ServerObserver:
        """Tell ``observer`` of connections, sockets, rooms and namespaces from now on.

        See :mod:`salas.server.observers`. Room changes are reported by adapters that
        support it (:class:`~salas.adapter.MemoryAdapter` and the Redis adapter, for this
        process's sockets); with another adapter a warning is logged and rooms go untold.

        Args:
            observer: The observer.

        Returns:
            ``observer``.
        """
        self.observers.add(observer)
        for nsp in self._namespaces.values():
            self._observe_rooms(nsp)
        return observer

    def _observe_rooms(self, nsp: Namespace) -> None:
        """Have `nsp`'s adapter report room changes to the observers, when it can."""
        adapter = nsp.adapter
        if isinstance(adapter, MemoryAdapter):
            adapter.membership_observer = self.observers
        else:
            logger.warning(
                "the adapter of namespace %s (%s) does not report room changes to observers",
                nsp.name,
                type(adapter).__name__,
            )

    def _start_adapter(self, nsp: Namespace) -> None:
        """Run the `init` of a namespace made after `start`; its broadcasts wait for it."""
        task = self.tasks.spawn(nsp.adapter.init(), name=f"salas adapter init {nsp.name}")
        nsp.adapter_starting = task

        def started(task: asyncio.Task[None]) -> None:
            if task.cancelled():
                return  # shutdown came first
            error = task.exception()
            if error is None:
                nsp.adapter_starting = None
            else:
                # Kept on the namespace: its broadcasts raise this rather than "not started".
                logger.error(
                    "the adapter of namespace %s failed to start", nsp.name, exc_info=error
                )

        task.add_done_callback(started)

    def namespace_for(self, name: str) -> Namespace | None:
        """The namespace ``name`` if it exists; unlike :meth:`of`, never creates one.

        Args:
            name: The exact name, leading ``"/"`` included.

        Returns:
            The namespace, or None: clients asking to join it are refused.
        """
        return self._namespaces.get(name)

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register a connection handler on the main namespace: ``@io.on("connection")``.

        As :meth:`Namespace.on`.

        Args:
            event: ``"connection"`` (or its alias ``"connect"``).
            handler: ``handler(socket)``, sync or async; omitted when used as a decorator.

        Returns:
            ``handler``, or a decorator when it is omitted.

        Raises:
            ValueError: ``event`` is another name.
        """
        return self.sockets.on(event, handler)

    def on_event(self, event: str, handler: Handler | None = None) -> Any:
        """Register a client event's handler for every socket of the main namespace.

        ``@io.on_event("message")`` / ``handler(socket, *args)``; as
        :meth:`Namespace.on_event`.

        Args:
            event: The event name; not ``"connection"`` or ``"connect"``.
            handler: ``handler(socket, *args)``, sync or async; omitted when used as a
                decorator.

        Returns:
            ``handler``, or a decorator when it is omitted.

        Raises:
            TypeError: ``event`` is not a string.
            ValueError: ``event`` is ``"connection"`` or ``"connect"``.
        """
        return self.sockets.on_event(event, handler)

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware to the main namespace: ``@io.use``; as :meth:`Namespace.use`.

        Args:
            middleware: ``middleware(socket)``, sync or async.

        Returns:
            ``middleware``, so that ``use`` also works as a decorator.
        """
        return self.sockets.use(middleware)

    def mount_static(
        self,
        directory: str | os.PathLike[str],
        prefix: str = "/",
        headers: Iterable[tuple[str, str]] = SECURITY_HEADERS,
    ) -> None:
        """Serve the files of ``directory`` under the URL ``prefix``.

        Args:
            directory: The directory whose files are served.
            prefix: The URL path they are served under (default ``"/"``).
            headers: Sent with every file (default :data:`salas.http.SECURITY_HEADERS`: a
                Content-Security-Policy allowing only the site's own scripts, styles and
                connections, no framing, ``nosniff``, no referrer). Pages with inline
                scripts need a policy of their own here; ``()`` sends none.
        """
        self.router.mount_static(StaticFiles(directory, headers=headers), prefix)

    def route(
        self, path: str, methods: Iterable[str] = DEFAULT_METHODS
    ) -> Callable[[RouteHandler], RouteHandler]:
        """Answer plain HTTP at exactly ``path``: ``@io.route("/healthz", methods=("GET",))``.

        The handler takes the :class:`salas.http.Request` and returns a
        :class:`salas.http.Response` (or an awaitable of one). GET also answers HEAD
        (without the body); another method answers 405 with an ``Allow`` header.

        Args:
            path: The URL path, matched exactly.
            methods: The HTTP methods answered (default GET and POST).

        Returns:
            A decorator that registers the handler and returns it unchanged.
        """

        def register(handler: RouteHandler) -> RouteHandler:
            self.router.add(path, handler, methods)
            return handler

        return register

    def allow_request(self, hook: RequestHook) -> RequestHook:
        """Check each Engine.IO handshake before a session opens: ``@io.allow_request``.

        ``hook(request)`` (sync or async) returns True to allow, False to refuse; raising
        ``salas.http.RequestRefused("why")`` refuses with that message, any other exception
        refuses and is logged. Refused handshakes, over long-polling or websocket, answer
        403 ``{"code": 4, "message": ...}``. Hooks run in the order they were added.

        Args:
            hook: Takes the :class:`salas.http.Request` of the handshake.

        Returns:
            ``hook``, so that ``allow_request`` also works as a decorator.
        """
        return self._request_hooks.add(hook)

    # -- broadcasting on the main namespace -------------------------------------------------
    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Select the sockets of the main namespace in any of these rooms.

        ``in_`` is the same method.

        Args:
            *rooms: Room names, each a string or an iterable of strings.

        Returns:
            A :class:`~salas.server.broadcast.BroadcastOperator` for those rooms.
        """
        return self.sockets.to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """Select every socket of the main namespace except those in these rooms.

        Args:
            *rooms: Room names, each a string or an iterable of strings.

        Returns:
            A :class:`~salas.server.broadcast.BroadcastOperator` leaving those rooms out.
        """
        return self.sockets.except_(*rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        """The main namespace's sockets; emits are dropped on congested connections."""
        return self.sockets.volatile

    @property
    def local(self) -> BroadcastOperator:
        """The main namespace's sockets connected to this process only."""
        return self.sockets.local

    async def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to every socket of the main namespace.

        As :meth:`BroadcastOperator.emit <salas.server.broadcast.BroadcastOperator.emit>`:
        returns once it is queued, not delivered.

        Args:
            event: The event name.
            *args: The event's arguments: JSON-serialisable values or ``bytes``.

        Raises:
            TypeError: ``event`` is not a string.
            ValueError: ``event`` is a reserved event name.
        """
        await self.sockets.emit(event, *args)

    async def fetch_sockets(self) -> list[Socket | RemoteSocket]:
        """The sockets of the main namespace, here and (with a cluster adapter) elsewhere.

        With :class:`~salas.adapter.RedisAdapter` it waits for the other processes'
        answers, at most 5 seconds.

        Returns:
            This process's sockets as :class:`~salas.server.socket.Socket`, other
            processes' as :class:`~salas.adapter.RemoteSocket`.
        """
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
        """Disconnect every socket of the main namespace, in every process.

        Args:
            close: Also end each socket's whole connection (default False).
        """
        await self.sockets.disconnect_sockets(close)

    # -- engine events ------------------------------------------------------------------
    def _on_engine_connection(self, session: EngineSession) -> None:
        Client(self, session)
        if self.observers:
            self.observers.connection_opened(session)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` in the background, held by ``io.tasks`` until it is done.

        :meth:`shutdown` waits for it (up to its timeout), then cancels it. What it raises
        is left to the task.

        Args:
            coro: The coroutine to run.
            name: The task's name (default: asyncio's).

        Returns:
            The task.
        """
        return self.tasks.spawn(coro, name=name)

    # -- running ------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 8000) -> int:
        """Start the adapters and connection state recovery, then listen.

        Args:
            host: The address to listen on (default ``"127.0.0.1"``).
            port: The port (default 8000); 0 for any free one.

        Returns:
            The bound port (also kept as ``io.port``).

        Raises:
            OSError: The address cannot be bound.
        """
        await self.open()
        return await self.listen(host, port)

    async def listen(self, host: str = "127.0.0.1", port: int = 8000) -> int:
        """Listen on `host`:`port`, once :meth:`open` has run (what :meth:`start` ends with).

        For an application that starts its own parts between the two (the chat starts its
        cluster node once the adapters are up, before the first client can arrive).

        Returns:
            The bound port (also kept as ``io.port``).

        Raises:
            OSError: The address cannot be bound.
        """
        self.port = await self.engine.listen(host, port)
        return self.port

    async def open(self) -> None:
        """Start the adapters and connection state recovery without listening.

        What :meth:`start` does before it listens; an ASGI server carrying this server
        (:class:`salas.asgi.ASGIApp`) runs it at its lifespan startup. End with
        :meth:`shutdown`.
        """
        if self.recovery is not None:
            await self.recovery.start()
        self._adapters_live = True
        # A snapshot: a namespace made while these start starts its own (see `of`).
        for nsp in list(self._namespaces.values()):
            await nsp.adapter.init()
        self._stopped = asyncio.Event()
        self._shutting_down = None

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

        Args:
            timeout: Seconds to wait for the background tasks before cancelling them
                (default 5.0).
        """
        if self._shutting_down is None:
            self._shutting_down = asyncio.get_running_loop().create_task(
                self._shutdown(timeout), name="salas shutdown"
            )
        await asyncio.shield(self._shutting_down)

    async def _shutdown(self, timeout: float) -> None:
        self._adapters_live = False
        await self.engine.close()
        await self.tasks.close(timeout)
        if self.recovery is not None:
            # Sessions of the sockets just closed are saved, so clients can recover them
            # from the next process when the store is durable.
            await self.recovery.close()
        for nsp in list(self._namespaces.values()):
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
        """Listen until SIGINT or SIGTERM (or :meth:`shutdown`), then shut down cleanly.

        Args:
            host: The address to listen on (default ``"127.0.0.1"``).
            port: The port (default 8000); 0 for any free one.
        """
        bound = await self.start(host, port)
        logger.info("salas listening on http://%s:%d/", host, bound)
        await self.until_stopped()
        await self.shutdown()

    def run(self, host: str = "127.0.0.1", port: int = 8000) -> None:
        """Run :meth:`serve` to its end, blocking: on uvloop when installed, else asyncio.

        Logs at INFO to stderr when logging is not configured yet.

        Args:
            host: The address to listen on (default ``"127.0.0.1"``).
            port: The port (default 8000); 0 for any free one.
        """
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        run_loop(self.serve(host, port))


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to its end on uvloop when it is installed, plain asyncio otherwise; the
    garbage collector set for serving first (salas.server.gc_tuning)."""
    tune_for_serving()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
