"""What the chat tells rooms, apart from messages: presence, typing and the rooms list.

The rooms list is per user when some rooms are private: a private room is listed (with
``"private": true``) only to the users who may enter it. Everyone who may enter no private
room gets the same list, in one broadcast as before; the few sockets that may see a private
room (a ``rooms`` claim, or a moderator's role) are left out of it and sent their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from salas.auth import Claims, RoomRules
from salas.chat.config import ChatConfig
from salas.chat.presence import PresenceBackend
from salas.chat.rooms import server_room
from salas.server import Server, Socket

__all__ = ["Announcer"]

logger = logging.getLogger("salas.chat")


@dataclass(eq=False)
class _Viewer:
    """A socket that may see some private room, and the list it was sent last."""

    socket: Socket
    claims: Claims
    last: list[dict[str, object]] | None = None


class Announcer:
    """Builds and sends the `presence`, `typing` and `rooms` events on `io`.

    Args:
        io: The server.
        presence: Who is where.
        config: The chat's settings (list sizes).
        rules: Which rooms are private (default: ``config.private_rooms``).
    """

    def __init__(
        self,
        io: Server,
        presence: PresenceBackend,
        config: ChatConfig,
        rules: RoomRules | None = None,
    ) -> None:
        self.io = io
        self.presence = presence
        self.config = config
        self.rules = rules if rules is not None else RoomRules(config.private_rooms)
        self._last_rooms: list[dict[str, object]] | None = None
        self._viewers: dict[str, _Viewer] = {}

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background on the server's task registry, logging what it raises.

        For sync callbacks."""
        self.io.spawn(coro, name="salas chat announce").add_done_callback(_log_failure)

    # -- presence ----------------------------------------------------------------------------
    def presence_payload(
        self,
        room: str,
        event: str,
        user: str,
        user_id: str,
        *,
        previous: str | None = None,
        by: str | None = None,
    ) -> dict[str, object]:
        """The `presence` event for `user` (`user_id`) in `room`.

        Members and users are listed while the room is small enough; `previous`: the old
        name, for ``renamed``; `by`: the moderator's name, for ``kicked`` and ``banned``."""
        count = self.presence.count(room)
        payload: dict[str, object] = {
            "channel": room,
            "event": event,
            "user": user,
            "user_id": user_id,
        }
        if count <= self.config.presence_members_max:
            users = self.presence.users(room)
            payload["members"] = [entry["name"] for entry in users]
            payload["users"] = users
        payload["count"] = count
        if previous is not None:
            payload["previous"] = previous
        if by is not None:
            payload["by"] = by
        return payload

    async def send_presence(self, room: str, payload: dict[str, object]) -> None:
        """Send a `presence` event to the members of `room`."""
        await self.io.to(server_room(room)).emit("presence", payload)

    # -- typing ------------------------------------------------------------------------------
    def typing_changed(self, room: str, sid: str, user: str, typing: bool) -> None:
        """`TypingTracker`'s callback: tell the room but the typist."""
        payload = {
            "channel": room,
            "user": user,
            "user_id": self.presence.user_id(sid) or sid,
            "typing": typing,
        }
        # Volatile: a typing note is worthless once late, and it stays out of the recovery log
        # (a reconnecting client need not be replayed who was typing a minute ago).
        self.spawn(self.io.to(server_room(room)).except_(sid).volatile.emit("typing", payload))

    # -- the rooms list ----------------------------------------------------------------------
    def sees_private(self, claims: Claims | None) -> bool:
        """Whether a user with these claims may enter some private room.

        Such a user needs a rooms list of their own."""
        if not self.rules or claims is None:
            return False
        return claims.is_moderator or bool(claims.rooms)

    def rooms_for(self, claims: Claims | None) -> list[dict[str, object]]:
        """``[{"name", "count", "private"}]``: the rooms a user with these claims may enter.

        None: without a token. At most ``config.rooms_list_max`` (the most populated)."""
        rules = self.rules
        if not rules:
            rooms = self.presence.room_list(self.config.rooms_list_max)
            return [{**room, "private": False} for room in rooms]
        if not self.sees_private(claims):
            rooms = self.presence.room_list(
                self.config.rooms_list_max, lambda room: not rules.is_private(room)
            )
            return [{**room, "private": False} for room in rooms]
        rooms = self.presence.room_list(
            self.config.rooms_list_max, lambda room: rules.may_enter(claims, room)
        )
        return [{**room, "private": rules.is_private(str(room["name"]))} for room in rooms]

    def add_viewer(self, socket: Socket, claims: Claims | None) -> None:
        """Send `socket` its own rooms list from now on, if it may see a private room."""
        if claims is not None and self.sees_private(claims):
            self._viewers[socket.id] = _Viewer(socket, claims)

    def remove_viewer(self, sid: str) -> None:
        """The socket is gone (or was never a viewer)."""
        self._viewers.pop(sid, None)

    async def broadcast_rooms(self) -> None:
        """`Coalescer`'s flush: send everyone their rooms list, if it changed.

        (Changed since the last one they were sent.)"""
        rooms = self.rooms_for(None)
        if rooms != self._last_rooms:  # else: changes that cancelled out within the interval
            self._last_rooms = rooms
            viewers = list(self._viewers)
            # Local: in a cluster every node sends its own sockets the list.
            target = self.io.local.except_(*viewers) if viewers else self.io.local
            await target.emit("rooms", {"rooms": rooms})
        for viewer in list(self._viewers.values()):
            own = self.rooms_for(viewer.claims)
            if own != viewer.last and viewer.socket.connected:
                viewer.last = own
                await viewer.socket.emit("rooms", {"rooms": own})


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("error in a chat broadcast", exc_info=task.exception())
