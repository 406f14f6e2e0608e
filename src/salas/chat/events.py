"""The chat's socket events (docs/chat-protocol.md): connections and their handlers.

Concurrency: the server runs each event's handler as its own task, so two events of one
socket may interleave at their awaits. Every handler therefore changes the chat's state
(presence, typing, buckets) synchronously before its first await; `message` keeps the
order through `MessageService`.

Connection state recovery: the chat mirrors each socket's name and rooms into
`socket.data` (`salas.chat.session_state`); a recovered socket (`socket.recovered`) is put
back into the chat's bookkeeping from it, also in a process started after the one it
dropped from.

Identity: each socket has a user id (`Conn.user_id`): the token's ``sub`` with token auth
(``socket.data["user"]``, put there by `salas.auth.JwtAuth`), else a guest id made per
connection and kept across recovery. The sockets of one user count as one member of a room
(presence). Private rooms (`salas.auth.RoomRules`) are refused (``forbidden``) to users who
may not enter them; with token auth every join is checked against the bans
(`salas.chat.moderation`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from salas.auth import Claims, JwtAuth, claims_of
from salas.chat.announce import Announcer
from salas.chat.config import ChatConfig
from salas.chat.connection import Conn
from salas.chat.errors import (
    BAD_REQUEST,
    FORBIDDEN,
    INTERNAL,
    NOT_IN_ROOM,
    RATE_LIMITED,
    TOO_MANY_ROOMS,
    UNAVAILABLE,
    ChatError,
)
from salas.chat.identity import guest_name, guest_user_id, name_from_auth
from salas.chat.messages import MessageService
from salas.chat.moderation import Moderation
from salas.chat.presence import Departure, PresenceBackend
from salas.chat.rate_limit import BudgetCounts, EventBudget
from salas.chat.rooms import chat_rooms, server_room
from salas.chat.rooms_feed import Coalescer
from salas.chat.session_state import DATA_KEY, SavedState, load_state
from salas.chat.typing_status import TypingTracker
from salas.chat.validation import parse_history, parse_message, parse_nick, parse_room, parse_typing
from salas.server import Server, Socket
from salas.store import BanStore, InvalidInputError, MessageStore, StoreError

if TYPE_CHECKING:
    from salas.cluster.node import ClusterNode

__all__ = ["ChatEvents", "Reply"]

logger = logging.getLogger("salas.chat")

Reply = dict[str, Any]
"""An event's ack: ``{"ok": true, ...}`` or ``{"ok": false, "error": {"code", "message"}}``."""

# The cluster message asking the nodes to evict a user's sockets from a room.
_EVICT = "evict"

_Handler = Callable[[Conn, tuple[Any, ...]], Awaitable[Reply]]


