"""`Conn`: what the chat keeps per connected socket, besides its rooms (in presence).

A server holds one per connection, most of them idle: it has slots, and what only some
connections need (a future to wait for the disconnection, the table of joins in progress)
is made when first needed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from salas.auth import Claims
from salas.chat.rate_limit import EventBudget
from salas.server import Socket

__all__ = ["Conn"]


@dataclass(eq=False, slots=True)
class Conn:
    """One connected socket of the chat: its budget, who it is, and its pending joins.

    Attributes:
        socket: The server's socket.
        budget: Its event budget; None for no limit, or before its first event.
        user_id: Its user: the token's ``sub``, or a guest id (``guest-`` and 12 hex).
        claims: The verified token's claims; None without token auth.
        cut_off: Set once the connection is being closed for flooding (logged once).
        closed: Set when the socket has left the chat (disconnected): see `close`.
        joining: Joins of this socket waiting for their ban check, by room: a `message`,
            `typing` or `channel_leave` that follows one waits for it, so that events keep
            the order they were sent in. None until the first such join.
    """

    socket: Socket
    budget: EventBudget | None
    user_id: str
    claims: Claims | None = None
    cut_off: bool = False
    closed: bool = False
    joining: dict[str, asyncio.Future[None]] | None = None
    # What `wait_closed` waits on, made by its first call.
    _gone: asyncio.Future[None] | None = field(default=None, init=False, repr=False)

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

    def close(self) -> None:
        """The socket has left the chat: `closed`, and `wait_closed` returns."""
        self.closed = True
        gone = self._gone
        if gone is not None and not gone.done():
            gone.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until `close` has been called."""
        if self.closed:
            return
        gone = self._gone
        if gone is None:
            gone = self._gone = asyncio.get_running_loop().create_future()
        # Shielded: one waiter cancelled must not cancel the future the others wait on.
        await asyncio.shield(gone)

    async def joined(self, room: str | None = None) -> None:
        """Wait for this socket's pending join of `room` (None: of every room) to finish."""
        joining = self.joining
        if not joining:
            return
        pending = (
            list(joining.values()) if room is None else [joining[room]] if room in joining else []
        )
        for future in pending:
            await asyncio.shield(future)
