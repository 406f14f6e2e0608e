"""The chat's socket events (docs/chat-protocol.md): connections and their handlers.

Concurrency: the server runs each event's handler as its own task, so two events of one
socket may interleave at their awaits. Every handler therefore changes the chat's state
(presence, typing, buckets) synchronously before its first await; `message` keeps the
order through `MessageService`.

Connection state recovery: the chat mirrors each socket's name and rooms into
`socket.data` (`salas.chat.session_state`); a recovered socket (`socket.recovered`) is put
back into the chat's bookkeeping from it, also in a process started after the one it
dropped from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from salas.chat.announce import Announcer
from salas.chat.config import ChatConfig
from salas.chat.errors import (
    BAD_REQUEST,
    INTERNAL,
    NOT_IN_ROOM,
    RATE_LIMITED,
    TOO_MANY_ROOMS,
    UNAVAILABLE,
    ChatError,
)
from salas.chat.identity import guest_name, name_from_auth
from salas.chat.messages import MessageService
from salas.chat.presence import PresenceBackend
from salas.chat.rate_limit import EventBudget
from salas.chat.rooms import chat_rooms, server_room
from salas.chat.rooms_feed import Coalescer
from salas.chat.session_state import DATA_KEY, SavedState, load_state
from salas.chat.typing_status import TypingTracker
from salas.chat.validation import parse_history, parse_message, parse_nick, parse_room, parse_typing
from salas.server import Socket
from salas.store import InvalidInputError, MessageStore, StoreError

__all__ = ["ChatEvents", "Reply"]

logger = logging.getLogger("salas.chat")

Reply = dict[str, Any]
"""An event's ack: ``{"ok": true, ...}`` or ``{"ok": false, "error": {"code", "message"}}``."""

_Handler = Callable[["_Conn", tuple[Any, ...]], Awaitable[Reply]]


@dataclass(eq=False)
class _Conn:
    """What the chat keeps per connected socket (besides its rooms, in presence)."""

    socket: Socket
    budget: EventBudget | None  # None: no limit
    # Set once the connection is being closed for flooding (logged once).
    cut_off: bool = False
    # Set when the socket has left the chat (disconnected).
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def sid(self) -> str:
        return self.socket.id


