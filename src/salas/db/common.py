"""What every database-backed store agrees on: integer bounds, SQL-safe names, storable
text, timestamps, and the shape of the connections it opens and closes."""

from __future__ import annotations

import re
import time
from typing import Protocol

from salas.db.errors import StoreError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "Connections",
    "check_identifier",
    "now_ms",
    "unstorable",
]

# SQLite and PostgreSQL both store 64-bit signed integers; a larger bound coming from a
# client (``before=1e30``) would overflow their drivers, and means "no bound" anyway.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Table and schema names go into SQL text, so only plain identifiers; 40 characters leave
# room for the index names derived from them within PostgreSQL's 63.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


class Connections(Protocol):
    """What a durable store reaches its database through (a SQLite file's threads, a
    PostgreSQL pool): opened with the store, closed with it."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (the ``ts`` of a message or a packet)."""
    return time.time_ns() // 1_000_000


def unstorable(value: object) -> str | None:
    """Why not every backend can store ``value`` as text ("contains a NUL character, ..."),
    or None when every backend can."""
    if not isinstance(value, str):
        return f"must be a str, not {type(value).__name__}"
    if "\x00" in value:
        return "contains a NUL character, which is not storable"
    # ASCII (the common case) is valid UTF-8; only other text can hold a lone surrogate.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text (lone surrogate)"
    return None


def check_identifier(kind: str, name: str) -> str:
    """A table or schema name safe to put in SQL; StoreError otherwise."""
    if not _IDENTIFIER.fullmatch(name):
        raise StoreError(
            f"invalid {kind} name {name!r}: use up to 40 letters, digits and '_', "
            "not starting with a digit"
        )
    return name
