"""The store's contract: what a stored chat message is, what every backend does, its errors.

Every backend (``memory``, ``sqlite``, ``postgres``) implements :class:`MessageStore`
exactly; ``tests/store/test_conformance.py`` runs one suite over all of them.

Contract, in short:

- ``append`` returns only once the message is durably stored, so the chat may ack its
  sender. Ids are store-wide, ``> 0`` and strictly increasing in commit order: a reader
  paging with ``after=`` never misses a message committed later with a smaller id.
- ``append`` is idempotent by ``(channel, client_id)`` when ``client_id`` is given: a
  repeat stores nothing and returns the first message (same id, ts, text, user).
- ``history`` returns oldest first; ``before=`` pages back, ``after=`` pages forward,
  both together bound a range (the first ``limit`` messages strictly between them);
  ``limit`` is clamped to ``1..STORE_PAGE_MAX`` (500).
- ``delete`` leaves a tombstone: the text is overwritten (``""``), the id, author, user
  id and timestamps stay, so ids are never reused and pages stay consistent. ``history``
  skips tombstones, and its pages are still full: ``limit`` live messages when there are
  that many in the range. ``get`` returns tombstones too (``deleted`` true). Deleting
  again changes nothing and returns the same tombstone.
- Text that no backend can store the same way (a NUL character, lone surrogates) is
  refused up front with :class:`InvalidInputError`, on every backend, before it is queued
  — one bad message must never fail a whole group-commit batch of other users' messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from salas.db.common import INT64_MAX, INT64_MIN, now_ms, unstorable
from salas.db.errors import StoreError

__all__ = [
    "HISTORY_LIMIT_DEFAULT",
    "STORE_PAGE_MAX",
    "Draft",
    "InvalidInputError",
    "MessageStore",
    "StoredMessage",
    "check_append",
    "check_delete",
    "check_history",
]

#: How many messages ``history`` returns when no ``limit`` is given.
HISTORY_LIMIT_DEFAULT = 50
#: The most messages one ``history`` call returns, whatever ``limit`` asks: a bound on one
#: query's work (an application may accept less from its clients).
STORE_PAGE_MAX = 500


class InvalidInputError(StoreError, ValueError):
    """An argument the store refuses (wrong type, NUL character, text that is not Unicode).

    Both a :class:`~salas.db.errors.StoreError` and a :class:`ValueError`. Raised before
    anything is queued, so nothing of the call is stored.
    """


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One chat message as the store keeps it.

    Attributes:
        id: Store-wide id, ``> 0``, strictly increasing in commit order.
        channel: The room it was posted to.
        message: Its text.
        user: Who posted it (kept in the ``author`` column of the SQL backends).
        ts: When ``append`` accepted it, in milliseconds since the epoch.
        client_id: The sender's deduplication key, or None.
        user_id: The sender's stable user id (a token's ``sub``), or None when the chat
            runs without identities.
        deleted_at: When ``delete`` made it a tombstone, in ms since the epoch; None for a
            live message. A tombstone's ``message`` is ``""``.
        deleted_by: Who deleted it, as ``delete`` was told (None if not told or live).
    """

    id: int
    channel: str
    message: str
    user: str
    ts: int
    client_id: str | None = None
    user_id: str | None = None
    deleted_at: int | None = None
    deleted_by: str | None = None

    @property
    def deleted(self) -> bool:
        """Whether this is a tombstone left by ``delete``."""
        return self.deleted_at is not None

    def to_wire(self) -> dict[str, object]:
        """The ``message`` event's payload: a superset of the seed's ``{channel, message}``.

        Returns:
            ``{id, channel, message, user, ts}``, plus ``client_id`` and ``user_id`` when
            there are, and ``deleted: True`` for a tombstone.
        """
        wire: dict[str, object] = {
            "id": self.id,
            "channel": self.channel,
            "message": self.message,
            "user": self.user,
            "ts": self.ts,
        }
        if self.client_id is not None:
            wire["client_id"] = self.client_id
        if self.user_id is not None:
            wire["user_id"] = self.user_id
        if self.deleted_at is not None:
            wire["deleted"] = True
        return wire


