"""A node's turn at a room, ended by its message's publish instead of a command of its own.

`salas.cluster.ordering.RoomLocks` holds a room in Redis while a post stores and publishes
its message; when no other post of this node waits for the room, the turn ends right after
the publish. The publish is one script (the Redis adapter's ``broadcast_sequenced``) and the
release another: two commands, two round trips, for every message of a quiet room. So the
holder offers the end of its turn to the publish (:func:`offering`); the adapter takes it
(:func:`take`) and runs :data:`salas.cluster.scripts.SEQUENCE_AND_RELEASE_SCRIPT`, one
command that publishes and then releases, and records the answer in :attr:`TurnEnd.released`;
the holder then knows the turn is over and releases nothing.

The offer goes with the task that holds the room and nowhere else: a task the post starts
inherits the context, not the turn (:func:`take` checks the task). It is taken once, and only
while :attr:`TurnEnd.last` says that no other post of this node waits for the room (those get
the lock handed on, and the turn goes on).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["TurnEnd", "offering", "take"]


@dataclass(slots=True, eq=False)
class TurnEnd:
    """What ending a room's turn takes: `RELEASE_SCRIPT`'s keys and arguments, and who
    may end it when.

    Attributes:
        keys: The release's keys, in the order the release scripts take them (the room's
            lock, its waiting nodes).
        args: The release's arguments, in that order (the holder's token, the prefix of
            the nodes' channels for word that a room is free, the room's name).
        task: The task holding the room: the only one that may take the offer.
        last: Whether the post holding the room is, now, the last one of this node for it.
        taken: Whether a publish took the offer.
        released: The publish's answer: True (released), False (the lock was no longer the
            holder's: its lease ran out); None while not answered.
    """

    keys: list[str]
    args: list[str | bytes | int | float]
    task: asyncio.Task[Any] | None
    last: Callable[[], bool]
    taken: bool = False
    released: bool | None = None


_OFFERED: ContextVar[TurnEnd | None] = ContextVar("salas_turn_end", default=None)


@contextlib.contextmanager
def offering(turn: TurnEnd) -> Iterator[TurnEnd]:
    """Offer `turn`'s end to the publishes made inside the block (by `turn.task`)."""
    reset = _OFFERED.set(turn)
    try:
        yield turn
    finally:
        _OFFERED.reset(reset)


def take() -> TurnEnd | None:
    """The turn a publish made now should end, marked taken; None when there is none (no
    offer, another task's, taken already, or another post of this node waits for the room).
    """
    turn = _OFFERED.get()
    if turn is None or turn.taken or turn.task is not asyncio.current_task() or not turn.last():
        return None
    turn.taken = True
    return turn
