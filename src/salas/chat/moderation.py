"""Moderation: deleting messages, kicking and banning users from rooms, lifting bans.

The events ``delete_message``, ``kick``, ``ban`` and ``unban`` (docs/chat-protocol.md,
"Identity and moderation"). Who may do what:

- ``delete_message``: the author (same user id) or a moderator/admin, who must be in the
  room. The store keeps a tombstone; the room gets ``message_deleted`` once (a repeat
  answers ok without a second broadcast), broadcast like a message so that connection
  state recovery replays it to a client that was away.
- ``kick`` (in the room), ``ban`` and ``unban``: moderators and admins. The user's every
  socket leaves the room and is told (``kicked``); the room sees ``presence`` ``kicked`` or
  ``banned``. Bans are kept in a :class:`~salas.store.BanStore`, checked on every join.

Each action logs one INFO line: ``moderation action=... channel=... user_id=... by=...``.
Taking users out of a room is the chat's own bookkeeping (`Evict`, from
:mod:`salas.chat.events`); this module decides and records.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from salas.chat.connection import Conn
from salas.chat.errors import (
    BAD_REQUEST,
    BANNED,
    FORBIDDEN,
    NOT_FOUND,
    NOT_IN_ROOM,
    UNAVAILABLE,
    ChatError,
)
from salas.chat.identity import check_user_id
from salas.chat.presence import PresenceBackend
from salas.chat.rooms import server_room
from salas.chat.validation import check_room
from salas.db.common import now_ms
from salas.engine.logsafe import printable
from salas.server import Server
from salas.store import Ban, BanStore, InvalidInputError, MessageStore, StoreError

__all__ = ["MAX_BAN_SECONDS", "Evict", "Moderation", "log_action"]

logger = logging.getLogger("salas.chat")

Reply = dict[str, Any]

# A timed ban lasts at most a year; longer is what a permanent one is for.
MAX_BAN_SECONDS = 365 * 86400
# How long a ban written by this process overrides what a join read from the store: far
# longer than one read of it takes.
_RECENT_SECONDS = 5.0


class Evict(Protocol):
    """Take every socket of `user_id` out of `room`: tell the room ``presence`` `event`
    (``kicked`` or ``banned``, ``by`` the moderator's name) and each of those sockets
    ``kicked``; False when the user is not in the room (nothing is sent)."""

    def __call__(
        self, room: str, user_id: str, event: str, by: str, until: int | None
    ) -> Awaitable[bool]: ...


def _field(value: object) -> str:
    """One value of a log line: control characters escaped, quoted when it has spaces."""
    text = printable(value)
    if not text or any(ch.isspace() or ch in '"=' for ch in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def log_action(action: str, **fields: object) -> None:
    """Log one moderation action at INFO: ``moderation action=<action> key=value ...``."""
    parts = " ".join(f"{key}={_field(value)}" for key, value in fields.items())
    logger.info("moderation action=%s %s", action, parts)


def _object(args: tuple[Any, ...], event: str, shape: str) -> dict[str, Any]:
    if not args or not isinstance(args[0], dict):
        raise ChatError(BAD_REQUEST, f"{event} takes {shape}")
    arg: dict[str, Any] = args[0]
    return arg


def _message_id(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ChatError(BAD_REQUEST, "delete_message.id must be a message id")
    return value


def _ban_seconds(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_BAN_SECONDS:
        raise ChatError(
            BAD_REQUEST, f"ban.seconds must be a whole number from 1 to {MAX_BAN_SECONDS}"
        )
    return value


class Moderation:
    """The moderation events on `io` (see the module).

    Args:
        io: The server (``message_deleted`` goes to the room through it).
        store: The messages (``get`` and ``delete``).
        bans: The bans; the caller opens and closes it.
        presence: Who is where.
        evict: Takes a user out of a room (the chat's events do it).
    """

    def __init__(
        self,
        io: Server,
        store: MessageStore,
        bans: BanStore,
        presence: PresenceBackend,
        evict: Evict,
    ) -> None:
        self.io = io
        self.store = store
        self.bans = bans
        self.presence = presence
        self._evict = evict
        # Deletions under way, so that two at once broadcast one `message_deleted`.
        self._deleting: set[tuple[str, int]] = set()
        # Bans and unbans made by this process, read synchronously by a join that was
        # checking the store while one was being written.
        # (Each value a 1-tuple of its own, so a timer forgets only the entry it was set for.)
        self._recent: dict[tuple[str, str], tuple[Ban | None]] = {}
        self.handlers: dict[str, Callable[[Conn, tuple[Any, ...]], Awaitable[Reply]]] = {
            "delete_message": self.delete_message,
            "kick": self.kick,
            "ban": self.ban,
            "unban": self.unban,
        }

    def _name(self, conn: Conn, room: str) -> str:
        """The name `conn` shows in `room`, or the name it chose when it is not there."""
        return self.presence.shown_as(conn.sid, room) or self.presence.name(conn.sid)

    def _require_moderator(self, conn: Conn, event: str) -> None:
        if not conn.is_moderator:
            raise ChatError(FORBIDDEN, f"{event} is for moderators and admins")

    # -- joins -----------------------------------------------------------------------------
    async def check_join(self, room: str, user_id: str) -> None:
        """Refuse (``banned``) a user banned from `room`; ``unavailable`` if the bans cannot
        be read (a ban must not be skipped because the database hiccuped)."""
        try:
            ban = await self.bans.is_banned(room, user_id)
        except StoreError as exc:
            logger.warning("bans of %r unavailable on join: %s", printable(room), exc)
            raise ChatError(UNAVAILABLE, "cannot check bans right now; try again") from exc
        key = (room, user_id)
        recent = self._recent.get(key)
        if recent is not None:  # written by this process meanwhile: newer than what was read
            ban = recent[0]
        if ban is not None and ban.active(now_ms()):
            until = "for good" if ban.until_ms is None else f"until {ban.until_ms} (ms)"
            raise ChatError(BANNED, f"you are banned from room {room!r} {until}")

    # -- events ----------------------------------------------------------------------------
    async def delete_message(self, conn: Conn, args: tuple[Any, ...]) -> Reply:
        """``delete_message {channel, id}`` → ``{ok, channel, id}``."""
        arg = _object(args, "delete_message", "{channel, id}")
        room = check_room(arg.get("channel"))
        message_id = _message_id(arg.get("id"))
        if not self.presence.in_room(conn.sid, room):
            raise ChatError(NOT_IN_ROOM, f"you are not in room {room!r}")
        reply: Reply = {"ok": True, "channel": room, "id": message_id}
        key = (room, message_id)
        try:
            message = await self.store.get(room, message_id)
            if message is None:
                raise ChatError(NOT_FOUND, f"room {room!r} has no message {message_id}")
            if message.user_id != conn.user_id and not conn.is_moderator:
                raise ChatError(FORBIDDEN, "only its author or a moderator may delete a message")
            if message.deleted or key in self._deleting:
                return reply  # idempotent: deleted already (or being deleted), said once
            self._deleting.add(key)
            try:
                await self.store.delete(room, message_id, by=conn.user_id)
            finally:
                self._deleting.discard(key)
        except InvalidInputError as exc:
            raise ChatError(BAD_REQUEST, str(exc)) from exc
        except StoreError as exc:
            logger.warning("could not delete a message in %r: %s", printable(room), exc)
            raise ChatError(UNAVAILABLE, "the message could not be deleted; try again") from exc
        by = self._name(conn, room)
        log_action("delete", channel=room, id=message_id, user_id=message.user_id, by=conn.user_id)
        # Not volatile: logged for recovery like a message, so a client that was away
        # when it happened gets it with the messages it missed.
        payload = {"channel": room, "id": message_id, "by": by}
        await self.io.to(server_room(room)).emit("message_deleted", payload)
        return reply

    async def kick(self, conn: Conn, args: tuple[Any, ...]) -> Reply:
        """``kick {channel, user_id}`` → ``{ok}``."""
        self._require_moderator(conn, "kick")
        arg = _object(args, "kick", "{channel, user_id}")
        room = check_room(arg.get("channel"))
        target = check_user_id(arg.get("user_id"))
        if not self.presence.in_room(conn.sid, room):
            raise ChatError(NOT_IN_ROOM, f"you are not in room {room!r}")
        if target == conn.user_id:
            raise ChatError(BAD_REQUEST, "you cannot kick yourself")
        if not await self._evict(room, target, "kicked", self._name(conn, room), None):
            raise ChatError(NOT_FOUND, f"{target!r} is not in room {room!r}")
        log_action("kick", channel=room, user_id=target, by=conn.user_id)
        return {"ok": True}

    async def ban(self, conn: Conn, args: tuple[Any, ...]) -> Reply:
        """``ban {channel, user_id, seconds?}`` → ``{ok, until}`` (ms, or None: for good)."""
        self._require_moderator(conn, "ban")
        arg = _object(args, "ban", "{channel, user_id, seconds?}")
        room = check_room(arg.get("channel"))
        target = check_user_id(arg.get("user_id"))
        seconds = _ban_seconds(arg.get("seconds"))
        if target == conn.user_id:
            raise ChatError(BAD_REQUEST, "you cannot ban yourself")
        until = None if seconds is None else now_ms() + seconds * 1000
        # Before the first await: a join of the target checking the store meanwhile sees it.
        key = (room, target)
        entry = self._recent[key] = (Ban(room, target, until, conn.user_id, now_ms()),)
        try:
            ban = await self.bans.ban(room, target, until, conn.user_id)
        except (InvalidInputError, StoreError) as exc:
            self._forget(key, entry)
            logger.warning("could not store a ban in %r: %s", printable(room), exc)
            raise ChatError(UNAVAILABLE, "the ban could not be stored; try again") from exc
        self._forget_later(key, entry)
        log_action("ban", channel=room, user_id=target, by=conn.user_id, until=until or "never")
        await self._evict(room, target, "banned", self._name(conn, room), ban.until_ms)
        return {"ok": True, "until": ban.until_ms}

    async def unban(self, conn: Conn, args: tuple[Any, ...]) -> Reply:
        """``unban {channel, user_id}`` → ``{ok, lifted}``."""
        self._require_moderator(conn, "unban")
        arg = _object(args, "unban", "{channel, user_id}")
        room = check_room(arg.get("channel"))
        target = check_user_id(arg.get("user_id"))
        key = (room, target)
        entry: tuple[Ban | None] = (None,)
        self._recent[key] = entry
        try:
            lifted = await self.bans.unban(room, target)
        except (InvalidInputError, StoreError) as exc:
            self._forget(key, entry)
            logger.warning("could not lift a ban in %r: %s", printable(room), exc)
            raise ChatError(UNAVAILABLE, "the ban could not be lifted; try again") from exc
        self._forget_later(key, entry)
        log_action("unban", channel=room, user_id=target, by=conn.user_id, lifted=lifted)
        return {"ok": True, "lifted": lifted}

    def _forget(self, key: tuple[str, str], entry: tuple[Ban | None]) -> None:
        if self._recent.get(key) is entry:
            del self._recent[key]

    def _forget_later(self, key: tuple[str, str], entry: tuple[Ban | None]) -> None:
        """The write is in the store: joins from now on read it there. Kept a moment longer
        for the joins that read the store before it landed."""
        asyncio.get_running_loop().call_later(_RECENT_SECONDS, self._forget, key, entry)