@dataclass(frozen=True, slots=True)
class Draft:
    """A message accepted by ``append`` and waiting for its batch to be written."""

    channel: str
    message: str
    user: str
    client_id: str | None
    ts: int
    user_id: str | None = None

    def stored(self, id: int) -> StoredMessage:
        """The stored message this draft becomes under ``id``."""
        return StoredMessage(
            id, self.channel, self.message, self.user, self.ts, self.client_id, self.user_id
        )


@runtime_checkable
class MessageStore(Protocol):
    """Message history persistence, as the chat layer uses it (see the module's contract).

    Made by :func:`~salas.store.open_store` from a URL. Every method but ``open`` and
    ``health`` raises :class:`~salas.db.errors.StoreError` while the store is not open.

    Attributes:
        url: The URL the store was opened from (for logs and health reports).
    """

    url: str

    async def open(self) -> None:
        """Connect, and create the schema on first start (idempotent).

        Raises:
            StoreError: The database cannot be opened or reached, or its schema created.
        """
        ...

    async def close(self) -> None:
        """Write what is still queued, then close; ``append`` fails afterwards.

        Idempotent. The memory store forgets its messages.
        """
        ...

    async def append(
        self,
        channel: str,
        message: str,
        user: str,
        client_id: str | None = None,
        *,
        user_id: str | None = None,
    ) -> StoredMessage:
        """Store one message durably and return it.

        Returns only once the message is committed, so the sender may be acknowledged.
        Idempotent by ``(channel, client_id)``: a repeat stores nothing.

        Args:
            channel: The room it is posted to.
            message: Its text.
            user: Who posts it.
            client_id: The sender's deduplication key, or None for none.
            user_id: The sender's stable user id, or None for none (kept for ``get``, so
                that the chat can check who may delete it).

        Returns:
            The stored message; for a repeated ``client_id`` in ``channel``, the first
            message stored with it (same id, ts, text and user; a tombstone if it has been
            deleted since: a retry never brings deleted text back).

        Raises:
            InvalidInputError: An argument is not a str, contains a NUL character or is
                not valid Unicode.
            StoreError: The store is not open, or the write failed (then nothing of the
                call's batch was stored, except when a PostgreSQL connection dropped
                while committing: retry with the same ``client_id`` to find out).
        """
        ...

    async def history(
        self,
        channel: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = HISTORY_LIMIT_DEFAULT,
    ) -> list[StoredMessage]:
        """A page of a channel's live messages, oldest first (tombstones are skipped).

        Without bounds, the latest ``limit`` messages. ``before`` pages back (the latest
        ``limit`` messages with a smaller id), ``after`` pages forward (the first
        ``limit`` with a larger id), both together the first ``limit`` strictly between.

        Args:
            channel: The room.
            before: Only messages with an id below it; None for no bound.
            after: Only messages with an id above it; None for no bound.
            limit: How many messages at most (default :data:`HISTORY_LIMIT_DEFAULT`, 50),
                clamped to ``1..STORE_PAGE_MAX`` (500).

        Returns:
            The messages, oldest first; empty for an unknown channel. Deleted messages
            are not in it and do not count against ``limit``: a page is short only at the
            end of the range.

        Raises:
            InvalidInputError: ``channel`` is not storable text, ``before`` or ``after``
                is not an int or None, or ``limit`` is not an int.
            StoreError: The store is not open, or the read failed.
        """
        ...

    async def get(self, channel: str, id: int) -> StoredMessage | None:
        """One message of a channel by id, tombstones included.

        Args:
            channel: The room.
            id: The message's id.

        Returns:
            The message (``deleted`` true for a tombstone), or None when ``channel`` has no
            message with that id (unknown, or another channel's).

        Raises:
            InvalidInputError: ``channel`` is not storable text or ``id`` is not an int.
            StoreError: The store is not open, or the read failed.
        """
        ...

    async def delete(self, channel: str, id: int, *, by: str | None = None) -> StoredMessage | None:
        """Delete one message, leaving a tombstone; idempotent.

        The text is overwritten with ``""`` (not merely flagged); the id, author, user id,
        ``ts`` and ``client_id`` stay, with ``deleted_at`` and ``deleted_by`` set. The
        store checks no permission: the caller decides who may delete what (``get``
        first). Deleting a tombstone again changes nothing.

        Args:
            channel: The room the message is in.
            id: The message's id.
            by: Who deletes it (a user id), recorded as ``deleted_by``; None for untold.

        Returns:
            The tombstone (for a repeat, the first deletion's, same ``deleted_at`` and
            ``deleted_by``), or None when ``channel`` has no message with that id.

        Raises:
            InvalidInputError: ``channel`` or ``by`` is not storable text, or ``id`` is not
                an int.
            StoreError: The store is not open, or the write failed.
        """
        ...

    async def health(self) -> dict[str, object]:
        """Whether the store works, for health checks; never raises for a store fault.

        Returns:
            ``{"backend": ..., "ok": True, ...}`` with backend-specific details, or
            ``{"backend": ..., "ok": False, "error": ...}`` when the store is not open or
            its database does not answer.
        """
        ...


