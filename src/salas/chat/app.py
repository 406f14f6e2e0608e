"""The chat application: the events of docs/chat-protocol.md on a `salas.Server`.

`create_app(config, store)` builds it; the store must be opened and closed by the caller
(`salas serve` does both). Only the public API of `salas.server` and `salas.store` is used.

Concurrency: the server runs each event's handler as its own task, so two events of one
socket may interleave at their awaits. Every handler therefore changes the chat's state
(`Presence`, typing, buckets) synchronously before its first await, and `message` keeps a
socket's messages in the order it sent them, and a room's messages in the order of their
ids, although their store writes overlap (so they can share one group commit).

Connection state recovery: the chat mirrors each socket's name and rooms into
`socket.data` (`salas.chat.session_state`); a recovered socket (`socket.recovered`) is put
back into the chat's bookkeeping from it, also in a process started after the one it
dropped from. `shutdown` first lets every message being stored be broadcast, so that a
message stored by one run of the server has always been broadcast (and logged for
recovery) by that run: a retry of it reaching the next run is acknowledged, not broadcast.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from salas.chat.config import ChatConfig
from salas.chat.errors import (
    BAD_REQUEST,
    INTERNAL,
    INVALID_MESSAGE,
    NOT_IN_ROOM,
    RATE_LIMITED,
    TOO_MANY_ROOMS,
    UNAVAILABLE,
    ChatError,
)
from salas.chat.identity import guest_name, name_from_auth
from salas.chat.pages import STATIC_DIR, TUTORIAL_PAGE
from salas.chat.presence import Presence
from salas.chat.rate_limit import TokenBucket
from salas.chat.rooms_feed import Coalescer
from salas.chat.session_state import DATA_KEY, SavedState, load_state
from salas.chat.typing_status import TypingTracker
from salas.chat.validation import (
    parse_history,
    parse_message,
    parse_nick,
    parse_room,
    parse_typing,
)
from salas.db.common import now_ms
from salas.http import Response
from salas.recovery import RecoveryOptions, RecoveryStore
from salas.server import Server, Socket
from salas.store import InvalidInputError, MessageStore, StoredMessage, StoreError

__all__ = ["ChatApp", "create_app"]

logger = logging.getLogger("salas.chat")

# Chat room R is the server room "room:R". Every socket is also alone in a server room named
# after its id; the prefix keeps a chat room from ever being one of those (a client joining
# "room" <someone's id> would otherwise receive what is sent to that socket alone).
_ROOM_PREFIX = "room:"
# Message ids recently broadcast for a client_id, to tell a retry the store deduplicated
# (ack it again, do not broadcast it twice) from a new message. Bounded: after that many
# messages (or a restart) a late retry is broadcast again, and clients dedupe by id.
_RECENT_IDS = 10_000
# /healthz answers within this even if the database hangs.
_HEALTH_TIMEOUT = 5.0
# On shutdown, messages being stored get this long to be broadcast before connections close.
_DRAIN_TIMEOUT = 10.0

Reply = dict[str, Any]
EventHandler = Callable[["_Conn", tuple[Any, ...]], Awaitable[Reply]]


def _server_room(room: str) -> str:
    return _ROOM_PREFIX + room


@dataclass(eq=False)
class _Conn:
    """What the chat keeps per connected socket (besides its rooms, in `Presence`)."""

    socket: Socket
    messages: TokenBucket | None  # None: no limit
    control: TokenBucket
    # Done when this socket's latest `message` has been broadcast (or failed).
    tail: asyncio.Future[None] | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # Set when the socket has left the chat (disconnected).
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def sid(self) -> str:
        return self.socket.id


class ChatApp:
    """The chat on one `Server` (`self.io`), backed by `store`.

    Lifecycle like `Server`'s: `await start(host, port)` (returns the bound port),
    `await shutdown()`; the store is the caller's to open and close. With a `recovery`
    store, connection state recovery is on; the server opens and closes that store.
    """

    def __init__(
        self, config: ChatConfig, store: MessageStore, recovery: RecoveryStore | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.io = Server(
            cors_origins=config.cors_origins,
            connection_state_recovery=(
                RecoveryOptions(store=recovery) if recovery is not None else False
            ),
        )
        self.presence = Presence()
        self.typing = TypingTracker(
            self._typing_changed,
            timeout=config.typing_timeout,
            throttle=config.typing_throttle,
        )
        self.rooms_feed = Coalescer(config.rooms_interval, self._broadcast_rooms)
        self._last_rooms: list[dict[str, object]] | None = None
        self._conns: dict[str, _Conn] = {}
        self._recent_ids: collections.deque[int] = collections.deque(maxlen=_RECENT_IDS)
        self._recent_set: set[int] = set()
        # Per room, done when the room's latest `message` has been broadcast (or failed).
        self._room_tails: dict[str, asyncio.Future[None]] = {}
        # Messages between their arrival and their broadcast; `shutdown` waits for them.
        self._inflight: set[asyncio.Future[None]] = set()
        self._closing = False
        # Messages with an earlier `ts` were stored (and broadcast) by an earlier run.
        self._started_ms = now_ms()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handlers: dict[str, EventHandler] = {
            "channel_join": self._on_join,
            "channel_leave": self._on_leave,
            "message": self._on_message,
            "typing": self._on_typing,
            "history": self._on_history,
            "nick": self._on_nick,
        }
        self.io.on("connection", self._on_connection)
        self.io.route("/healthz")(self._healthz)
        # The chat page (index.html, the web engineer's) at /, the tutorial's page beside it.
        self.io.mount_static(STATIC_DIR, "/")
        self.io.mount_static(TUTORIAL_PAGE, "/tutorial/")

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int | None:
        return self.io.port

    async def start(self, host: str = "127.0.0.1", port: int = 8000) -> int:
        self._started_ms = now_ms()
        return await self.io.start(host, port)

    async def shutdown(self) -> None:
        """Broadcast the messages being stored, close every connection, then drop timers;
        the store stays open (the caller's).

        Messages arriving from here on are left unanswered: their connection closes before
        an ack, so clients send them again (same `client_id`) to the next server."""
        self._closing = True
        if self._inflight:
            _, late = await asyncio.wait(set(self._inflight), timeout=_DRAIN_TIMEOUT)
            if late:
                logger.warning("shutting down with %d messages still being stored", len(late))
        await self.io.shutdown()
        self.rooms_feed.close()
        self.typing.close()
        if self._tasks:
            # Broadcasts spawned by the disconnects above: quick, but let them finish.
            await asyncio.wait(set(self._tasks), timeout=1.0)

    async def wait_closed(self) -> None:
        await self.io.wait_closed()

    # -- helpers -------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background (from sync callbacks), logging what it raises."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("error in a chat broadcast", exc_info=task.exception())

    def _presence_payload(
        self, room: str, event: str, user: str, previous: str | None = None
    ) -> dict[str, object]:
        count = self.presence.count(room)
        payload: dict[str, object] = {"channel": room, "event": event, "user": user}
        if count <= self.config.presence_members_max:
            payload["members"] = self.presence.members(room)
        payload["count"] = count
        if previous is not None:
            payload["previous"] = previous
        return payload

    async def _send_presence(self, room: str, payload: dict[str, object]) -> None:
        await self.io.to(_server_room(room)).emit("presence", payload)

    def _typing_changed(self, room: str, sid: str, user: str, typing: bool) -> None:
        payload = {"channel": room, "user": user, "typing": typing}
        self._spawn(self.io.to(_server_room(room)).except_(sid).emit("typing", payload))

    async def _broadcast_rooms(self) -> None:
        rooms = self.presence.room_list(self.config.rooms_list_max)
        if rooms == self._last_rooms:
            return  # changes that cancelled out within the interval
        self._last_rooms = rooms
        await self.io.emit("rooms", {"rooms": rooms})

    def _spend_control(self, conn: _Conn) -> None:
        if not conn.control.take():
            raise ChatError(RATE_LIMITED, "too many requests; slow down")

    def _save_state(self, conn: _Conn) -> None:
        """Mirror the socket's name and rooms into `socket.data`, which connection state
        recovery saves when the socket drops (session_state)."""
        sid, presence = conn.sid, self.presence
        rooms = tuple((room, presence.shown_as(sid, room) or "") for room in presence.rooms_of(sid))
        conn.socket.data[DATA_KEY] = SavedState(presence.name(sid), rooms).to_data()

    def _remember_id(self, message_id: int) -> None:
        if len(self._recent_ids) == self._recent_ids.maxlen:
            self._recent_set.discard(self._recent_ids[0])
        self._recent_ids.append(message_id)
        self._recent_set.add(message_id)

    # -- connections -----------------------------------------------------------------------
    def _on_connection(self, socket: Socket) -> None:
        # Sync on purpose: the handlers below are in place (and a recovered socket is back
        # in its rooms) before any event can arrive.
        saved = load_state(socket.data.get(DATA_KEY)) if socket.recovered else None
        error: ChatError | None = None
        if saved is not None:
            name: str | None = saved.name
        else:
            auth = socket.handshake.get("auth")
            name, error = name_from_auth(auth if isinstance(auth, dict) else {})
        if name is None:
            name = guest_name(self.presence.name_in_use)
        config = self.config
        conn = _Conn(
            socket,
            TokenBucket(config.message_burst, config.message_rate) if config.message_rate else None,
            TokenBucket(config.control_burst, config.control_rate),
        )
        if self._conns.get(socket.id) is not None:  # (cannot happen: a session is taken once)
            self._on_disconnect(self._conns[socket.id], "replaced")
        self._conns[socket.id] = conn
        self.presence.connect(socket.id, name)
        stale: list[str] = []
        joined: list[tuple[str, dict[str, object]]] = []
        if socket.recovered:
            stale, joined = self._restore_rooms(conn, saved)
        self._save_state(conn)
        for event, handler in self._handlers.items():
            socket.on(event, self._wrap(conn, event, handler))
        socket.on("disconnect", lambda reason: self._on_disconnect(conn, reason))
        self._spawn(self._welcome(conn, name, error, stale, joined))

    def _restore_rooms(
        self, conn: _Conn, saved: SavedState | None
    ) -> tuple[list[str], list[tuple[str, dict[str, object]]]]:
        """Put a recovered socket back into the rooms it was in: those both in its saved
        state and among the server rooms the recovery gave back (whose messages it was
        replayed). (Chat rooms among its server rooms the chat does not keep, `joined`
        presences to send.)"""
        sid = conn.sid
        prefix = len(_ROOM_PREFIX)
        in_server = {r[prefix:] for r in conn.socket.rooms if r.startswith(_ROOM_PREFIX)}
        kept: set[str] = set()
        joined: list[tuple[str, dict[str, object]]] = []
        for room, shown in saved.rooms if saved is not None else ():
            if room not in in_server:
                continue
            if self.config.single_room and kept:
                break
            if len(kept) >= self.config.max_rooms_per_socket:
                break
            kept.add(room)
            shown, _ = self.presence.join(sid, room, prefer=shown)
            joined.append((room, self._presence_payload(room, "joined", shown)))
        if joined:
            self.rooms_feed.poke()
        return sorted(in_server - kept), joined

    async def _welcome(
        self,
        conn: _Conn,
        name: str,
        error: ChatError | None,
        stale: list[str],
        joined: list[tuple[str, dict[str, object]]],
    ) -> None:
        socket = conn.socket
        for room in stale:
            await socket.leave(_server_room(room))
        if error is not None:
            await socket.emit("error", {**error.to_wire(), "event": "connect"})
        rooms = self.presence.room_list(self.config.rooms_list_max)
        sid = conn.sid
        channels = [
            {"channel": room, "name": self.presence.shown_as(sid, room)}
            for room in self.presence.rooms_of(sid)
        ]
        await socket.emit(
            "welcome",
            {
                "name": name,
                "single_room": self.config.single_room,
                "rooms": rooms,
                "recovered": socket.recovered,
                "channels": channels,
            },
        )
        await socket.emit("rooms", {"rooms": rooms})
        # After `welcome` (which tells the socket the names it shows), and only while it is
        # still here: gone already, its `left` has been sent.
        if self._conns.get(sid) is conn:
            for room, payload in joined:
                await self._send_presence(room, payload)

    def _on_disconnect(self, conn: _Conn, reason: str) -> None:
        # Sync on purpose: the socket's state is gone before any of its queued handlers run,
        # so none of them can put it back into a room.
        sid = conn.sid
        conn.closed.set()
        if self._conns.get(sid) is not conn:
            return
        del self._conns[sid]
        # (socket.data is left as it is: recovery is saving it for the socket's comeback.)
        self.typing.stop_all(sid)
        departures = self.presence.disconnect(sid)
        for departure in departures:
            payload = self._presence_payload(departure.room, "left", departure.user)
            self._spawn(self._send_presence(departure.room, payload))
        if departures:
            self.rooms_feed.poke()
        logger.debug("socket %s left the chat (%s)", sid, reason)

    def _wrap(
        self, conn: _Conn, event: str, handler: EventHandler
    ) -> Callable[..., Awaitable[Reply]]:
        async def handle(*args: Any) -> Reply:
            if self._conns.get(conn.sid) is not conn:
                # Disconnected after this event arrived: nobody to answer, nothing to change.
                return {"ok": False, "error": {"code": BAD_REQUEST, "message": "disconnected"}}
            try:
                return await handler(conn, args)
            except ChatError as error:
                return await self._refuse(conn, event, error)
            except Exception:
                logger.exception("error handling %r from socket %s", event, conn.sid)
                return await self._refuse(conn, event, ChatError(INTERNAL, "internal error"))

        return handle

    async def _refuse(self, conn: _Conn, event: str, error: ChatError) -> Reply:
        wire = error.to_wire()
        await conn.socket.emit("error", {**wire, "event": event})
        return {"ok": False, "error": wire}

    # -- rooms -----------------------------------------------------------------------------
    async def _on_join(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
        self._spend_control(conn)
        room = parse_room(args, "channel_join")
        sid = conn.sid
        presence = self.presence
        leaving: list[str] = []
        if self.config.single_room:
            leaving = [r for r in presence.rooms_of(sid) if r != room]
        elif (
            not presence.in_room(sid, room)
            and len(presence.rooms_of(sid)) >= self.config.max_rooms_per_socket
        ):
            raise ChatError(
                TOO_MANY_ROOMS,
                f"a connection may be in at most {self.config.max_rooms_per_socket} rooms",
            )
        # State first, then the awaits: the bookkeeping below never suspends, so an event
        # handled after this one (a message right after the join) sees the new rooms.
        left = [(r, p) for r in leaving if (p := self._forget_room(conn, r)) is not None]
        shown, new = presence.join(sid, room)
        self._save_state(conn)
        for r, payload in left:
            await conn.socket.leave(_server_room(r))
            await self._send_presence(r, payload)
        # (Re-checked: with an adapter whose leave suspends, the socket may be gone by now,
        # and joining a server room after its disconnect would leave it there for good.)
        if new and self._conns.get(sid) is conn:
            await conn.socket.join(_server_room(room))
            await self._send_presence(room, self._presence_payload(room, "joined", shown))
        if new or left:
            self.rooms_feed.poke()
        try:
            messages = await self.store.history(room, limit=self.config.join_history)
        except StoreError as exc:
            # The join itself worked (membership needs no store); say history is missing.
            logger.warning("history of %r unavailable on join: %s", room, exc)
            messages = []
            await conn.socket.emit(
                "error",
                {
                    "code": UNAVAILABLE,
                    "message": "the room's history is unavailable right now",
                    "event": "channel_join",
                },
            )
        members = presence.members(room)
        return {
            "ok": True,
            "channel": room,
            "name": shown,
            "messages": [m.to_wire() for m in messages],
            "members": members,
            "count": len(members),
        }

    def _forget_room(self, conn: _Conn, room: str) -> dict[str, object] | None:
        """Take the socket out of `room` in the chat's state (the caller then leaves the
        server room); the `left` presence to send, None if it was not in the room."""
        sid = conn.sid
        self.typing.stop(room, sid)
        shown = self.presence.leave(sid, room)
        if shown is None:
            return None
        return self._presence_payload(room, "left", shown)

    async def _on_leave(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
        self._spend_control(conn)
        room = parse_room(args, "channel_leave")
        payload = self._forget_room(conn, room)
        if payload is not None:  # leaving a room one is not in is fine: nothing to say
            self._save_state(conn)
            await conn.socket.leave(_server_room(room))
            await self._send_presence(room, payload)
            self.rooms_feed.poke()
        return {"ok": True, "channel": room}

    # -- messages --------------------------------------------------------------------------
    async def _on_message(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
        if self._closing:
            # Shutting down: not stored, not answered. The connection closes first, and the
            # client sends the message again (same client_id) once reconnected.
            await conn.closed.wait()
            return {"ok": False, "error": {"code": UNAVAILABLE, "message": "shutting down"}}
        if conn.messages is not None and not conn.messages.take():
            raise ChatError(RATE_LIMITED, "too many messages; slow down")
        request = parse_message(args)
        sid = conn.sid
        room = request.channel
        if room is None:  # the tutorial's way: a plain string goes to the room joined last
            room = self.presence.current(sid)
            if room is None:
                raise ChatError(NOT_IN_ROOM, "join a room before sending messages")
        user = self.presence.shown_as(sid, room)
        if user is None:
            raise ChatError(NOT_IN_ROOM, f"you are not in room {room!r}; join it first")
        # In turn: after this socket's earlier messages, and after the room's earlier ones
        # (whose ids, assigned in the order of the appends below, are smaller).
        previous = (conn.tail, self._room_tails.get(room))
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.tail = self._room_tails[room] = mine
        self._inflight.add(mine)
        try:
            stored = await self._store(room, request.text, user, request.client_id)
            for earlier in previous:
                if earlier is not None:
                    await earlier
            if self._should_broadcast(stored):
                self.typing.stop(room, sid)
                await self.io.to(_server_room(room)).emit("message", stored.to_wire())
        finally:
            _done_after(mine, previous)
            self._inflight.discard(mine)
            if conn.tail is mine:
                conn.tail = None
            if self._room_tails.get(room) is mine:
                del self._room_tails[room]
        reply: Reply = {"ok": True, "id": stored.id, "ts": stored.ts, "channel": room}
        if stored.client_id is not None:
            reply["client_id"] = stored.client_id
        return reply

    def _should_broadcast(self, stored: StoredMessage) -> bool:
        """Whether to broadcast `stored`: not if it answers a retry (same client_id) of a
        message broadcast already, by this run or (being older than it) by an earlier one."""
        if stored.client_id is None:
            return True
        if stored.id in self._recent_set or stored.ts < self._started_ms:
            return False
        self._remember_id(stored.id)
        return True

    async def _store(self, room: str, text: str, user: str, client_id: str | None) -> StoredMessage:
        try:
            return await self.store.append(room, text, user, client_id)
        except InvalidInputError as exc:
            # Validation should have caught it; the store's own check is the last word.
            raise ChatError(INVALID_MESSAGE, str(exc)) from exc
        except StoreError as exc:
            logger.warning("could not store a message in %r: %s", room, exc)
            raise ChatError(UNAVAILABLE, "the message could not be stored; try again") from exc

    async def _on_typing(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
        request = parse_typing(args)
        user = self.presence.shown_as(conn.sid, request.channel)
        if user is None:
            raise ChatError(NOT_IN_ROOM, f"you are not in room {request.channel!r}")
        self.typing.update(request.channel, conn.sid, user, request.typing)
        return {"ok": True}

    async def _on_history(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
        self._spend_control(conn)
        request = parse_history(args)
        try:
            messages = await self.store.history(
                request.channel, before=request.before, after=request.after, limit=request.limit
            )
        except InvalidInputError as exc:
            raise ChatError(BAD_REQUEST, str(exc)) from exc
        except StoreError as exc:
            logger.warning("history of %r unavailable: %s", request.channel, exc)
            raise ChatError(UNAVAILABLE, "history is unavailable right now") from exc
        return {
            "ok": True,
            "channel": request.channel,
            "messages": [m.to_wire() for m in messages],
        }

    # -- names -----------------------------------------------------------------------------
    async def _on_nick(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
        self._spend_control(conn)
        name = parse_nick(args)
        sid = conn.sid
        renames = self.presence.rename(sid, name)  # name_taken: raises, changes nothing
        self._save_state(conn)
        payloads = []
        for rename in renames:
            # Pages show typing by name: the old name stops typing.
            self.typing.stop(rename.room, sid)
            payloads.append(
                (
                    rename.room,
                    self._presence_payload(rename.room, "renamed", rename.user, rename.previous),
                )
            )
        for room, payload in payloads:
            await self._send_presence(room, payload)
        return {"ok": True, "name": name}

    # -- HTTP ------------------------------------------------------------------------------
    async def _healthz(self, request: object) -> Response:
        try:
            store = await asyncio.wait_for(self.store.health(), _HEALTH_TIMEOUT)
        except Exception as exc:  # a health check reports failures, it does not raise them
            store = {"ok": False, "error": str(exc) or type(exc).__name__}
        ok = store.get("ok") is True
        body = {"ok": ok, "store": store, "connections": self.presence.connections}
        return Response.json(body, 200 if ok else 503)


def _done_after(
    future: asyncio.Future[None], earlier: tuple[asyncio.Future[None] | None, ...]
) -> None:
    """Resolve `future` once every one of `earlier` is done (at once if they are): a
    message that failed must not let the ones after it overtake the ones before it."""
    pending = [f for f in earlier if f is not None and not f.done()]
    if not pending:
        future.set_result(None)
        return
    remaining = len(pending)

    def one_done(_: asyncio.Future[None]) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0 and not future.done():
            future.set_result(None)

    for f in pending:
        f.add_done_callback(one_done)


def create_app(
    config: ChatConfig | None = None,
    store: MessageStore | None = None,
    recovery: RecoveryStore | None = None,
) -> ChatApp:
    """The chat app; `store` defaults to a fresh ``memory://`` one (opened by the caller);
    `recovery` (e.g. ``open_recovery_store(url)``) turns connection state recovery on."""
    if store is None:
        from salas.store import open_store

        store = open_store("memory://")
    return ChatApp(config or ChatConfig(), store, recovery)
