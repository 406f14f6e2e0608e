"""What the chat tells rooms, apart from messages: presence, typing and the rooms list."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from salas.chat.config import ChatConfig
from salas.chat.presence import PresenceBackend
from salas.chat.rooms import server_room
from salas.server import Server

__all__ = ["Announcer"]

logger = logging.getLogger("salas.chat")


class Announcer:
    """Builds and sends the `presence`, `typing` and `rooms` events on `io`."""

    def __init__(self, io: Server, presence: PresenceBackend, config: ChatConfig) -> None:
        self.io = io
        self.presence = presence
        self.config = config
        self._last_rooms: list[dict[str, object]] | None = None

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background (from sync callbacks) on the server's task
        registry, logging what it raises."""
        self.io.spawn(coro, name="salas chat announce").add_done_callback(_log_failure)

    def presence_payload(
        self, room: str, event: str, user: str, previous: str | None = None
    ) -> dict[str, object]:
        """The `presence` event for `user` in `room` (members listed while the room is
        small enough); `previous`: the old name, for ``renamed``."""
        count = self.presence.count(room)
        payload: dict[str, object] = {"channel": room, "event": event, "user": user}
        if count <= self.config.presence_members_max:
            payload["members"] = self.presence.members(room)
        payload["count"] = count
        if previous is not None:
            payload["previous"] = previous
        return payload

    async def send_presence(self, room: str, payload: dict[str, object]) -> None:
        """Send a `presence` event to the members of `room`."""
        await self.io.to(server_room(room)).emit("presence", payload)

    def typing_changed(self, room: str, sid: str, user: str, typing: bool) -> None:
        """`TypingTracker`'s callback: tell the room but the typist."""
        payload = {"channel": room, "user": user, "typing": typing}
        # Volatile: a typing note is worthless once late, and it stays out of the recovery log
        # (a reconnecting client need not be replayed who was typing a minute ago).
        self.spawn(self.io.to(server_room(room)).except_(sid).volatile.emit("typing", payload))

    async def broadcast_rooms(self) -> None:
        """`Coalescer`'s flush: send everyone the rooms list, if it changed since last time."""
        rooms = self.presence.room_list(self.config.rooms_list_max)
        if rooms == self._last_rooms:
            return  # changes that cancelled out within the interval
        self._last_rooms = rooms
        await self.io.emit("rooms", {"rooms": rooms})


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("error in a chat broadcast", exc_info=task.exception())
