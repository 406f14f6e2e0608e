"""The error every store raises, the message store's and the recovery store's alike."""

from __future__ import annotations

__all__ = ["StoreError", "not_open"]


class StoreError(Exception):
    """The store cannot do what was asked: bad URL, unreachable database, failed write, closed."""


def not_open(name: str) -> StoreError:
    """The error of the ``name`` store used while it is not open."""
    return StoreError(f"{name} store is not open")
