"""Bans: who may not enter a room, until when — the contract, and its ``memory://`` backend.

>>> bans = open_ban_store("sqlite:///var/lib/salas/history.db")
>>> await bans.open()
>>> await bans.ban("lobby", "u-42", until_ms=now_ms() + 3_600_000, by="u-1")
>>> await bans.is_banned("lobby", "u-42")
Ban(channel='lobby', user_id='u-42', ...)

:func:`~salas.store.open_ban_store` opens a :class:`BanStore` from the message store's
URL: the SQLite and PostgreSQL backends (:class:`~salas.store.sqlite.SQLiteBanStore`,
:class:`~salas.store.postgres.PostgresBanStore`) keep the table ``<table>_bans`` beside
the messages table ``<table>``, so bans survive a restart; :class:`MemoryBanStore` forgets
them on ``close``.

Contract, in short:

- One ban per ``(channel, user_id)``: banning again replaces it (new ``until_ms``, ``by``
  and ``at_ms``), so a ban can be shortened, lengthened or made permanent.
- ``until_ms`` None is a ban without end; otherwise the ban holds while
  ``now < until_ms``. An expired ban counts for nothing (``is_banned`` None, absent from
  ``bans``); its row is removed lazily, by the next ``ban`` in that channel.
- Every write is durable when its call returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from salas.db.common import INT64_MAX, INT64_MIN, now_ms, unstorable
from salas.db.errors import not_open

from .base import InvalidInputError

__all__ = [
    "Ban",
    "BanQueries",
    "BanStore",
    "MemoryBanStore",
    "check_ban",
    "check_now",
    "check_target",
]


@dataclass(frozen=True, slots=True)
class Ban:
    """One user's ban from one room.

    Attributes:
        channel: The room.
        user_id: Who is banned (a stable user id, a token's ``sub``).
        until_ms: When it ends, in ms since the epoch; None for never.
        by: Who banned them (a user id).
        at_ms: When the ban was made (or last replaced), in ms since the epoch.
    """

    channel: str
    user_id: str
    until_ms: int | None
    by: str
    at_ms: int

    def active(self, now: int) -> bool:
        """Whether the ban holds at ``now`` (ms since the epoch)."""
        return self.until_ms is None or now < self.until_ms


@runtime_checkable
class BanStore(Protocol):
    """Durable room bans (see the module's contract).

    Made by :func:`~salas.store.open_ban_store` from the message store's URL. Every method
    but ``open`` and ``close`` raises :class:`~salas.db.errors.StoreError` while the store
    is not open.

    Attributes:
        url: The URL the store was opened from.
    """

    url: str

    async def open(self) -> None:
        """Connect, and create the bans table on first start (idempotent).

        Raises:
            StoreError: The database cannot be opened or reached, or its table created.
        """
        ...

    async def close(self) -> None:
        """Disconnect (idempotent). The memory store forgets its bans."""
        ...

    async def ban(self, channel: str, user_id: str, until_ms: int | None, by: str) -> Ban:
        """Ban a user from a room, replacing any ban they had there.

        Args:
            channel: The room.
            user_id: Who is banned.
            until_ms: When the ban ends (ms since the epoch), or None for never. A time
                already past stores a ban that is already over.
            by: Who bans them.

        Returns:
            The ban as stored.

        Raises:
            InvalidInputError: A text argument is not storable text, or ``until_ms`` is
                not an int or None.
            StoreError: The store is not open, or the write failed.
        """
        ...

    async def unban(self, channel: str, user_id: str) -> bool:
        """Lift a user's ban from a room.

        Returns:
            Whether there was a ban to lift (an expired one counts as none).

        Raises:
            InvalidInputError: An argument is not storable text.
            StoreError: The store is not open, or the write failed.
        """
        ...

    async def is_banned(self, channel: str, user_id: str, now: int | None = None) -> Ban | None:
        """The ban that keeps a user out of a room now, if any.

        Args:
            channel: The room.
            user_id: The user.
            now: The time to judge expiry at (ms since the epoch); None for now.

        Returns:
            The active ban, or None (never banned, unbanned or expired).

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the read failed.
        """
        ...

    async def bans(self, channel: str, now: int | None = None) -> list[Ban]:
        """A room's active bans, by ``user_id``.

        Args:
            channel: The room.
            now: The time to judge expiry at (ms since the epoch); None for now.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open, or the read failed.
        """
        ...


def _check_text(name: str, value: object) -> None:
    problem = unstorable(value)
    if problem is not None:
        raise InvalidInputError(f"{name} {problem}")


def _check_ms(name: str, value: object) -> int:
    # bool is an int subclass, but ``until_ms=True`` is a caller's bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"{name} must be an int, not {type(value).__name__}")
    return max(INT64_MIN, min(INT64_MAX, value))


def check_target(channel: str, user_id: str | None = None) -> None:
    """Validate the room (and user, unless None) of an ``unban``, ``is_banned`` or ``bans``.

    Raises:
        InvalidInputError: An argument is not storable text.
    """
    _check_text("channel", channel)
    if user_id is not None:
        _check_text("user_id", user_id)


def check_ban(channel: str, user_id: str, until_ms: int | None, by: str) -> Ban:
    """Validate ``ban``'s arguments.

    Returns:
        The ban, stamped now (``until_ms`` clamped to 64 bits).

    Raises:
        InvalidInputError: A text argument is not storable text, or ``until_ms`` is not an
            int or None.
    """
    check_target(channel, user_id)
    _check_text("by", by)
    until = None if until_ms is None else _check_ms("until_ms", until_ms)
    return Ban(channel, user_id, until, by, now_ms())


def check_now(now: int | None) -> int:
    """``now`` checked as ms since the epoch, or the current time for None.

    Raises:
        InvalidInputError: ``now`` is not an int or None.
    """
    return now_ms() if now is None else _check_ms("now", now)


@dataclass(frozen=True, slots=True)
class BanQueries:
    """The SQL of the SQLite and PostgreSQL ban stores: one table, the same statements.

    Columns, in :class:`Ban` order: ``channel, user_id, until_ms, banned_by, at_ms``
    (``banned_by``: ``by`` is reserved in SQL), keyed by ``(channel, user_id)``.
    """

    ddl: str
    #: ``(channel, now)``: remove the room's expired bans.
    purge: str
    #: ``(channel, user_id, until_ms, banned_by, at_ms)``: insert or replace.
    upsert: str
    #: ``(channel, user_id, now)``: remove an active ban.
    lift: str
    #: ``(channel, user_id, now)``: the active ban.
    active: str
    #: ``(channel, now)``: the room's active bans by user_id.
    listing: str

    @classmethod
    def on(cls, qualified: str, *, integer: str, param: Callable[[int], str]) -> BanQueries:
        """The statements on table ``qualified`` (quoted, schema-qualified if need be).

        Args:
            qualified: The table's name for SQL.
            integer: The database's 64-bit integer type.
            param: ``param(n)``, the database's placeholder for the n-th parameter.
        """
        p = param
        columns = "channel, user_id, until_ms, banned_by, at_ms"
        holds = f"(until_ms IS NULL OR until_ms > {p(3)})"
        return cls(
            ddl=(
                f"CREATE TABLE IF NOT EXISTS {qualified} ("
                " channel TEXT NOT NULL, user_id TEXT NOT NULL,"
                f" until_ms {integer}, banned_by TEXT NOT NULL, at_ms {integer} NOT NULL,"
                " PRIMARY KEY (channel, user_id));"
            ),
            purge=(
                f"DELETE FROM {qualified} WHERE channel = {p(1)}"
                f" AND until_ms IS NOT NULL AND until_ms <= {p(2)}"
            ),
            upsert=(
                f"INSERT INTO {qualified} ({columns})"
                f" VALUES ({p(1)}, {p(2)}, {p(3)}, {p(4)}, {p(5)})"
                " ON CONFLICT (channel, user_id) DO UPDATE SET until_ms = excluded.until_ms,"
                " banned_by = excluded.banned_by, at_ms = excluded.at_ms"
            ),
            lift=(
                f"DELETE FROM {qualified} WHERE channel = {p(1)} AND user_id = {p(2)} AND {holds}"
            ),
            active=(
                f"SELECT {columns} FROM {qualified} WHERE channel = {p(1)}"
                f" AND user_id = {p(2)} AND {holds}"
            ),
            listing=(
                f"SELECT {columns} FROM {qualified} WHERE channel = {p(1)}"
                f" AND (until_ms IS NULL OR until_ms > {p(2)}) ORDER BY user_id"
            ),
        )


class MemoryBanStore:
    """A :class:`BanStore` in this process's memory (``memory://``): gone on ``close``.

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
        self._bans: dict[tuple[str, str], Ban] = {}

    async def open(self) -> None:
        """Start accepting bans (idempotent)."""
        self._open = True

    async def close(self) -> None:
        """Stop, and forget every ban."""
        self._open = False
        self._bans.clear()

    async def ban(self, channel: str, user_id: str, until_ms: int | None, by: str) -> Ban:
        """Ban a user from a room; see :meth:`BanStore.ban`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open.
        """
        ban = check_ban(channel, user_id, until_ms, by)
        self._check_open()
        expired = [
            key
            for key, old in self._bans.items()
            if key[0] == channel and not old.active(ban.at_ms)
        ]
        for key in expired:
            del self._bans[key]
        self._bans[channel, user_id] = ban
        return ban

    async def unban(self, channel: str, user_id: str) -> bool:
        """Lift a ban; see :meth:`BanStore.unban`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open.
        """
        check_target(channel, user_id)
        self._check_open()
        ban = self._bans.pop((channel, user_id), None)
        return ban is not None and ban.active(now_ms())

    async def is_banned(self, channel: str, user_id: str, now: int | None = None) -> Ban | None:
        """The active ban, if any; see :meth:`BanStore.is_banned`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open.
        """
        check_target(channel, user_id)
        at = check_now(now)
        self._check_open()
        ban = self._bans.get((channel, user_id))
        return ban if ban is not None and ban.active(at) else None

    async def bans(self, channel: str, now: int | None = None) -> list[Ban]:
        """A room's active bans; see :meth:`BanStore.bans`.

        Raises:
            InvalidInputError: An argument is invalid.
            StoreError: The store is not open.
        """
        check_target(channel)
        at = check_now(now)
        self._check_open()
        found = [b for (c, _), b in self._bans.items() if c == channel and b.active(at)]
        return sorted(found, key=lambda b: b.user_id)

    def _check_open(self) -> None:
        if not self._open:
            raise not_open(f"{self.backend} ban")
