"""The chat application: the events of docs/chat-protocol.md on a `salas.Server`.

`create_app(config, store)` builds it; the store must be opened and closed by the caller
(`salas serve` does both). Only the public API of `salas.server`, `salas.auth` and
`salas.store` is used.

Identity: `create_app(..., auth=TokenVerifier(secret=...))` turns token auth on: the app
puts `salas.auth.JwtAuth` in front of every connection (``io.use``), names and user ids
come from the tokens, `ChatConfig.private_rooms` can be entered by the users the tokens
allow, and moderators can kick and ban. Bans go to `bans` (a `salas.store.BanStore`, opened
and closed by the caller; by default one in memory, which the app opens itself).

This module wires the parts together and runs them: presence (`salas.chat.presence`),
messages (`salas.chat.messages`), the socket events (`salas.chat.events`), the other
broadcasts (`salas.chat.announce`), /healthz and the pages.

`shutdown` first lets every message being stored be broadcast, so that a message stored by
one run of the server has always been broadcast (and logged for recovery) by that run: a
retry of it reaching the next run is acknowledged, not broadcast.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from salas.auth import JwtAuth, TokenVerifier
from salas.chat.announce import Announcer
from salas.chat.api import ApiConfig, HttpApi
from salas.chat.config import ChatConfig
from salas.chat.events import ChatEvents
from salas.chat.messages import MessageService, RoomSerializer
from salas.chat.pages import STATIC_DIR, TUTORIAL_PAGE
from salas.chat.presence import LocalPresence, PresenceBackend
from salas.chat.rate_limit import BudgetCounts
from salas.chat.rooms_feed import Coalescer
from salas.chat.typing_status import TypingTracker
from salas.http import SECURITY_HEADERS, Response
from salas.recovery import RecoveryOptions, RecoveryStore
from salas.server import Server
from salas.store import BanStore, MemoryBanStore, MessageStore, StoredMessage

if TYPE_CHECKING:
    from salas.cluster.node import ClusterNode
    from salas.cluster.presence import RedisPresence

__all__ = ["ChatApp", "create_app"]

logger = logging.getLogger("salas.chat")

# /healthz answers within this even if the database hangs.
_HEALTH_TIMEOUT = 5.0
# On shutdown, messages being stored get this long to be broadcast before connections close.
_DRAIN_TIMEOUT = 10.0


class ChatApp:
    """The chat on one `Server` (`self.io`), backed by `store`.

    Lifecycle like `Server`'s: `await start(host, port)` (returns the bound port),
    `await shutdown()`; the store is the caller's to open and close. With a `recovery`
    store, connection state recovery is on; the server opens and closes that store.
    `presence` defaults to this process's own (`LocalPresence`). `messages.post` posts a
    message without a socket. `auth`: token auth on (see the module); `bans`: where bans
    are kept (the caller's to open and close; default: in memory, opened by `start`).

    Attributes:
        auth: The token middleware in ``io.use``, or None without token auth.
        bans: The ban store.
    """

    def __init__(
        self,
        config: ChatConfig,
        store: MessageStore,
        recovery: RecoveryStore | None = None,
        *,
        presence: PresenceBackend | None = None,
        server_options: Mapping[str, Any] | None = None,
        api: ApiConfig | None = None,
        auth: TokenVerifier | None = None,
        bans: BanStore | None = None,
        cluster: ClusterNode | None = None,
    ) -> None:
        self.config = config
        # -- cluster (--redis): rooms over the Redis adapter, presence on every node --
        self.cluster = cluster
        shared: RedisPresence | None = None
        if cluster is not None:
            from salas.adapter.redis import redis_adapter
            from salas.cluster.presence import RedisPresence

            server_options = {
                "adapter": redis_adapter(cluster.url, cluster.prefix),
                **(server_options or {}),
            }
            if presence is None:
                presence = shared = RedisPresence(cluster)
        self.store = store
        # A ban store of our own (memory) is ours to open; one given is the caller's.
        self._own_bans = bans is None
        self.bans: BanStore = bans if bans is not None else MemoryBanStore()
        self.io = Server(
            cors_origins=config.cors_origins,
            connection_state_recovery=(
                RecoveryOptions(store=recovery) if recovery is not None else False
            ),
            # The engine's own settings (timeouts, connection limits, inbound budget...).
            **(server_options or {}),
        )
        self.auth = JwtAuth(auth) if auth is not None else None
        if self.auth is not None:
            self.io.use(self.auth)
        self.presence: PresenceBackend = presence if presence is not None else LocalPresence()
        self.announce = announce = Announcer(self.io, self.presence, config)
        self.typing = TypingTracker(
            announce.typing_changed,
            timeout=config.typing_timeout,
            throttle=config.typing_throttle,
        )
        self.rooms_feed = Coalescer(
            config.rooms_interval, announce.broadcast_rooms, spawn=self.io.spawn
        )
        # A socket's typing stops where its message is broadcast.
        self.messages = MessageService(
            self.io,
            store,
            before_broadcast=self.typing.stop,
            claim=_ClusterClaim(cluster) if cluster is not None else None,
            serializer=_room_locks(cluster) if cluster is not None else None,
        )
        self.budget_counts = BudgetCounts()  # the event budgets' refusals (with metrics)
        self.events = ChatEvents(
            config,
            store,
            self.presence,
            self.typing,
            self.rooms_feed,
            self.messages,
            announce,
            bans=self.bans,
            auth=self.auth,
            cluster=cluster,
            budget_counts=self.budget_counts if self.io.metrics is not None else None,
        )
        self.events.install(self.io)
        if shared is not None:
            # Other nodes' sockets change the rooms list; a dead node's leave is told here.
            shared.on_changed = self.rooms_feed.poke
            shared.on_departed = self.events.announce_departures
        if self.io.metrics is not None:
            self._measure()
        self.io.route("/healthz")(self._healthz)
        # The HTTP publish API (salas.chat.api), routed only when it has a token or verifier;
        # its callers are trusted (the API token, or an admin's JWT): it lists every room, as
        # the `rooms` event lists them to an admin (private ones marked).
        self.api = HttpApi(
            api or ApiConfig(),
            self.messages,
            store,
            self._all_rooms,
        )
        self.api.mount(self.io)
        # The chat page (index.html, the web engineer's) at /, the tutorial's page beside it;
        # both work under the strict policy of SECURITY_HEADERS (no inline script or style).
        self.io.mount_static(STATIC_DIR, "/", headers=SECURITY_HEADERS)
        self.io.mount_static(TUTORIAL_PAGE, "/tutorial/", headers=SECURITY_HEADERS)

    def _measure(self) -> None:
        """Add the chat's numbers to the server's metrics: commits, event budget refusals."""
        metrics = self.io.metrics
        assert metrics is not None
        metrics.watch_store(self.store)
        counts = self.budget_counts
        metrics.add_scraped(
            "counter",
            "salas_chat_events_rate_limited",
            "Chat events refused by their socket's event budget (rate_limited).",
            lambda: counts.refused,
        )
        metrics.add_scraped(
            "counter",
            "salas_chat_rate_limit_disconnects",
            "Sockets disconnected for event_cutoff chat events in a row over budget.",
            lambda: counts.cut_off,
        )

    @property
    def port(self) -> int | None:
        """The bound port once started."""
        return self.io.port

    @property
    def closing(self) -> bool:
        """Whether `shutdown` has begun (messages are refused from then on)."""
        return self.messages.closing

    async def start(self, host: str = "127.0.0.1", port: int = 8000) -> int:
        """Start listening; returns the bound port (pass 0 for any free one)."""
        await self.open()
        return await self.io.listen(host, port)

    async def open(self) -> None:
        """Start everything but listening: the connections come from elsewhere (a worker of
        `salas serve --workers` is handed them); end with `shutdown`.

        The server's adapters and recovery first, then the cluster node: joining the
        cluster announces this node's rooms through them.
        """
        if self._own_bans:
            await self.bans.open()
        await self.io.open()
        if self.cluster is not None:
            await self.cluster.start()
        self.messages.start()

    async def shutdown(self) -> None:
        """Broadcast the messages being stored, close every connection, then drop timers;
        the store stays open (the caller's).

        Messages arriving from here on are left unanswered: their connection closes before
        an ack, so clients send them again (same `client_id`) to the next server."""
        await self.messages.drain(_DRAIN_TIMEOUT)
        await self.io.shutdown()
        self.rooms_feed.close()
        self.typing.close()
        if self.cluster is not None:
            await self.cluster.close()
        if self._own_bans:
            await self.bans.close()

    async def wait_closed(self) -> None:
        """Wait until `shutdown` has run."""
        await self.io.wait_closed()

    def _all_rooms(self) -> list[dict[str, object]]:
        rules = self.announce.rules
        rooms = self.presence.room_list(self.config.rooms_list_max)
        return [{**room, "private": rules.is_private(str(room["name"]))} for room in rooms]

    async def _healthz(self, request: object) -> Response:
        """`{"ok", "store": {"ok"}, "connections"}`; 503 when the store is not ok.

        In a cluster, also `"cluster": {"redis", "node", "nodes"}`: whether Redis answers,
        this node's id and the nodes alive (Redis away does not make it 503: the node still
        serves its own sockets).

        The store's report (file path, schema, error text, counters) is added only with
        `config.healthz_details`: /healthz is open to anyone who reaches the server."""
        try:
            store = await asyncio.wait_for(self.store.health(), _HEALTH_TIMEOUT)
        except Exception as exc:  # a health check reports failures, it does not raise them
            store = {"ok": False, "error": str(exc) or type(exc).__name__}
        ok = store.get("ok") is True
        shown = store if self.config.healthz_details else {"ok": ok}
        body: dict[str, object] = {
            "ok": ok,
            "store": shown,
            "connections": self.presence.connections,
        }
        if self.cluster is not None:
            body["cluster"] = await self.cluster.health()
        return Response.json(body, 200 if ok else 503)


def _room_locks(cluster: ClusterNode) -> RoomSerializer:
    from salas.cluster.ordering import RoomLocks

    return RoomLocks(cluster)


# Seconds a node's claim on a message's broadcast is kept. A retry of the message (same
# client_id) comes within the client's reconnection, well inside the 2-minute recovery
# window; a later one that another node broadcasts again is dropped by the clients (same id).
# One key per message with a client_id, so the window bounds Redis's (or the local hub's)
# memory: at 100 messages/s, 60,000 keys.
CLAIM_TTL = 600


class _ClusterClaim:
    """`BroadcastClaim` over Redis: the first node to ``SET NX`` a message's key sends it."""

    def __init__(self, cluster: ClusterNode) -> None:
        self.cluster = cluster

    async def take(self, message: StoredMessage) -> bool:
        """Whether this node is the first to broadcast `message` (True if Redis is away:
        clients drop a repeated id)."""
        key = self.cluster.key("sent", str(message.id))
        try:
            node = self.cluster.node_id
            return bool(await self.cluster.pipe.execute("SET", key, node, "NX", "EX", CLAIM_TTL))
        except Exception as exc:
            logger.warning("cluster: cannot claim message %d (%s)", message.id, exc)
            return True

    async def release(self, message: StoredMessage) -> None:
        """The broadcast failed: let a retry take it."""
        await self.cluster.pipe.execute("DEL", self.cluster.key("sent", str(message.id)))


def create_app(
    config: ChatConfig | None = None,
    store: MessageStore | None = None,
    recovery: RecoveryStore | None = None,
    *,
    server_options: Mapping[str, Any] | None = None,
    api: ApiConfig | None = None,
    auth: TokenVerifier | None = None,
    bans: BanStore | None = None,
    cluster: ClusterNode | None = None,
) -> ChatApp:
    """The chat app; `store` defaults to a fresh ``memory://`` one (opened by the caller);
    `recovery` (e.g. ``open_recovery_store(url)``) turns connection state recovery on;
    `server_options`: more keyword arguments of `salas.Server` (the inbound budget...);
    `api`: the HTTP publish API's settings (off without a token or verifier); `auth`
    (``TokenVerifier(secret=...)``) turns token auth on; `bans` (e.g. ``open_ban_store(url)``,
    opened by the caller) keeps bans (default: in memory); `cluster` (a `ClusterNode`, started
    and closed by the app) makes this process one node of a cluster over Redis."""
    if store is None:
        from salas.store import open_store

        store = open_store("memory://")
    return ChatApp(
        config or ChatConfig(),
        store,
        recovery,
        server_options=server_options,
        api=api,
        auth=auth,
        bans=bans,
        cluster=cluster,
    )
