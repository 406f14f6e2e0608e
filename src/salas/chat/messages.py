"""Posting a message to a room: checked, stored, deduplicated by client_id, broadcast in order.

`MessageService.post` is the one way a message enters the chat: the socket `message` event
goes through it, and so can anything that has no socket (an HTTP API, moderation).

Order: a room's messages are broadcast in the order of their ids, and one sender's in the
order it posted them, although their store writes overlap (so they can share one group
commit): a post's broadcast waits for those of the posts before it in its room and from
its sender.

Duplicates: the store returns the first message stored with a client_id to a retry of it.
The service tells such a retry from a new message by the ids it broadcast recently (and by
`ts`: older than this run, it was broadcast by an earlier one) and does not broadcast it
again; after `_RECENT_IDS` messages a late retry is broadcast again, and clients dedupe by
id. That holds across restarts because `drain` lets every message being stored be
broadcast (and logged for connection state recovery) before the server closes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from salas.chat.errors import INVALID_MESSAGE, INVALID_NAME, UNAVAILABLE, ChatError
from salas.chat.rooms import server_room
from salas.chat.validation import check_client_id, check_room, check_text
from salas.db.common import now_ms
from salas.server import Server
from salas.store import InvalidInputError, MessageStore, StoredMessage, StoreError

__all__ = ["BroadcastClaim", "MessageService"]

logger = logging.getLogger("salas.chat")

# How many recently broadcast ids (of messages with a client_id) are remembered.
_RECENT_IDS = 10_000


class BroadcastClaim(Protocol):
    """In a cluster: which node broadcasts a message stored with a client_id (the first to
    take it), so that a retry stored again through another node is not broadcast again."""

    async def take(self, message: StoredMessage) -> bool:
        """Whether this node is the first to broadcast `message`."""
        ...

    async def release(self, message: StoredMessage) -> None:
        """The broadcast failed: a retry may take it again."""
        ...


class MessageService:
    """Posts messages to the rooms of `io`, storing them in `store` first.

    `before_broadcast(room, sender)` runs just before a message with a sender is broadcast
    (the chat stops that socket's typing indicator there). `claim(message)`: in a cluster,
    whether this node may broadcast a message with a client_id (False: another node stored
    and broadcast it first, this is a retry). Call `start` when the server starts and
    `drain` when it shuts down."""

    def __init__(
        self,
        io: Server,
        store: MessageStore,
        *,
        before_broadcast: Callable[[str, str], object] | None = None,
        claim: BroadcastClaim | None = None,
    ) -> None:
        self.io = io
        self._claim = claim
        self.store = store
        self._before_broadcast = before_broadcast
        self._recent_ids: collections.deque[int] = collections.deque(maxlen=_RECENT_IDS)
        self._recent_set: set[int] = set()
        # Done when the latest post of a room / of a sender has been broadcast (or failed).
        self._room_tails: dict[str, asyncio.Future[None]] = {}
        self._sender_tails: dict[str, asyncio.Future[None]] = {}
        # Posts between their arrival and their broadcast; `drain` waits for them.
        self._inflight: set[asyncio.Future[None]] = set()
        self._closing = False
        # Messages with an earlier `ts` were stored (and broadcast) by an earlier run.
        self._started_ms = now_ms()

    @property
    def closing(self) -> bool:
        """Whether `drain` has begun: posts are refused from then on."""
        return self._closing

    def start(self) -> None:
        """A run of the server begins: what was stored before it was broadcast before it."""
        self._started_ms = now_ms()

    async def post(
        self,
        room: str,
        text: str,
        *,
        user: str,
        sender: str | None = None,
        client_id: str | None = None,
        user_id: str | None = None,
    ) -> StoredMessage:
        """Store `text` in `room` as posted by `user` (the name shown), then broadcast it to
        the room; the stored message.

        `user_id`: the poster's stable id (stored, and sent as the message's ``user_id``;
        who may delete it is decided by it); None for none.

        `sender`: who posts (the socket path passes the socket id); one sender's messages
        are broadcast in the order posted. `client_id`: the client's id for the message; a
        post with one already stored returns the message stored first, without broadcasting
        it again. `room` and `text` are trimmed as `salas.chat.validation` says.

        Raises `ChatError`: ``invalid_room``, ``invalid_message``, ``invalid_name`` (empty
        `user`) or ``bad_request`` (client_id) for bad input, ``unavailable`` when the store
        fails or the service is draining. Returns once the message has been broadcast."""
        if self._closing:
            raise ChatError(UNAVAILABLE, "the chat is shutting down")
        room = check_room(room)
        text = check_text(text)
        client_id = check_client_id(client_id)
        if not isinstance(user, str) or not user.strip():
            raise ChatError(INVALID_NAME, "a message needs the name of its user")
        # In turn: after the sender's earlier messages, and after the room's earlier ones
        # (whose ids, assigned in the order of the appends below, are smaller). Taken before
        # the first await, so the order is the order of the calls.
        previous = (
            self._sender_tails.get(sender) if sender is not None else None,
            self._room_tails.get(room),
        )
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._room_tails[room] = mine
        if sender is not None:
            self._sender_tails[sender] = mine
        self._inflight.add(mine)
        try:
            stored = await self._store(room, text, user, client_id, user_id)
            for earlier in previous:
                if earlier is not None:
                    await earlier
            if self._should_broadcast(stored) and (
                self._claim is None or stored.client_id is None or await self._claim.take(stored)
            ):
                if sender is not None and self._before_broadcast is not None:
                    self._before_broadcast(room, sender)
                await self._broadcast(stored)
        finally:
            _done_after(mine, previous)
            self._inflight.discard(mine)
            if sender is not None and self._sender_tails.get(sender) is mine:
                del self._sender_tails[sender]
            if self._room_tails.get(room) is mine:
                del self._room_tails[room]
        return stored

    async def _broadcast(self, stored: StoredMessage) -> None:
        """Send `stored` to its room; if that fails (a cluster's Redis away), forget that it
        was sent, so that the client's retry (same client_id) is broadcast."""
        try:
            await self.io.to(server_room(stored.channel)).emit("message", stored.to_wire())
        except Exception as exc:
            self._recent_set.discard(stored.id)
            if self._claim is not None and stored.client_id is not None:
                with contextlib.suppress(Exception):
                    await self._claim.release(stored)
            logger.warning("could not broadcast message %d: %s", stored.id, exc)
            raise ChatError(
                UNAVAILABLE, "the message was stored but not sent to every member; send it again"
            ) from exc

    async def drain(self, timeout: float) -> None:
        """Refuse posts from now on, and wait up to `timeout` seconds for the messages being
        stored to be broadcast."""
        self._closing = True
        if self._inflight:
            _, late = await asyncio.wait(set(self._inflight), timeout=timeout)
            if late:
                logger.warning("shutting down with %d messages still being stored", len(late))

    async def _store(
        self, room: str, text: str, user: str, client_id: str | None, user_id: str | None
    ) -> StoredMessage:
        try:
            return await self.store.append(room, text, user, client_id, user_id=user_id)
        except InvalidInputError as exc:
            # Validation should have caught it; the store's own check is the last word.
            raise ChatError(INVALID_MESSAGE, str(exc)) from exc
        except StoreError as exc:
            logger.warning("could not store a message in %r: %s", room, exc)
            raise ChatError(UNAVAILABLE, "the message could not be stored; try again") from exc

    def _should_broadcast(self, stored: StoredMessage) -> bool:
        """Whether to broadcast `stored`: not if it answers a retry (same client_id) of a
        message broadcast already, by this run or (being older than it) by an earlier one."""
        if stored.client_id is None:
            return True
        if stored.id in self._recent_set or stored.ts < self._started_ms:
            return False
        if len(self._recent_ids) == self._recent_ids.maxlen:
            self._recent_set.discard(self._recent_ids[0])
        self._recent_ids.append(stored.id)
        self._recent_set.add(stored.id)
        return True


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
