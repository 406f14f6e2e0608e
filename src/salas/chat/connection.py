"""`Conn`: what the chat keeps per connected socket, besides its rooms (in presence)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from salas.auth import Claims
from salas.chat.rate_limit import EventBudget
from salas.server import Socket

__all__ = ["Conn"]


@dataclass(eq=False)
class Conn:
    """One connected socket of the chat: its budget, who it is, and its pending joins.

    Attributes:
        socket: The server's socket.
        budget: Its event budget; None for no limit.
        user_id: Its user: the token's ``sub``, or a guest id (``guest-`` and 12 hex).
        claims: The verified token's claims; None without token auth.
        cut_off: Set once the connection is being closed for flooding (logged once).
        closed: Set when the socket has left the chat (disconnected).
        joining: Joins of this socket waiting for their ban check, by room: a `message`,
            `typing` or `channel_leave` that follows one waits for it, so that events keep
            the order they were sent in.
    """

    socket: Socket
    budget: EventBudget | None
    user_id: str
    claims: Claims | None = None
    cut_off: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    joining: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    @property
    def sid(self) -> str:
        """The socket's id."""
        return self.socket.id

    @property
    def role(self) -> str:
        """``member``, ``moderator`` or ``admin`` (always ``member`` without a token)."""
        return self.claims.role if self.claims is not None else "member"

    @property
    def is_moderator(self) -> bool:
        """Whether this user may delete any message, kick, ban and unban."""
        return self.claims is not None and self.claims.is_moderator

    async def joined(self, room: str | None = None) -> None:
        """Wait for this socket's pending join of `room` (None: of every room) to finish."""
        pending = (
            list(self.joining.values())
            if room is None
            else [self.joining[room]]
            if room in self.joining
            else []
        )
        for future in pending:
            await asyncio.shield(future)
