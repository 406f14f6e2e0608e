"""``memory://``: message history in this process's memory, for tests and throw-away chats.

Nothing survives ``close()`` or a restart, and nothing is shared between processes. Every
operation completes without awaiting, so on one event loop each ``append`` is atomic: no
batching is needed and ids are strictly increasing in commit order by construction.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right

from salas.db.common import now_ms
from salas.db.errors import not_open

from .base import (
    HISTORY_LIMIT_DEFAULT,
    StoredMessage,
    check_append,
    check_delete,
    check_history,
)

__all__ = ["MemoryStore"]


def _id(message: StoredMessage) -> int:
    return message.id


class MemoryStore:
    """A :class:`~salas.store.base.MessageStore` kept in dicts and lists.

    Args:
        url: The URL it is reported under (default ``"memory://"``).

    Attributes:
        backend: ``"memory"``.
        url: As given.
    """

    backend = "memory"

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._open = False
        self._last_id = 0
        # Per channel, the live messages in id order (appends only ever add a larger id at
        # the end), so a page is a bisect plus a slice; tombstones leave the list for
        # ``_tombstones``, which keeps pages full without filtering.
        self._channels: dict[str, list[StoredMessage]] = {}
        self._tombstones: dict[tuple[str, int], StoredMessage] = {}
        self._by_client_id: dict[tuple[str, str], StoredMessage] = {}

    async def open(self) -> None:
        """Start accepting messages (idempotent)."""
        self._open = True

    async def close(self) -> None:
        """Stop, and forget every message (ids keep increasing if it is opened again)."""
        self._open = False
        self._channels.clear()
        self._tombstones.clear()
        self._by_client_id.clear()

    async def append(
        self,
        channel: str,
        message: str,
        user: str,
        client_id: str | None = None,
        *,
        user_id: str | None = None,
    ) -> StoredMessage:
        """Store one message and return it; see :meth:`MessageStore.append`.

        Raises:
            InvalidInputError: An argument is not storable text.
            StoreError: The store is not open.
        """
        draft = check_append(channel, message, user, client_id, user_id=user_id)
        if not self._open:
            raise not_open(self.backend)
        if client_id is not None:
            first = self._by_client_id.get((channel, client_id))
            if first is not None:
                return first
        self._last_id += 1
        stored = draft.stored(self._last_id)
        self._channels.setdefault(channel, []).append(stored)
        if client_id is not None:
            self._by_client_id[channel, client_id] = stored
        return stored

    async def history(
        self,
        channel: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = HISTORY_LIMIT_DEFAULT,
    ) -> list[StoredMessage]:
        """A page of a channel's messages, oldest first; see :meth:`MessageStore.history`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open.
        """
        before, after, limit = check_history(channel, before, after, limit)
        if not self._open:
            raise not_open(self.backend)
        messages = self._channels.get(channel, [])
        start = 0 if after is None else bisect_right(messages, after, key=_id)
        end = len(messages) if before is None else bisect_left(messages, before, key=_id)
        if after is not None:
            return messages[start : min(end, start + limit)]
        return messages[max(start, end - limit) : end]

    async def get(self, channel: str, id: int) -> StoredMessage | None:
        """One message by id, tombstones included; see :meth:`MessageStore.get`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open.
        """
        id = check_delete(channel, id, None)
        if not self._open:
            raise not_open(self.backend)
        return self._live(channel, id) or self._tombstones.get((channel, id))

    async def delete(self, channel: str, id: int, *, by: str | None = None) -> StoredMessage | None:
        """Replace a message by its tombstone; see :meth:`MessageStore.delete`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open.
        """
        id = check_delete(channel, id, by)
        if not self._open:
            raise not_open(self.backend)
        live = self._live(channel, id)
        if live is None:
            return self._tombstones.get((channel, id))
        tombstone = dataclasses.replace(live, message="", deleted_at=now_ms(), deleted_by=by)
        messages = self._channels[channel]
        del messages[bisect_left(messages, id, key=_id)]
        self._tombstones[channel, id] = tombstone
        if live.client_id is not None:
            self._by_client_id[channel, live.client_id] = tombstone
        return tombstone

    def _live(self, channel: str, id: int) -> StoredMessage | None:
        messages = self._channels.get(channel, [])
        at = bisect_left(messages, id, key=_id)
        if at < len(messages) and messages[at].id == id:
            return messages[at]
        return None

    async def health(self) -> dict[str, object]:
        """``ok`` while open, with the number of ``channels`` and the ``last_id`` given."""
        if not self._open:
            return {"backend": self.backend, "ok": False, "error": "store is not open"}
        return {
            "backend": self.backend,
            "ok": True,
            "channels": len(self._channels),
            "last_id": self._last_id,
        }