def _check_text(name: str, value: object) -> None:
    problem = unstorable(value)
    if problem is not None:
        raise InvalidInputError(f"{name} {problem}")


def check_append(
    channel: str,
    message: str,
    user: str,
    client_id: str | None,
    *,
    user_id: str | None = None,
    now: int | None = None,
) -> Draft:
    """Validate ``append``'s arguments and stamp the message.

    Args:
        channel: As ``append``'s.
        message: As ``append``'s.
        user: As ``append``'s.
        client_id: As ``append``'s.
        user_id: As ``append``'s.
        now: The timestamp in ms since the epoch; None for the current time.

    Returns:
        The draft to commit.

    Raises:
        InvalidInputError: An argument is not storable text.
    """
    _check_text("channel", channel)
    _check_text("message", message)
    _check_text("user", user)
    if client_id is not None:
        _check_text("client_id", client_id)
    if user_id is not None:
        _check_text("user_id", user_id)
    return Draft(channel, message, user, client_id, now_ms() if now is None else now, user_id)


def _check_id(name: str, value: object) -> int | None:
    if value is None:
        return None
    # bool is an int subclass, but ``before=True`` is a caller's bug, not an id.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"{name} must be an int or None, not {type(value).__name__}")
    return max(INT64_MIN, min(INT64_MAX, value))


def check_history(
    channel: str, before: int | None, after: int | None, limit: int
) -> tuple[int | None, int | None, int]:
    """Validate ``history``'s arguments: ids clamped to 64 bits, limit to 1..STORE_PAGE_MAX.

    Returns:
        ``(before, after, limit)``, clamped.

    Raises:
        InvalidInputError: ``channel`` is not storable text, ``before`` or ``after`` is not
            an int or None, or ``limit`` is not an int.
    """
    _check_text("channel", channel)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise InvalidInputError(f"limit must be an int, not {type(limit).__name__}")
    return (
        _check_id("before", before),
        _check_id("after", after),
        max(1, min(STORE_PAGE_MAX, limit)),
    )


def check_delete(channel: str, id: int, by: str | None) -> int:
    """Validate ``get``'s or ``delete``'s arguments (``by`` None for ``get``).

    Returns:
        ``id``, clamped to 64 bits (an id out of range matches no message).

    Raises:
        InvalidInputError: ``channel`` or ``by`` is not storable text, or ``id`` is not
            an int.
    """
    _check_text("channel", channel)
    if by is not None:
        _check_text("by", by)
    checked = _check_id("id", id)
    if checked is None:
        raise InvalidInputError("id must be an int, not NoneType")
    return checked