class ChatEvents:
    """Takes each connecting socket into the chat and handles its events."""

    def __init__(
        self,
        config: ChatConfig,
        store: MessageStore,
        presence: PresenceBackend,
        typing: TypingTracker,
        rooms_feed: Coalescer,
        messages: MessageService,
        announce: Announcer,
    ) -> None:
        self.config = config
        self.store = store
        self.presence = presence
        self.typing = typing
        self.rooms_feed = rooms_feed
        self.messages = messages
        self.announce = announce
        self._conns: dict[str, _Conn] = {}
        self._handlers: dict[str, _Handler] = {
            "channel_join": self._on_join,
            "channel_leave": self._on_leave,
            "message": self._on_message,
            "typing": self._on_typing,
            "history": self._on_history,
            "nick": self._on_nick,
        }

    # -- connections -----------------------------------------------------------------------
    def on_connection(self, socket: Socket) -> None:
        """The server's ``connection`` handler."""
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
            EventBudget(config.message_burst, config.message_rate, config.event_cutoff)
            if config.message_rate
            else None,
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
        self.announce.spawn(self._welcome(conn, name, error, stale, joined))

    def _restore_rooms(
        self, conn: _Conn, saved: SavedState | None
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
            if room not in in_server:
                continue
            if self.config.single_room and kept:
                break
            if len(kept) >= self.config.max_rooms_per_socket:
                break
            kept.add(room)
            shown, _ = self.presence.join(sid, room, prefer=shown)
            joined.append((room, self.announce.presence_payload(room, "joined", shown)))
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
            await socket.leave(server_room(room))
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
                await self.announce.send_presence(room, payload)

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
            payload = self.announce.presence_payload(departure.room, "left", departure.user)
            self.announce.spawn(self.announce.send_presence(departure.room, payload))
        if departures:
            self.rooms_feed.poke()
        logger.debug("socket %s left the chat (%s)", sid, reason)

    def _wrap(self, conn: _Conn, event: str, handler: _Handler) -> Callable[..., Awaitable[Reply]]:
        async def handle(*args: Any) -> Reply:
            if self._conns.get(conn.sid) is not conn:
                # Disconnected after this event arrived: nobody to answer, nothing to change.
                return {"ok": False, "error": {"code": BAD_REQUEST, "message": "disconnected"}}
            budget = conn.budget
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

    async def _refuse(self, conn: _Conn, event: str, error: ChatError) -> Reply:
        wire = error.to_wire()
        await conn.socket.emit("error", {**wire, "event": event})
        return {"ok": False, "error": wire}

    async def _over_budget(self, conn: _Conn, budget: EventBudget, event: str) -> Reply:
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

    def _save_state(self, conn: _Conn) -> None:
        """Mirror the socket's name and rooms into `socket.data`, which connection state
        recovery saves when the socket drops (session_state)."""
        sid, presence = conn.sid, self.presence
        rooms = tuple((room, presence.shown_as(sid, room) or "") for room in presence.rooms_of(sid))
        conn.socket.data[DATA_KEY] = SavedState(presence.name(sid), rooms).to_data()

    # -- rooms -----------------------------------------------------------------------------
    async def _on_join(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
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
            await conn.socket.leave(server_room(r))
            await self.announce.send_presence(r, payload)
        # (Re-checked: with an adapter whose leave suspends, the socket may be gone by now,
        # and joining a server room after its disconnect would leave it there for good.)
        if new and self._conns.get(sid) is conn:
            await conn.socket.join(server_room(room))
            payload = self.announce.presence_payload(room, "joined", shown)
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
        return self.announce.presence_payload(room, "left", shown)

    async def _on_leave(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
        room = parse_room(args, "channel_leave")
        payload = self._forget_room(conn, room)
        if payload is not None:  # leaving a room one is not in is fine: nothing to say
            self._save_state(conn)
            await conn.socket.leave(server_room(room))
            await self.announce.send_presence(room, payload)
            self.rooms_feed.poke()
        return {"ok": True, "channel": room}

    # -- messages --------------------------------------------------------------------------
    async def _on_message(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
        if self.messages.closing:
            # Shutting down: not stored, not answered. The connection closes first, and the
            # client sends the message again (same client_id) once reconnected.
            await conn.closed.wait()
            return {"ok": False, "error": {"code": UNAVAILABLE, "message": "shutting down"}}
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
        stored = await self.messages.post(
            room, request.text, user=user, sender=sid, client_id=request.client_id
        )
        reply: Reply = {"ok": True, "id": stored.id, "ts": stored.ts, "channel": room}
        if stored.client_id is not None:
            reply["client_id"] = stored.client_id
        return reply

    async def _on_typing(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
        request = parse_typing(args)
        user = self.presence.shown_as(conn.sid, request.channel)
        if user is None:
            raise ChatError(NOT_IN_ROOM, f"you are not in room {request.channel!r}")
        self.typing.update(request.channel, conn.sid, user, request.typing)
        return {"ok": True}

    async def _on_history(self, conn: _Conn, args: tuple[Any, ...]) -> Reply:
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
        name = parse_nick(args)
        sid = conn.sid
        renames = self.presence.rename(sid, name)  # name_taken: raises, changes nothing
        self._save_state(conn)
        payloads = []
        for rename in renames:
            # Pages show typing by name: the old name stops typing.
            self.typing.stop(rename.room, sid)
            payload = self.announce.presence_payload(
                rename.room, "renamed", rename.user, rename.previous
            )
            payloads.append((rename.room, payload))
        for room, payload in payloads:
            await self.announce.send_presence(room, payload)
        return {"ok": True, "name": name}
