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
    "check_history",
]

HISTORY_LIMIT_DEFAULT = 50
#: The most messages one ``history`` call returns, whatever ``limit`` asks: a bound on one
#: query's work (an application may accept less from its clients).
STORE_PAGE_MAX = 500


class InvalidInputError(StoreError, ValueError):
    """An argument the store refuses (wrong type, NUL character, text that is not Unicode)."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One chat message as the store keeps it."""

    id: int
    channel: str
    message: str
    user: str
    ts: int
    client_id: str | None = None

    def to_wire(self) -> dict[str, object]:
        """The ``message`` event's payload: a superset of the seed's ``{channel, message}``."""
        wire: dict[str, object] = {
            "id": self.id,
            "channel": self.channel,
            "message": self.message,
            "user": self.user,
            "ts": self.ts,
        }
        if self.client_id is not None:
            wire["client_id"] = self.client_id
        return wire


@dataclass(frozen=True, slots=True)
class Draft:
    """A message accepted by ``append`` and waiting for its batch to be written."""

    channel: str
    message: str
    user: str
    client_id: str | None
    ts: int

    def stored(self, id: int) -> StoredMessage:
        return StoredMessage(id, self.channel, self.message, self.user, self.ts, self.client_id)


@runtime_checkable
class MessageStore(Protocol):
    """Message history persistence, as the chat layer uses it."""

    url: str

    async def open(self) -> None:
        """Connect, and create the schema on first start (idempotent)."""
        ...

    async def close(self) -> None:
        """Write what is still queued, then close; ``append`` fails afterwards."""
        ...

    async def append(
        self, channel: str, message: str, user: str, client_id: str | None = None
    ) -> StoredMessage:
        """Store one message durably and return it (or the first one with this client_id)."""
        ...

    async def history(
        self,
        channel: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = HISTORY_LIMIT_DEFAULT,
    ) -> list[StoredMessage]:
        """A page of a channel's messages, oldest first."""
        ...

    async def health(self) -> dict[str, object]:
        """``{"backend": ..., "ok": True, ...}``, or ``ok: False`` with ``"error"``."""
        ...


def _check_text(name: str, value: object) -> None:
    problem = unstorable(value)
    if problem is not None:
        raise InvalidInputError(f"{name} {problem}")


def check_append(
    channel: str, message: str, user: str, client_id: str | None, *, now: int | None = None
) -> Draft:
    """Validate ``append``'s arguments and stamp the message; raises InvalidInputError."""
    _check_text("channel", channel)
    _check_text("message", message)
    _check_text("user", user)
    if client_id is not None:
        _check_text("client_id", client_id)
    return Draft(channel, message, user, client_id, now_ms() if now is None else now)


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
    """Validate ``history``'s arguments: ids clamped to 64 bits, limit to 1..STORE_PAGE_MAX."""
    _check_text("channel", channel)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise InvalidInputError(f"limit must be an int, not {type(limit).__name__}")
    return (
        _check_id("before", before),
        _check_id("after", after),
        max(1, min(STORE_PAGE_MAX, limit)),
    )
