"""Prometheus metrics of one server at ``/metrics`` (``Server(metrics=True)``, ``--metrics``).

The text format is written by the official ``prometheus_client`` library (the ``metrics``
extra), imported only when metrics are on. Each server has its own ``CollectorRegistry``,
so several servers in one process (tests, or an application running two) never mix counts.

Counting costs the hot paths nothing they would notice: the engine, the adapters and
connection state recovery keep plain integer counters on objects they already have (one
addition per write system call, per websocket read, per broadcast; never per delivery),
and a custom collector reads them when Prometheus scrapes. Gauges (connections, sockets,
rooms, members) are computed at scrape time too. Only what is already costly per event is
recorded as it happens: the latency of event handlers (timed only while metrics are on)
and of the store's group commits. Every metric is listed in ``docs/metrics.md``.

``/metrics`` is served on the server's own port. With a ``token`` it answers 401 unless
the request carries ``Authorization: Bearer <token>``; without one it is open to whoever
reaches the port, so keep that port off the public internet or set a token.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from salas._extras import extra_needed
from salas.adapter.memory import MemoryAdapter
from salas.engine import EngineSession
from salas.http import Request, Response
from salas.server.observers import ServerObserver

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from salas.server.server import Server

__all__ = ["METRICS_PATH", "ServerMetrics"]

METRICS_PATH = "/metrics"

# Buckets, in seconds: event handlers answer in microseconds to (with a database) tens of
# milliseconds; a commit takes a fsync or a round trip.
_HANDLER_BUCKETS: tuple[float, ...] = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
    *(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_COMMIT_BUCKETS: tuple[float, ...] = (
    *(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
    *(0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

_Kind = Literal["counter", "gauge"]


class ServerMetrics(ServerObserver):
    """The metrics of one :class:`~salas.server.Server` (``io.metrics``), served at ``/metrics``.

    Made by ``Server(metrics=True)``; applications read ``registry`` or add their own
    numbers with :meth:`add_scraped`, and hand a store to :meth:`watch_store`.

    Args:
        server: The server measured; ``/metrics`` is routed on it and this is added to its
            observers.
        token: When set, ``/metrics`` needs ``Authorization: Bearer <token>``.

    Attributes:
        registry: This server's own ``prometheus_client.CollectorRegistry``.

    Raises:
        ImportError: ``prometheus_client`` is not installed (the ``metrics`` extra).
        ValueError: ``token`` is empty.
    """

    def __init__(self, server: Server, token: str | None = None) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError:
            raise ImportError(extra_needed("Server(metrics=True)", "metrics")) from None
        if token is not None and not token:
            raise ValueError("the metrics token must not be empty")
        self._server = server
        self._token = b"Bearer " + token.encode() if token is not None else None
        self.registry = CollectorRegistry()
        # Not hot (once per connection): plain dicts, read at scrape time like the rest.
        self._handshakes: dict[str, int] = {}
        self._disconnects: dict[str, int] = {}
        self._scraped: list[tuple[_Kind, str, str, Callable[[], float]]] = []
        self._handler_seconds = Histogram(
            "salas_event_handler_seconds",
            "Time from an event's arrival to the end of its handler (awaited), by event.",
            ("namespace", "event"),
            registry=self.registry,
            buckets=_HANDLER_BUCKETS,
        )
        # Bounded: only events with a registered handler are timed (see `time_handler`).
        self._handler_children: dict[tuple[str, str], Any] = {}
        self._commit_seconds = Histogram(
            "salas_store_commit_seconds",
            "Time one group commit of the message store took (one transaction).",
            registry=self.registry,
            buckets=_COMMIT_BUCKETS,
        )
        self._commit_errors = Counter(
            "salas_store_commit_errors",
            "Group commits of the message store that failed (their messages not stored).",
            registry=self.registry,
        )
        self.registry.register(_Collector(self))
        server.add_observer(self)
        server.router.add(METRICS_PATH, self._serve, ("GET",))

    # -- what applications add -----------------------------------------------------------
    def add_scraped(self, kind: _Kind, name: str, doc: str, read: Callable[[], float]) -> None:
        """Expose ``read()`` as a counter or gauge named ``name``, read at each scrape.

        Args:
            kind: ``"counter"`` (``_total`` is appended to the name) or ``"gauge"``.
            name: The metric's name, ``salas_`` first by convention.
            doc: Its help text.
            read: Returns the current value; called at every scrape, so it must be cheap.
        """
        self._scraped.append((kind, name, doc, read))

    def watch_store(self, store: object) -> bool:
        """Record the commit latency and errors of ``store``'s group commits.

        Args:
            store: A message store; one with group commit (SQLite, PostgreSQL) has an
                ``observe_commits`` method, others (memory) commit nothing to time.

        Returns:
            Whether the store is being watched.
        """
        observe = getattr(store, "observe_commits", None)
        if not callable(observe):
            return False
        observe(self._commit_done)
        return True

    def time_handler(self, namespace: str, event: str) -> Callable[[], None]:
        """Start timing a handler of ``event``; the returned callable stops the clock.

        Only events with a handler are timed, so the ``event`` label takes the names the
        application registered, never whatever a client sends.
        """
        key = (namespace, event)
        child = self._handler_children.get(key)
        if child is None:
            # Looked up once per event name: `labels` takes a lock and builds a tuple.
            child = self._handler_children[key] = self._handler_seconds.labels(namespace, event)
        start = time.perf_counter()

        def done() -> None:
            child.observe(time.perf_counter() - start)

        return done

    def _commit_done(self, seconds: float, ok: bool) -> None:
        self._commit_seconds.observe(seconds)
        if not ok:
            self._commit_errors.inc()

    # -- observer -------------------------------------------------------------------------
    def connection_opened(self, session: EngineSession) -> None:
        """Count a handshake by the transport it opened on."""
        transport = session.transport
        self._handshakes[transport] = self._handshakes.get(transport, 0) + 1

    def connection_closed(self, session: EngineSession, reason: str) -> None:
        """Count a closed connection by its reason (Engine.IO's reason strings)."""
        self._disconnects[reason] = self._disconnects.get(reason, 0) + 1

    # -- /metrics ---------------------------------------------------------------------------
    def _serve(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        expected = self._token
        if expected is not None:
            given = request.headers.get("authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return Response(
                    401,
                    b"Unauthorized\n",
                    headers=[("WWW-Authenticate", 'Bearer realm="metrics"')],
                )
        return Response(
            200,
            generate_latest(self.registry),
            CONTENT_TYPE_LATEST,
            [("Cache-Control", "no-store")],
        )

    # -- read at scrape time ----------------------------------------------------------------
    def _collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        server = self._server
        engine = server.engine

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        def labelled(
            family: CounterMetricFamily | GaugeMetricFamily, values: dict[str, int]
        ) -> CounterMetricFamily | GaugeMetricFamily:
            for label, value in sorted(values.items()):
                family.add_metric([label], value)
            return family

        transports = dict.fromkeys(engine.config.transports, 0)
        for session in engine.sessions.values():
            transports[session.transport] = transports.get(session.transport, 0) + 1
        yield labelled(
            GaugeMetricFamily(
                "salas_connections",
                "Engine.IO connections open, by transport.",
                labels=["transport"],
            ),
            transports,
        )
        yield labelled(
            CounterMetricFamily(
                "salas_handshakes",
                "Engine.IO connections opened, by the transport they opened on.",
                labels=["transport"],
            ),
            dict.fromkeys(engine.config.transports, 0) | self._handshakes,
        )
        yield labelled(
            CounterMetricFamily(
                "salas_disconnects",
                "Engine.IO connections closed, by reason (Engine.IO's reason strings).",
                labels=["reason"],
            ),
            self._disconnects,
        )
        stats = engine.stats
        yield counter(
            "salas_packets_received", "Engine.IO packets received.", stats.packets_received
        )
        yield counter("salas_packets_sent", "Engine.IO packets sent.", stats.packets_sent)
        yield counter(
            "salas_bytes_received",
            "Bytes received: websocket data and long-polling POST bodies.",
            stats.bytes_received,
        )
        yield counter(
            "salas_bytes_sent",
            "Bytes sent: websocket data and long-polling GET bodies.",
            stats.bytes_sent,
        )
        yield counter(
            "salas_slow_consumers",
            "Connections cut off for leaving more than max_buffer bytes unsent.",
            stats.slow_consumers,
        )
        yield counter(
            "salas_origin_refused",
            "Requests to the Socket.IO path refused 403 for their Origin.",
            stats.origin_refused,
        )
        inbound = engine.inbound_stats
        yield counter(
            "salas_inbound_packets_dropped",
            "Packets dropped for being over their connection's inbound budget.",
            inbound.packets_dropped,
        )
        yield counter(
            "salas_inbound_posts_refused",
            "Long-polling POSTs refused for carrying more than max_post_packets packets.",
            inbound.posts_refused,
        )
        yield counter(
            "salas_inbound_disconnects",
            "Connections cut off for staying over their inbound budget.",
            inbound.disconnects,
        )
        limits = engine.limits
        refused = CounterMetricFamily(
            "salas_connections_refused",
            "Connections refused by the connection limits, by the limit reached.",
            labels=["limit"],
        )
        refused.add_metric(["max_connections"], limits.refused_full)
        refused.add_metric(["max_connections_per_ip"], limits.refused_address)
        yield refused
        yield from self._collect_namespaces()
        recovery = server.recovery
        yield counter(
            "salas_recovery_attempts",
            "Reconnecting clients that asked to recover their session.",
            recovery.attempts if recovery is not None else 0,
        )
        yield counter(
            "salas_recovery_successes",
            "Sessions recovered (rooms and data back, missed packets replayed).",
            recovery.recovered if recovery is not None else 0,
        )
        for kind, name, doc, read in self._scraped:
            if kind == "counter":
                yield CounterMetricFamily(name, doc, value=read())
            else:
                yield GaugeMetricFamily(name, doc, value=read())

    def _collect_namespaces(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        sockets = GaugeMetricFamily(
            "salas_sockets",
            "Sockets connected to this process, by namespace.",
            labels=["namespace"],
        )
        rooms = GaugeMetricFamily(
            "salas_rooms",
            "Rooms with at least one socket of this process (sockets' own rooms left out).",
            labels=["namespace"],
        )
        members = GaugeMetricFamily(
            "salas_room_members",
            "Memberships of those rooms: a socket in three rooms counts three times.",
            labels=["namespace"],
        )
        broadcasts = CounterMetricFamily(
            "salas_broadcasts",
            "Broadcasts delivered to this process's sockets, by namespace.",
            labels=["namespace"],
        )
        deliveries = CounterMetricFamily(
            "salas_deliveries",
            "Recipients those broadcasts were queued for, by namespace.",
            labels=["namespace"],
        )
        for name, nsp in sorted(self._server.namespaces.items()):
            local = nsp.sockets
            sockets.add_metric([name], len(local))
            adapter: Any = nsp.adapter
            if isinstance(adapter, MemoryAdapter):
                room_count = member_count = 0
                for room, sids in adapter.rooms.items():
                    if room not in local:  # a socket's own room, named after its id
                        room_count += 1
                        member_count += len(sids)
                rooms.add_metric([name], room_count)
                members.add_metric([name], member_count)
            broadcasts.add_metric([name], getattr(adapter, "broadcasts", 0))
            deliveries.add_metric([name], getattr(adapter, "deliveries", 0))
        yield from (sockets, rooms, members, broadcasts, deliveries)


class _Collector:
    """A ``prometheus_client`` custom collector reading the server's counters at scrape time."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """Every scrape-time metric (``prometheus_client.registry.Collector``)."""
        return self._metrics._collect()