class ChatEvents:
    """Takes each connecting socket into the chat and handles its events.

    `auth`: the token middleware when token auth is on (it must be in ``io.use``); None for
    anonymous mode. `bans`: the room bans, checked on join with token auth (open)."""

    def __init__(
        self,
        config: ChatConfig,
        store: MessageStore,
        presence: PresenceBackend,
        typing: TypingTracker,
        rooms_feed: Coalescer,
        messages: MessageService,
        announce: Announcer,
        *,
        bans: BanStore,
        auth: JwtAuth | None = None,
        cluster: ClusterNode | None = None,
        budget_counts: BudgetCounts | None = None,
    ) -> None:
        self.config = config
        # Where every socket's event budget sums its refusals (metrics on), or None.
        self.budget_counts = budget_counts
        self.store = store
        self.presence = presence
        self.typing = typing
        self.rooms_feed = rooms_feed
        self.messages = messages
        self.announce = announce
        self.auth = auth
        self.rules = announce.rules
        self.moderation = Moderation(announce.io, store, bans, presence, self.evict)
        # In a cluster, kicks and bans of another node's sockets are carried out there.
        self.cluster = cluster
        if cluster is not None:
            cluster.on_message[_EVICT] = self._on_evict_request
        self._conns: dict[str, Conn] = {}
        handlers: dict[str, _Handler] = {
            "channel_join": self._on_join,
            "channel_leave": self._on_leave,
            "message": self._on_message,
            "typing": self._on_typing,
            "history": self._on_history,
            "nick": self._on_nick,
            **self.moderation.handlers,
        }
        # One handler per event for every socket (`Namespace.on_event`), not a closure per
        # socket and event: the chat's memory per idle connection is its `Conn`.
        self.socket_handlers: dict[str, Callable[..., Any]] = {
            event: self._dispatcher(event, handler) for event, handler in handlers.items()
        }
        self.socket_handlers["disconnect"] = self._on_socket_disconnect

    @property
    def nick_allowed(self) -> bool:
        """Whether users may rename themselves: always without token auth, with it only
        with `ChatConfig.allow_nick`."""
        return self.auth is None or self.config.allow_nick

    # -- connections -----------------------------------------------------------------------
    def install(self, io: Server) -> None:
        """Handle `io`'s connections and their events (main namespace)."""
        io.on("connection", self.on_connection)
        for event, handler in self.socket_handlers.items():
            io.on_event(event, handler)

    def on_connection(self, socket: Socket) -> None:
        """The server's ``connection`` handler."""
        # Sync on purpose: the socket is in the chat's bookkeeping (and a recovered socket
        # is back in its rooms) before any of its events can arrive.
        saved = load_state(socket.data.get(DATA_KEY)) if socket.recovered else None
        claims: Claims | None = None
        if self.auth is not None:
            claims = claims_of(socket)
            if claims is None:
                # Only a recovered socket skips the middleware: one saved without claims
                # (by a server without token auth) is no user of this one.
                logger.info("socket %s refused: recovered without a token", socket.id)
                self.announce.spawn(socket.disconnect())
                return
            if socket.recovered:
                # Recovery skips the middleware, and with it the expiry timer.
                self.auth.watch(socket)
        error: ChatError | None = None
        name: str | None
        if saved is not None:
            name = saved.name
        elif claims is not None:
            name = claims.name
        else:
            name, error = name_from_auth(socket.auth)
        if name is None:
            name = guest_name(self.presence.name_in_use)
        if claims is not None:
            user_id = claims.sub
        elif saved is not None and saved.user_id is not None:
            user_id = saved.user_id
        else:
            user_id = guest_user_id()
        # (Its event budget comes with its first event: see `_dispatcher`.)
        conn = Conn(socket, None, user_id, claims)
        if self._conns.get(socket.id) is not None:  # (cannot happen: a session is taken once)
            self._on_disconnect(self._conns[socket.id], "replaced")
        self._conns[socket.id] = conn
        self.presence.connect(socket.id, name, user_id)
        self.announce.add_viewer(socket, claims)
        stale: list[str] = []
        joined: list[tuple[str, dict[str, object]]] = []
        if socket.recovered:
            stale, joined = self._restore_rooms(conn, saved)
        self._save_state(conn)
        self.announce.spawn(self._welcome(conn, name, error, stale, joined))

    def _restore_rooms(
        self, conn: Conn, saved: SavedState | None
    ) -> tuple[list[str], list[tuple[str, dict[str, object]]]]:
        """Put a recovered socket back into the rooms it was in: those both in its saved
        state and among the server rooms the recovery gave back (whose messages it was
        replayed). (Chat rooms among its server rooms the chat does not keep, `joined`
        presences to send.)"""
        sid = conn.sid
        in_server = chat_rooms(conn.socket.rooms)
        kept: set[str] = set()
        joined: list[tuple[str, dict[str, object]]] = []
        for room, shown in saved.rooms if saved is not None else ():
            if room not in in_server or not self.rules.may_enter(conn.claims, room):
                continue
            if self.config.single_room and kept:
                break
            if len(kept) >= self.config.max_rooms_per_socket:
                break
            kept.add(room)
            shown, _ = self.presence.join(sid, room, prefer=shown)
            if self.presence.user_sockets(room, conn.user_id) == [sid]:  # the user is back
                payload = self.announce.presence_payload(room, "joined", shown, conn.user_id)
                joined.append((room, payload))
        if joined:
            self.rooms_feed.poke()
        return sorted(in_server - kept), joined

    async def _welcome(
        self,
        conn: Conn,
        name: str,
        error: ChatError | None,
        stale: list[str],
        joined: list[tuple[str, dict[str, object]]],
    ) -> None:
        socket = conn.socket
        for room in stale:
            await socket.leave(server_room(room))
        if error is not None:
            await socket.emit("error", {**error.to_wire(), "event": "connect"})
        rooms = self.announce.rooms_for(conn.claims)
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
                "user_id": conn.user_id,
                "role": conn.role,
                "auth": conn.claims is not None,
                "nick_allowed": self.nick_allowed,
            },
        )
        await socket.emit("rooms", {"rooms": rooms})
        # After `welcome` (which tells the socket the names it shows), and only while it is
        # still here: gone already, its `left` has been sent.
        if self._conns.get(sid) is conn:
            for room, payload in joined:
                await self.announce.send_presence(room, payload)

    def _on_socket_disconnect(self, socket: Socket, reason: str) -> None:
        conn = self._conns.get(socket.id)
        if conn is not None and conn.socket is socket:
            self._on_disconnect(conn, reason)

    def _on_disconnect(self, conn: Conn, reason: str) -> None:
        # Sync on purpose: the socket's state is gone before any of its queued handlers run,
        # so none of them can put it back into a room.
        sid = conn.sid
        conn.close()
        if self._conns.get(sid) is not conn:
            return
        del self._conns[sid]
        # (socket.data is left as it is: recovery is saving it for the socket's comeback.)
        self.announce.remove_viewer(sid)
        if self.auth is not None:
            self.auth.release(conn.socket)
        self.typing.stop_all(sid)
        self.announce_departures(self.presence.disconnect(sid))
        logger.debug("socket %s left the chat (%s)", sid, reason)

    def announce_departures(self, departures: list[Departure]) -> None:
        """Tell each room a user left (`left`) whose last socket there went away.

        (Also for a dead node's sockets, on the node that cleans it up.)"""
        for departure in departures:
            if not departure.last:
                continue  # another socket of the user is still there
            payload = self.announce.presence_payload(
                departure.room, "left", departure.user, departure.user_id
            )
            self.announce.spawn(self.announce.send_presence(departure.room, payload))
        if departures:
            self.rooms_feed.poke()

    def _dispatcher(self, event: str, handler: _Handler) -> Callable[..., Awaitable[Reply]]:
        """`event`'s handler for every socket: finds the socket's `Conn`, spends from its
        budget, and answers what `handler` raises."""
        config = self.config
        budgeted = bool(config.message_rate)

        async def handle(socket: Socket, *args: Any) -> Reply:
            conn = self._conns.get(socket.id)
            if conn is None or conn.socket is not socket:
                # Disconnected after this event arrived (or never taken into the chat):
                # nobody to answer, nothing to change.
                return {"ok": False, "error": {"code": BAD_REQUEST, "message": "disconnected"}}
            budget = conn.budget
            if budget is None and budgeted:
                # Made by the first event rather than at connect: an idle connection keeps
                # none, and a bucket made then would still be full now.
                budget = conn.budget = EventBudget(
                    config.message_burst,
                    config.message_rate,
                    config.event_cutoff,
                    counts=self.budget_counts,
                )
            if budget is not None and not budget.spend(event):
                return await self._over_budget(conn, budget, event)
            try:
                return await handler(conn, args)
            except ChatError as error:
                return await self._refuse(conn, event, error)
            except Exception:
                logger.exception("error handling %r from socket %s", event, conn.sid)
                return await self._refuse(conn, event, ChatError(INTERNAL, "internal error"))

        return handle

    async def _refuse(self, conn: Conn, event: str, error: ChatError) -> Reply:
        wire = error.to_wire()
        await conn.socket.emit("error", {**wire, "event": event})
        return {"ok": False, "error": wire}

    async def _over_budget(self, conn: Conn, budget: EventBudget, event: str) -> Reply:
        """An event over the socket's budget: refused; too many in a row, disconnected."""
        error = ChatError(RATE_LIMITED, "too many requests; slow down")
        if not budget.cut_off:
            return await self._refuse(conn, event, error)
        if not conn.cut_off:
            conn.cut_off = True
            logger.warning(
                "disconnecting socket %s: %d events in a row over its rate limit",
                conn.sid,
                budget.refused_in_a_row,
            )
            await conn.socket.disconnect(close=True)
        return {"ok": False, "error": error.to_wire()}

    def _save_state(self, conn: Conn) -> None:
        """Mirror the socket's name and rooms into `socket.data`, which connection state
        recovery saves when the socket drops (session_state)."""
        sid, presence = conn.sid, self.presence
        rooms = tuple((room, presence.shown_as(sid, room) or "") for room in presence.rooms_of(sid))
        state = SavedState(presence.name(sid), rooms, conn.user_id)
        conn.socket.data[DATA_KEY] = state.to_data()

    def _check_access(self, conn: Conn, room: str) -> None:
        """``forbidden`` for a private room this user may not enter."""
        if not self.rules.may_enter(conn.claims, room):
            raise ChatError(FORBIDDEN, f"room {room!r} is private")

    # -- rooms -----------------------------------------------------------------------------
    async def _on_join(self, conn: Conn, args: tuple[Any, ...]) -> Reply:
        room = parse_room(args, "channel_join")
        self._check_access(conn, room)
        if self.auth is not None and not self.presence.in_room(conn.sid, room):
            # The ban check reads the store: the events after this one that depend on the
            # join wait for it (`Conn.joined`), so they still see it as sent before them.
            pending = asyncio.get_running_loop().create_future()
            joining = conn.joining
            if joining is None:
                joining = conn.joining = {}
            previous = joining.get(room)
            joining[room] = pending
            try:
                if previous is not None:
                    await asyncio.shield(previous)
                await self.moderation.check_join(room, conn.user_id)
                if self._conns.get(conn.sid) is not conn:
                    raise ChatError(BAD_REQUEST, "disconnected")
                return await self._join(conn, room, pending)
            finally:
                if not pending.done():
                    pending.set_result(None)
                if joining.get(room) is pending:
                    del joining[room]
        return await self._join(conn, room, None)

    async def _join(self, conn: Conn, room: str, pending: asyncio.Future[None] | None) -> Reply:
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
        left = [(r, p) for r in leaving for was_in, p in [self._forget_room(conn, r)] if was_in]
        shown, new = presence.join(sid, room)
        first = new and presence.user_sockets(room, conn.user_id) == [sid]
        self._save_state(conn)
        if pending is not None:
            pending.set_result(None)  # the state is in place: events waiting may go on
        for r, payload in left:
            await conn.socket.leave(server_room(r))
            if payload is not None:
                await self.announce.send_presence(r, payload)
        # (Re-checked: with an adapter whose leave suspends, the socket may be gone by now,
        # and joining a server room after its disconnect would leave it there for good.)
        if new and self._conns.get(sid) is conn:
            await conn.socket.join(server_room(room))
            if first:  # the user's other sockets there made it a member already
                payload = self.announce.presence_payload(room, "joined", shown, conn.user_id)
                await self.announce.send_presence(room, payload)
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
        users = presence.users(room)
        return {
            "ok": True,
            "channel": room,
            "name": shown,
            "messages": [m.to_wire() for m in messages],
            "members": [user["name"] for user in users],
            "users": users,
            "count": len(users),
            "private": self.rules.is_private(room),
        }

    def _forget_room(self, conn: Conn, room: str) -> tuple[bool, dict[str, object] | None]:
        """Take the socket out of `room` in the chat's state (the caller then leaves the
        server room): (whether it was in the room, the `left` presence to send: None if
        the user stays there through another socket)."""
        sid = conn.sid
        self.typing.stop(room, sid)
        shown = self.presence.leave(sid, room)
        if shown is None:
            return False, None
        if self.presence.user_sockets(room, conn.user_id):
            return True, None
        return True, self.announce.presence_payload(room, "left", shown, conn.user_id)

    async def _on_leave(self, conn: Conn, args: tuple[Any, ...]) -> Reply:
        room = parse_room(args, "channel_leave")
        await conn.joined(room)
        was_in, payload = self._forget_room(conn, room)
        if was_in:  # leaving a room one is not in is fine: nothing to say
            self._save_state(conn)
            await conn.socket.leave(server_room(room))
            if payload is not None:
                await self.announce.send_presence(room, payload)
            self.rooms_feed.poke()
        return {"ok": True, "channel": room}

    async def evict(self, room: str, user_id: str, event: str, by: str, until: int | None) -> bool:
        """Take every socket of `user_id` out of `room` (a kick or a ban): the room is told
        ``presence`` `event` `by` the moderator, each of those sockets ``kicked``. False
        when the user is not in the room."""
        sids = self.presence.user_sockets(room, user_id)
        conns = [conn for sid in sids if (conn := self._conns.get(sid)) is not None]
        # Sockets of other nodes (in a cluster): out of this node's view now, so that the
        # presence below lists the room without them; their nodes do the rest.
        others = [sid for sid in sids if sid not in self._conns]
        if not conns and (not others or self.cluster is None):
            return False
        shown = None
        for sid in others:
            shown = self.presence.leave(sid, room) or shown
        kicked = {"channel": room, "by": by, "banned": event == "banned", "until": until}
        if others and self.cluster is not None:
            self.cluster.send(_EVICT, {"room": room, "user_id": user_id, "kicked": kicked})
        shown = await self._evict_here(conns, room, kicked) or shown
        if shown is not None:
            payload = self.announce.presence_payload(room, event, shown, user_id, by=by)
            await self.announce.send_presence(room, payload)
        self.rooms_feed.poke()
        return True

    async def _evict_here(self, conns: list[Conn], room: str, kicked: dict[str, Any]) -> str | None:
        """Take these sockets of this node out of `room` and tell them (``kicked``); the
        name they showed there."""
        shown = None
        for conn in conns:  # state first, all sockets at once: no await in between
            self.typing.stop(room, conn.sid)
            shown = self.presence.leave(conn.sid, room) or shown
            self._save_state(conn)
        for conn in conns:
            await conn.socket.leave(server_room(room))
        for conn in conns:
            await conn.socket.emit("kicked", kicked)
        return shown

    async def _evict_quietly(self, conns: list[Conn], room: str, kicked: dict[str, Any]) -> None:
        await self._evict_here(conns, room, kicked)

    def _on_evict_request(self, node: str, request: dict[str, Any]) -> None:
        """Another node kicked or banned a user: its sockets here leave the room (that node
        announced it)."""
        room, user_id, kicked = request.get("room"), request.get("user_id"), request.get("kicked")
        if (
            not isinstance(room, str)
            or not isinstance(user_id, str)
            or not isinstance(kicked, dict)
        ):
            return
        sids = self.presence.user_sockets(room, user_id)
        conns = [conn for sid in sids if (conn := self._conns.get(sid)) is not None]
        if conns:
            self.announce.spawn(self._evict_quietly(conns, room, kicked))
            self.rooms_feed.poke()

    # -- messages --------------------------------------------------------------------------
    async def _on_message(self, conn: Conn, args: tuple[Any, ...]) -> Reply:
        if self.messages.closing:
            # Shutting down: not stored, not answered. The connection closes first, and the
            # client sends the message again (same client_id) once reconnected.
            await conn.wait_closed()
            return {"ok": False, "error": {"code": UNAVAILABLE, "message": "shutting down"}}
        request = parse_message(args)
        sid = conn.sid
        room = request.channel
        if room is not None:
            self._check_access(conn, room)
        await conn.joined(room)
        if room is None:  # the tutorial's way: a plain string goes to the room joined last
            room = self.presence.current(sid)
            if room is None:
                raise ChatError(NOT_IN_ROOM, "join a room before sending messages")
        user = self.presence.shown_as(sid, room)
        if user is None:
            raise ChatError(NOT_IN_ROOM, f"you are not in room {room!r}; join it first")
        stored = await self.messages.post(
            room,
            request.text,
            user=user,
            sender=sid,
            client_id=request.client_id,
            user_id=conn.user_id,
        )
        reply: Reply = {"ok": True, "id": stored.id, "ts": stored.ts, "channel": room}
        if stored.client_id is not None:
            reply["client_id"] = stored.client_id
        return reply

    async def _on_typing(self, conn: Conn, args: tuple[Any, ...]) -> Reply:
        request = parse_typing(args)
        self._check_access(conn, request.channel)
        await conn.joined(request.channel)
        user = self.presence.shown_as(conn.sid, request.channel)
        if user is None:
            raise ChatError(NOT_IN_ROOM, f"you are not in room {request.channel!r}")
        self.typing.update(request.channel, conn.sid, user, request.typing)
        return {"ok": True}

    async def _on_history(self, conn: Conn, args: tuple[Any, ...]) -> Reply:
        request = parse_history(args)
        self._check_access(conn, request.channel)
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
    async def _on_nick(self, conn: Conn, args: tuple[Any, ...]) -> Reply:
        if not self.nick_allowed:
            raise ChatError(FORBIDDEN, "names come from your login token here")
        name = parse_nick(args)
        await conn.joined()
        sid = conn.sid
        renames = self.presence.rename(sid, name)  # name_taken: raises, changes nothing
        self._save_state(conn)
        payloads = []
        for rename in renames:
            # Pages show typing by name: the old name stops typing.
            self.typing.stop(rename.room, sid)
            payload = self.announce.presence_payload(
                rename.room, "renamed", rename.user, conn.user_id, previous=rename.previous
            )
            payloads.append((rename.room, payload))
        for room, payload in payloads:
            await self.announce.send_presence(room, payload)
        return {"ok": True, "name": name}
